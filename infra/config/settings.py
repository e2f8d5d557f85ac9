"""Typed configuration for every Nexus process, read from `NEXUS_*` environment variables."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?/?")


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
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
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
    # Gateway rate limits (gateway/rate_limits.py), per token subject; `limits` syntax.
    rate_limit_enabled: bool = True
    rate_limit_commands: str = Field(default="10000/second", description="Command routes.")
    rate_limit_notifications: str = Field(
        default="1000/second", description="POST /api/v1/notifications."
    )
    rate_limit_ingest: str = Field(
        default="200000/second", description="Events (a batch of N costs N) to /api/v1/ingest."
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

    @property
    def resolved_kafka_bootstrap(self) -> str:
        return self.kafka_bootstrap or f"127.0.0.1:{self.kafka_port}"

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
