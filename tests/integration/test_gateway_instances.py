"""Two gateway processes serve one port (SO_REUSEPORT): both answer on it, each can be probed
on a port of its own, and the shared port keeps answering when one of them is killed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from stack import NEXUS, prepared

from infra.config.settings import Settings
from infra.local.child_process import ChildProcess
from infra.local.processes import free_ports
from infra.local.service_env import environment

HEALTHZ = r'nexus_http_requests_total\{method="GET",route="healthz",status="200"\} (\S+)'


def gateway(settings: Settings, n: int, own_port: int) -> ChildProcess:
    instance = settings.model_copy(
        update={"gateway_instance_port": own_port, "instance_id": f"gateway-{n}"}
    )
    name, argv = f"gateway-{n}", [NEXUS, "run", "gateway"]
    return ChildProcess(name, argv, own_port, settings.home / f"{name}.log", environment(instance))


@pytest.fixture
def gateways(settings: Settings) -> Iterator[tuple[Settings, list[ChildProcess]]]:
    ready = prepared(settings)
    started = [gateway(ready, n, port) for n, port in enumerate(free_ports(2), start=1)]
    try:
        for instance in started:
            instance.start(timeout=60)  # ready on its own port
        yield ready, started
    finally:
        for instance in started:
            instance.stop()


def listeners(port: int) -> int:
    """Sockets listening on 127.0.0.1:`port`, from /proc/net/tcp."""
    local = f"0100007F:{port:04X}"
    rows = Path("/proc/net/tcp").read_text().splitlines()[1:]
    return sum(1 for row in rows if row.split()[1] == local and row.split()[3] == "0A")


def healthz_answered(instance: ChildProcess) -> int:
    found = re.search(HEALTHZ, httpx.get(f"{instance.url}/metrics", timeout=5).text)
    return int(float(found[1])) if found else 0


@pytest.mark.fault
@pytest.mark.timeout(180)  # its waits: two starts of 60 s
def test_both_gateways_answer_on_the_shared_port_and_it_survives_either(
    gateways: tuple[Settings, list[ChildProcess]],
) -> None:
    settings, (first, second) = gateways
    shared = f"http://127.0.0.1:{settings.gateway_port}/healthz"
    assert listeners(settings.gateway_port) == 2

    for _ in range(40):  # a new connection each: the kernel picks a listener per connection
        assert httpx.get(shared, timeout=5).status_code == 200

    answered = [healthz_answered(first), healthz_answered(second)]
    assert sum(answered) == 40
    assert min(answered) > 0, f"one gateway answered all: {answered}"

    first.kill()

    assert listeners(settings.gateway_port) == 1
    for _ in range(20):
        assert httpx.get(shared, timeout=5).status_code == 200
    assert healthz_answered(second) == answered[1] + 20
