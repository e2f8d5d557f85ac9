"""Typed configuration for every Nexus process, read from `NEXUS_*` environment variables."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_serializer, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from infra.config.scale import (
    MAX_INSTANCES,
    SERVICE_PORT_FIELDS,
    SERVICES,
    ServiceName,
    format_scale,
    instance_port,
    parse_scale,
)

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?")


@dataclass(frozen=True)
class Replication:
    """How many copies of each partition a cluster keeps, for our topics and Kafka's own
    (consumer offsets, transaction state): the one place this is derived."""

    factor: int
    min_insync: int  # replicas holding a write before acks=all acknowledges it

    @classmethod
    def for_brokers(cls, brokers: int) -> Replication:
        """Up to 3 replicas, all but one of them in sync: on 3 brokers an acknowledged write
        survives losing any one broker, and writes go on while one is down."""
        factor = min(brokers, 3)
        return cls(factor=factor, min_insync=max(1, factor - 1))


class Settings(BaseSettings):
    """One settings object per process; tests build their own with overrides."""

    model_config = SettingsConfigDict(env_prefix="NEXUS_", extra="ignore")

    home: Path = Field(default=PROJECT_ROOT / ".nexus", description="State, data and logs.")
    kafka_bootstrap: str | None = Field(
        default=None, description="Use this Kafka instead of starting one (host:port,...)."
    )
    database_url: str | None = Field(
        default=None, description="Use this PostgreSQL instead of starting one."
    )
    kafka_port: int = Field(default=9092, description="Client port of the first local broker.")
    kafka_controller_port: int = Field(
        default=9093, description="Controller port of the first local broker."
    )
    kafka_brokers: int = Field(
        default=1,
        ge=1,
        description="Brokers in the Kafka cluster: `nexus up` starts this many (broker n on"
        " NEXUS_KAFKA_PORT + 2(n-1)); with NEXUS_KAFKA_BOOTSTRAP, the size of that cluster."
        " Topics get min(brokers, 3) replicas.",
    )
    postgres_port: int = 5433
    topic_prefix: str = "nexus"
    instance_id: str = Field(
        default_factory=socket.gethostname,
        description="Static group member id: a restart on the same host resumes at once.",
    )
    partitions: int = 6
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 3000
    command_processor_health_port: int = 3101
    projector_health_port: int = 3102
    notifier_health_port: int = 3103
    workflows_health_port: int = 3104
    metrics_host: str = Field(
        default="127.0.0.1",
        description="Address the workers' /healthz, /readyz and /metrics bind; 0.0.0.0 in a"
        " container, so that Prometheus in another one can scrape them.",
    )
    # Not Prometheus's own 9090: Debian's `prometheus` package starts a system service there.
    prometheus_port: int = Field(
        default=9190, description="Port of the Prometheus `nexus up` runs on 127.0.0.1."
    )
    scale: Annotated[dict[ServiceName, Annotated[int, Field(ge=1, le=MAX_INSTANCES)]], NoDecode] = (
        Field(
            default_factory=dict,
            description="Instances `nexus up` runs of each service, e.g. projector=2,gateway=2"
            " (1 of each one not named); see infra/config/scale.py for their ports.",
        )
    )
    gateway_instance_port: int | None = Field(
        default=None,
        description="A port this gateway answers on besides the shared NEXUS_GATEWAY_PORT,"
        " so it can be probed alone; `nexus up` sets it when it runs several gateways.",
    )
    jwt_secret: str | None = Field(default=None, description="HS256 secret; else the home file.")
    jwt_issuer: str = "nexus"
    jwt_audience: str = "nexus-api"
    jwt_max_ttl_s: int = Field(
        default=24 * 3600, gt=0, description="Tokens living longer (exp - iat) are refused."
    )
    jwt_leeway_s: int = Field(default=30, ge=0, description="Clock skew allowed on exp and iat.")
    cors_origins: str = Field(
        default="", description="Comma-separated origins (https://app.example) allowed by CORS."
    )
    database_timeout_s: float = Field(
        default=5.0, gt=0, description="Gateway wait for a database connection before a 503."
    )
    max_body_bytes: int = 1024 * 1024
    ingest_max_body_bytes: int = Field(
        default=5 * 1024 * 1024, description="Largest POST /api/v1/ingest/batch body."
    )
    produce_timeout_ms: int = 5000
    read_your_writes_timeout_s: float = 5.0
    # The watchdog of every worker process (streams/process/watchdog.py).
    watchdog_s: float = Field(
        default=30.0, gt=0, description="/healthz fails once a loop has not polled this long."
    )
    watchdog_exit_s: float = Field(
        default=15.0,
        ge=0,
        description="A worker whose /healthz has failed this long exits (code 70) for its"
        " supervisor to restart it; 0: it only reports.",
    )
    catch_up_limit_s: float = Field(
        default=600.0, gt=0, description="/healthz fails once a catch-up runs longer."
    )
    projection_max_tries: int = Field(
        default=3,
        ge=1,
        description="Tries the projector gives an event its handler fails on, a second apart,"
        " before it dead-letters it (projections/attempts.py).",
    )
    projection_audit: bool = Field(
        default=False,
        description="The projector records every event it applies, one row per application,"
        " in public.projection_applications: for fault tests, and for operators who want to"
        " count applications (a COPY more per batch).",
    )
    snapshot_every_events: int = Field(
        default=10_000,
        ge=0,
        description="The command processor snapshots a partition's aggregates after this many"
        " events (0: no snapshots, a takeover folds every event).",
    )
    snapshot_every_s: float = Field(
        default=60.0, gt=0, description="... or this long after its last snapshot, if sooner."
    )
    # Gateway rate limits (gateway/rate_limits.py), per token subject; `limits` syntax.
    rate_limit_enabled: bool = True
    rate_limit_commands: str = Field(default="10000/second", description="Command routes.")
    rate_limit_notifications: str = Field(
        default="1000/second", description="POST /api/v1/notifications."
    )
    rate_limit_ingest: str = Field(
        default="200000/second", description="Events (a batch of N costs N) to /api/v1/ingest."
    )
    rate_limit_events: str = Field(
        default="10000/second", description="Events (a batch of N costs N) to /api/v1/events."
    )
    rate_limit_queries: str = Field(default="10000/second", description="GETs under /api/v1.")
    rate_limit_streams: str = Field(default="60/minute", description="SSE streams opened.")
    rate_limit_anonymous: str = Field(
        default="100/second", description="Requests without a valid token, per client address."
    )
    rate_limit_after_waits: int = Field(
        default=32, ge=1, description="?after= waits in flight at once per subject."
    )
    rate_limit_open_streams: int = Field(
        default=8, ge=1, description="SSE streams open at once per subject."
    )
    rate_limit_strategy: Literal["fixed-window", "moving-window", "sliding-window-counter"] = (
        "fixed-window"
    )
    rate_limit_storage: str = Field(
        default="memory://", description="limits storage URI; redis://... shares the limits."
    )
    log_level: str = "info"
    analytics_file: Path = Field(
        default=PROJECT_ROOT / "infra" / "config" / "analytics.toml",
        description="Tracking plan policies.",
    )
    analytics_health_port: int = 3105
    anomaly_check_every_s: float = Field(
        default=10.0, gt=0, description="How often the analytics leader looks for anomalies."
    )
    # Notifications: templates, workflows and the saga's default policy.
    templates_dir: Path = Field(default=PROJECT_ROOT / "templates", description="Templates.")
    workflows_file: Path = Field(
        default=PROJECT_ROOT / "infra" / "config" / "workflows.toml",
        description="Domain event workflows.",
    )
    app_name: str = "Nexus"
    app_url: str = "http://127.0.0.1:3000"
    workflows_start_from: Literal["earliest", "latest"] = Field(
        default="latest",
        description="Where a new workflows group starts: latest, so history is not notified.",
    )
    ops_user_id: str | None = Field(
        default=None, description="User whose channels receive operations alerts."
    )
    notification_deadline_s: int = 3600
    notification_horizon_s: int = Field(
        default=7 * 24 * 3600,
        description="How far back the notifier reads its saga topic and how long it keeps"
        " finished sagas, so an idempotency key is honoured; at least twice the deadline"
        " plus the digest window.",
    )
    notification_max_attempts: int = 3
    notification_digest_window_s: int = Field(
        default=900, gt=0, description="Digest templates collapse into one message per window."
    )
    notification_base_delay_ms: int = 1000
    notification_max_delay_ms: int = 300_000
    circuit_failure_threshold: int = 5
    circuit_cool_down_ms: int = 30_000
    delivery_concurrency: int = 32
    # Delivery adapters (apprise and httpx); a channel without its settings fails its attempts.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_from: str = "nexus@localhost"
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_mode: str = Field(default="starttls", description="insecure, starttls or ssl.")
    ntfy_server: str = "https://ntfy.sh"
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_from: str | None = None
    delivery_allow_list: str = Field(
        default="", description="Comma-separated hosts/CIDRs exempt from the SSRF checks."
    )
    delivery_timeouts: str = Field(
        default="", description="Per-channel seconds, e.g. email=15,webhook=5."
    )

    @model_validator(mode="after")
    def _horizon_outlives_sagas(self) -> Settings:
        # A digest lives for its window and then a deadline; every saga must end in half of it.
        if self.notification_horizon_s < 2 * (
            self.notification_deadline_s + self.notification_digest_window_s
        ):
            raise ValueError(
                "NEXUS_NOTIFICATION_HORIZON_S must be at least twice NEXUS_NOTIFICATION_DEADLINE_S"
                " + NEXUS_NOTIFICATION_DIGEST_WINDOW_S"
            )
        return self

    @field_validator("cors_origins")
    @classmethod
    def _origins_listed(cls, value: str) -> str:
        # An allow-list only: `*` (or a path, or a bare host) would open the API to any page.
        for origin in (o.strip() for o in value.split(",") if o.strip()):
            if not _ORIGIN.fullmatch(origin):
                wanted = "an origin such as https://app.example.com or http://localhost:5173"
                raise ValueError(f"NEXUS_CORS_ORIGINS: {origin!r} is not {wanted}")
        return value

    @property
    def allowed_origins(self) -> list[str]:
        return [o.strip().rstrip("/") for o in self.cors_origins.split(",") if o.strip()]

    @model_validator(mode="after")
    def _kafka_ports_distinct(self) -> Settings:
        ports = [port for node in self.kafka_node_ports for port in node]
        if len(set(ports)) != len(ports):
            raise ValueError(
                f"NEXUS_KAFKA_PORT and NEXUS_KAFKA_CONTROLLER_PORT give {self.kafka_brokers}"
                f" brokers overlapping ports {ports}; move one of them"
            )
        return self

    @property
    def kafka_node_ports(self) -> list[tuple[int, int]]:
        """(client port, controller port) of each local broker, node 1 first."""
        return [
            (self.kafka_port + 2 * n, self.kafka_controller_port + 2 * n)
            for n in range(self.kafka_brokers)
        ]

    @property
    def kafka_replication(self) -> Replication:
        """Replicas of every topic on the cluster of NEXUS_KAFKA_BROKERS brokers."""
        return Replication.for_brokers(self.kafka_brokers)

    @property
    def resolved_kafka_bootstrap(self) -> str:
        """NEXUS_KAFKA_BOOTSTRAP, or every local broker (a client then finds the cluster
        through whichever one answers)."""
        local = ",".join(f"127.0.0.1:{port}" for port, _ in self.kafka_node_ports)
        return self.kafka_bootstrap or local

    @field_validator("scale", mode="before")
    @classmethod
    def _scale_parsed(cls, value: object) -> object:
        return parse_scale(value)

    @field_serializer("scale")
    def _scale_as_text(self, counts: dict[ServiceName, int]) -> str:
        return format_scale(counts)  # so NEXUS_SCALE=<dumped value> reads back the same

    @model_validator(mode="after")
    def _instance_ports_distinct(self) -> Settings:
        ports = [port for service in SERVICES for port in self.instance_ports(service)]
        ports.append(self.prometheus_port)  # it scrapes them all, so it shares no port either
        clashing = sorted({port for port in ports if ports.count(port) > 1})
        if clashing or max(ports) > 65535:
            raise ValueError(
                f"NEXUS_SCALE, the services' ports and NEXUS_PROMETHEUS_PORT give the same or no"
                f" port ({clashing or max(ports)}); see infra/config/scale.py and move a base port"
            )
        return self

    def instances(self, service: ServiceName) -> int:
        """How many instances of `service` `nexus up` runs (NEXUS_SCALE)."""
        return self.scale.get(service, 1)

    def instance_port(self, service: ServiceName, index: int) -> int:
        """The port instance `index` (from 1) of `service` is probed on; a lone gateway is
        probed on the port it serves."""
        base: int = getattr(self, SERVICE_PORT_FIELDS[service])
        if service == "gateway" and index == self.instances(service) == 1:
            return base
        return instance_port(service, base, index)

    def instance_ports(self, service: ServiceName) -> list[int]:
        """The port of each instance of `service`, instance 1 first."""
        return [self.instance_port(service, n) for n in range(1, self.instances(service) + 1)]

    @property
    def jwt_secret_file(self) -> Path:
        return self.home / "jwt-secret"

    @property
    def postgres_password_file(self) -> Path:
        return self.home / "postgres-password"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        password = self.postgres_password_file.read_text().strip()
        return f"postgresql://nexus:{password}@127.0.0.1:{self.postgres_port}/nexus"

    def resolved_jwt_secret(self) -> str:
        return self.jwt_secret or self.jwt_secret_file.read_text().strip()

    def topic(self, name: str) -> str:
        """Full topic name for a logical topic (see streams.kafka.topics.LOGICAL_TOPICS)."""
        return f"{self.topic_prefix}.{name}"
