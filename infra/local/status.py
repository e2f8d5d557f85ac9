"""What `nexus status` shows of each service: the service's own pid and its state.

The pid is the program's, not its supervisor's: killing it gets the service restarted, while
killing the supervisor stops both. The state comes from the process, then from the service's
probes (short timeouts, every instance probed at once):
- `down`: nothing runs (no live supervisor, or no live process, behind the pid file);
- `restarting`: the supervisor runs but its program does not, between a crash and its restart;
- `unhealthy`: the program runs but its /healthz does not answer 200 (still starting, or wedged);
- `not ready`: /healthz answers but /readyz does not (say a standby projector, or an instance
  holding no partition);
- `up`: both answer 200; for Kafka and PostgreSQL, the process runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

from infra.local.child_process import answers
from infra.local.services import AppProcess, ManagedService
from infra.local.supervise import supervised_child

State = Literal["up", "not ready", "unhealthy", "restarting", "down"]
PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True)
class Observed:
    name: str
    service: str  # what the instance is an instance of (`projector` for `projector-2`)
    state: State
    pid: int | None  # the service's own

    @property
    def live(self) -> bool:
        return self.state in ("up", "not ready")


def observe(service: ManagedService) -> Observed:
    """The state and own pid of one service (or instance), probing an app's health URLs."""
    of = service.service.service if isinstance(service, AppProcess) else service.name
    supervisor = service.pid()
    own = supervised_child(supervisor) if supervisor is not None else None
    if supervisor is None or own is None:
        return Observed(service.name, of, "down" if supervisor is None else "restarting", None)
    if not isinstance(service, AppProcess):
        return Observed(service.name, of, "up", own)
    return Observed(service.name, of, _probed(service), own)


def _probed(app: AppProcess) -> State:
    if not answers(app.service.live_url, PROBE_TIMEOUT_S):
        return "unhealthy"
    if not answers(app.service.health_url, PROBE_TIMEOUT_S):
        return "not ready"
    return "up"


def observe_all(services: Sequence[ManagedService]) -> list[Observed]:
    """`observe` for each, in order; a wedged service costs its timeouts once, not per row."""
    with ThreadPoolExecutor(max_workers=max(1, len(services))) as pool:
        return list(pool.map(observe, services))


def all_serving(observed: Sequence[Observed]) -> bool:
    """Every instance runs and answers /healthz, and each service has one that is `up`: a
    standby beside an active instance is as it should be."""
    services = {seen.service for seen in observed}
    up = {seen.service for seen in observed if seen.state == "up"}
    return all(seen.live for seen in observed) and up == services
