"""wrk as the load generator: POSTs a JSON body with a bearer token and counts 202 answers.

A Python client would saturate a core before the server does, so the HTTP figures come from
wrk (installed with apt-get when missing). The Lua script counts statuses in each thread
and prints one machine-readable line when the run is done.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from infra.local.processes import apt_install

SCRIPT = """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"

local threads = {{}}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  accepted = 0
  other = 0
end

function response(status, headers, body)
  if status == 202 then accepted = accepted + 1 else other = other + 1 end
end

function done(summary, latency, requests)
  local a, o = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("accepted")
    o = o + t:get("other")
  end
  local e = summary.errors
  io.write(string.format(
    "WRK-RESULT {{\\"accepted\\": %d, \\"other\\": %d, \\"requests\\": %d, " ..
    "\\"duration_us\\": %d, \\"socket_errors\\": %d, \\"timeouts\\": %d, " ..
    "\\"p50_us\\": %d, \\"p99_us\\": %d}}\\n",
    a, o, summary.requests, summary.duration, e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class WrkResult:
    accepted: int  # 202 answers
    other: int  # any other status
    requests: int
    seconds: float
    socket_errors: int
    timeouts: int
    p50_ms: float
    p99_ms: float

    @property
    def accepted_per_second(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0


def ensure_wrk() -> str:
    """The wrk executable, installing Debian's package when it is missing."""
    if (path := shutil.which("wrk")) is None:
        apt_install(["wrk"])
        path = shutil.which("wrk")
    if path is None:
        raise RuntimeError("apt-get installed wrk but it is not on PATH")
    return path


@contextmanager
def post_script(body: str, token: str) -> Iterator[Path]:
    """A Lua script file for POSTing `body` (JSON without `]]`) with `token`, then deleted."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-wrk-") as file:
        file.write(SCRIPT.format(body=body, token=token))
        file.flush()
        yield Path(file.name)


def run_wrk(
    url: str, script: Path, seconds: float, *, connections: int = 64, threads: int = 1
) -> WrkResult:
    argv = [
        ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds:.0f}s",
        "--timeout", "10s", "-s", str(script), url,
    ]  # fmt: skip
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    line = next((s for s in done.stdout.splitlines() if s.startswith("WRK-RESULT ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
    raw = json.loads(line.removeprefix("WRK-RESULT "))
    return WrkResult(
        accepted=raw["accepted"],
        other=raw["other"],
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        socket_errors=raw["socket_errors"],
        timeouts=raw["timeouts"],
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )
