"""`nexus run --supervise` restarts a crashed service and stops with it on SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from infra.local.supervise import supervise

CRASH_ONCE = """
import pathlib, sys
marker = pathlib.Path(sys.argv[1])
runs = int(marker.read_text()) + 1 if marker.exists() else 1
marker.write_text(str(runs))
sys.exit(1 if runs == 1 else 0)
"""


def test_a_crashed_child_is_started_again(tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    assert supervise([sys.executable, "-c", CRASH_ONCE, str(marker)]) == 0
    assert marker.read_text() == "2"


def test_sigterm_reaches_the_child_and_ends_the_supervisor(tmp_path: Path) -> None:
    started = tmp_path / "started"
    child = f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(60)"
    script = (
        "import sys; from infra.local.supervise import supervise; "
        f"sys.exit(supervise([sys.executable, '-c', {child!r}]))"
    )
    supervisor = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 20
    while not started.exists():
        assert time.monotonic() < deadline, "child never started"
        time.sleep(0.05)
    supervisor.send_signal(signal.SIGTERM)
    assert supervisor.wait(20) == 0
