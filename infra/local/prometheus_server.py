"""The Prometheus `nexus up` runs: Debian's `prometheus` package on 127.0.0.1, scraping every
Nexus instance and evaluating the rules in infra/prometheus/rules.yml.

Its configuration is written from the settings on every start (infra.local.prometheus_config)
and its data kept under `<home>/prometheus/`, so `nexus down && nexus up` keeps the series.
It runs in the foreground under a supervisor (infra.local.supervise), which restarts it
whenever it ends. A `nexus up` that finds it running with another configuration (NEXUS_SCALE
changed) sends it SIGHUP, on which Prometheus reloads its configuration and rules.
"""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra.local.child_process import answers
from infra.local.processes import DetachedProcess, ProcessError, ensure_command, tail
from infra.local.supervise import supervised_argv, supervised_child

BINARY = "prometheus"
PACKAGE = "prometheus"  # Debian's; it brings promtool too
DEFAULT_PATH = "/usr/bin/prometheus"


def ensure_prometheus_installed() -> str:
    """The path of `prometheus`, installing Debian's package when it is missing."""
    return ensure_command(BINARY, PACKAGE)


@dataclass
class PrometheusServer:
    """One Prometheus with its configuration and data in `home`, on 127.0.0.1:`port`."""

    home: Path
    port: int
    config: str  # the prometheus.yml text
    log_file: Path
    pid_file: Path
    _supervisor: DetachedProcess | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return "prometheus"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def config_file(self) -> Path:
        return self.home / "prometheus.yml"

    def pid(self) -> int | None:
        return self._supervised().pid()

    def start(self) -> None:
        """Write the configuration; start the supervised server, or have a running one
        reload a configuration that changed."""
        binary = ensure_prometheus_installed()
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        changed = not self.config_file.exists() or self.config_file.read_text() != self.config
        if changed:
            self.config_file.write_text(self.config)
        if (running := self.pid()) is not None:
            if changed:
                self._reload(running)
            return
        self._supervisor = None  # built again with the binary just found
        self._supervised(binary).start()

    def _reload(self, supervisor: int) -> None:
        server = supervised_child(supervisor)
        if server is not None:  # else it is being restarted, and reads the new file anyway
            os.kill(server, signal.SIGHUP)

    def wait_ready(self, timeout: float) -> None:
        """Block until /-/ready answers 200; fail early, naming the log, if it exits."""
        deadline = time.monotonic() + timeout
        while not answers(f"{self.url}/-/ready"):
            if self.pid() is None:
                raise ProcessError(self._failure("exited"))
            if time.monotonic() > deadline:
                raise ProcessError(self._failure(f"not ready after {timeout:.0f}s"))
            time.sleep(0.2)

    def stop(self, timeout: float) -> bool:
        return self._supervised().stop(timeout)

    def _supervised(self, binary: str | None = None) -> DetachedProcess:
        if self._supervisor is None:
            program = binary or shutil.which(BINARY) or DEFAULT_PATH
            server = [
                program,
                f"--config.file={self.config_file}",
                f"--storage.tsdb.path={self.home / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ]
            self._supervisor = DetachedProcess(
                self.name, supervised_argv(server), self.pid_file, self.log_file
            )
        return self._supervisor

    def _failure(self, what: str) -> str:
        return f"Prometheus {what} ({self.url}); see {self.log_file}:\n{tail(self.log_file)}"
