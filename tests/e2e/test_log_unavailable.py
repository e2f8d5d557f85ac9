"""With Kafka unreachable, a command gets 503 and Retry-After, never a 2xx."""

from __future__ import annotations

import httpx
from stack import ServiceProcess

from gateway.auth import TokenVerifier
from infra.config.settings import Settings
from infra.local.processes import free_port
from infra.local.service_env import with_free_ports


def test_commands_get_503_when_kafka_is_unreachable(settings: Settings) -> None:
    dead = with_free_ports(settings).model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{free_port()}", "produce_timeout_ms": 1500}
    )
    gateway = ServiceProcess("gateway", dead)
    try:
        gateway.start(probe="/healthz")
        token = TokenVerifier(dead.resolved_jwt_secret(), dead.jwt_issuer, dead.jwt_audience).issue(
            "alice", ["users:write"]
        )
        response = httpx.post(
            f"http://127.0.0.1:{dead.gateway_port}/api/v1/users",
            json={"email": "a@b.co", "name": "A"},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert response.status_code == 503
        assert response.headers["retry-after"] == "5"
        assert response.json()["code"] == "log-unavailable"
        ready = httpx.get(f"http://127.0.0.1:{dead.gateway_port}/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["kafka"] is False
    finally:
        gateway.stop()
