"""Process plumbing: detached processes tracked by pid files, and the system packages they need.

A detached process runs in its own session with stdout and stderr appended to a log file, so it
outlives the `nexus up` that started it and `nexus down` can stop its whole process group.
"""

from __future__ import annotations

import functools
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path


class ProcessError(RuntimeError):
    """A managed process could not be installed, started or stopped."""


@dataclass
class DetachedProcess:
    """One long-running program, identified by its pid file and its command line."""

    name: str
    argv: Sequence[str]
    pid_file: Path
    log_file: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    _popen: subprocess.Popen[bytes] | None = field(default=None, init=False, repr=False)

    def pid(self) -> int | None:
        """The pid of the live process, or None (a stale pid file counts as not running).

        The object that started the process trusts its Popen while that runs: until the child
        has exec'd, its command line is still this program's, so a comparison would call a
        live child dead. Anyone else compares the command line, against a recycled pid."""
        if self._popen is not None and self._popen.poll() is None:
            return self._popen.pid
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        return pid if is_alive(pid) and _cmdline_matches(pid, self.argv) else None

    def start(self) -> int:
        """Start the program unless it already runs; returns its pid either way."""
        if (pid := self.pid()) is not None:
            return pid
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "ab") as log:
            self._popen = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(self.env) if self.env is not None else None,
                cwd=self.cwd,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._popen.pid}\n")
        return self._popen.pid

    def stop(self, timeout: float = 20.0) -> bool:
        """SIGTERM the process, then SIGKILL its group after `timeout`; True if it was running.

        A supervisor passes the SIGTERM on to its program (as the signal that stops it) and
        ends when it has; the SIGKILL reaches the program too, which shares the group."""
        pid = self.pid()
        if pid is not None:
            terminate(pid, timeout)
        if self._popen is not None:
            self._popen.wait()
            self._popen = None
        self.pid_file.unlink(missing_ok=True)
        return pid is not None


def is_alive(pid: int) -> bool:
    """True when `pid` exists and is not a zombie; reaps it if it is our exited child."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def command_line(pid: int) -> list[str]:
    """The arguments `pid` runs with ([] once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _cmdline_matches(pid: int, argv: Sequence[str]) -> bool:
    # Guards against a recycled pid: scripts run through their interpreter, so only the
    # arguments after argv[0] are compared, as the tail of the live command line.
    live = command_line(pid)
    tail = list(argv[1:])
    return live[-len(tail) :] == tail if tail else bool(live)


def children_of(pid: int) -> list[int]:
    """The live (not zombie) processes whose parent is `pid`, in pid order.

    Read from every /proc/PID/stat: /proc/PID/task/*/children needs CONFIG_PROC_CHILDREN,
    which not every kernel has."""
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            state, parent = (entry / "stat").read_text().rsplit(")", 1)[1].split()[:2]
        except (OSError, ValueError):
            continue  # gone meanwhile
        if int(parent) == pid and state not in ("Z", "X"):
            found.append(int(entry.name))
    return sorted(found)


def terminate(pid: int, timeout: float) -> None:
    """Stop `pid`: SIGTERM to it, then after `timeout` SIGKILL to its process group when it
    leads one (to it alone otherwise)."""
    _signal(pid, signal.SIGTERM, group=False)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_alive(pid):
            return
        time.sleep(0.1)
    _signal(pid, signal.SIGKILL, group=True)
    deadline = time.monotonic() + 10
    while is_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)


def _signal(pid: int, sig: signal.Signals, *, group: bool) -> None:
    # The polite signal goes to the leader alone: a supervisor turns it into its program's
    # own stop signal (PostgreSQL's backends must not get a SIGTERM of their own).
    try:
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)
    except ProcessLookupError:
        pass


# Below Linux's ephemeral range (32768-60999): an outgoing connection's local port is taken from
# that range, and could take a port between our choosing it and a server binding it.
_PORT_RANGE = (20000, 32767)


def free_ports(count: int) -> list[int]:
    """`count` different TCP ports on 127.0.0.1 that nothing listens on right now.

    Each probe stays bound until all are chosen, so no port is handed out twice."""
    probes: list[socket.socket] = []
    try:
        while len(probes) < count:
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                probe.bind(("127.0.0.1", random.randint(*_PORT_RANGE)))
            except OSError:
                probe.close()
                continue
            probes.append(probe)
        return [int(probe.getsockname()[1]) for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    return free_ports(1)[0]


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file, for error messages."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} does not exist)"


def ensure_secret_file(path: Path, nbytes: int = 32) -> str:
    """The secret in `path`, first writing a random URL-safe one (mode 0600) if it is absent."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(nbytes) + "\n")
    return path.read_text().strip()


@functools.cache
def _apt_update() -> None:
    _run_apt(["apt-get", "update"])


def apt_install(packages: Sequence[str]) -> None:
    """Install Debian packages (running `apt-get update` once per process first)."""
    if os.geteuid() != 0:
        raise ProcessError(
            f"{' '.join(packages)} missing; install them as root: apt-get install -y "
            + " ".join(packages)
        )
    _apt_update()
    _run_apt(["apt-get", "install", "-y", *packages])


def _run_apt(argv: list[str]) -> None:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    result = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True)
    if result.returncode != 0:
        output = (result.stdout + result.stderr).decode(errors="replace")[-3000:]
        raise ProcessError(f"`{' '.join(argv)}` failed ({result.returncode}):\n{output}")


def compose_command() -> list[str] | None:
    """The installed Docker Compose implementation (`docker compose` or `docker-compose`)."""
    docker = shutil.which("docker")
    if docker:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True)
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def ensure_compose() -> list[str]:
    """Install Debian's docker-compose when no Compose implementation is present."""
    command = compose_command()
    if command is None:
        apt_install(["docker-compose"])
        command = compose_command()
    if command is None:
        raise ProcessError("docker-compose installed but still not found on PATH")
    return command


def ensure_command(binary: str, package: str) -> str:
    """The path of `binary`, installing Debian's `package` when it is missing."""
    found = shutil.which(binary)
    if found is None:
        apt_install([package])
        found = shutil.which(binary)
    if found is None:
        raise ProcessError(f"{package} installed but {binary} is still not on PATH")
    return found
