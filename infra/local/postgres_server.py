"""A private PostgreSQL cluster (TCP on 127.0.0.1 only, scram auth) for `nexus up` and the tests.

The server runs in the foreground (`postgres -D DATA`) under a supervisor (infra.local.supervise),
so a crashed or killed postmaster comes back by itself: it removes its stale postmaster.pid and
recovers from the WAL. Stopping the supervisor makes it a fast shutdown (SIGINT).

initdb and postgres refuse to run as root, so under root every server binary runs as the
`postgres` OS user (initdb via runuser, the server via the supervisor's tether), and the data
dir belongs to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from infra.local.processes import (
    DetachedProcess,
    ProcessError,
    apt_install,
    ensure_secret_file,
    is_alive,
    tail,
)
from infra.local.supervise import supervised_argv

SERVER_USER = "postgres"
CONFIG_FILE = "nexus.conf"


def find_postgres_bin() -> Path | None:
    """The bin dir of the highest installed PostgreSQL major version, if any."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if not found:
        return None
    return Path(max(found, key=lambda path: int(Path(path).parts[-3]))).parent


def ensure_postgres_installed() -> Path:
    """The PostgreSQL bin dir, installing Debian's `postgresql` package when it is missing."""
    if (bin_dir := find_postgres_bin()) is not None:
        return bin_dir
    apt_install(["postgresql"])
    if (bin_dir := find_postgres_bin()) is None:
        raise ProcessError("`apt-get install postgresql` ran but no initdb was found")
    return bin_dir


@dataclass
class PostgresServer:
    """One cluster in `data_dir`, owned by the `nexus` superuser, with a `nexus` database."""

    data_dir: Path
    port: int
    password_file: Path
    log_file: Path
    bin_dir: Path | None = None
    user: str = "nexus"
    database: str = "nexus"
    fsync: bool = True
    pid_file: Path | None = None  # the supervisor's; default: beside the data dir
    _supervisor: DetachedProcess | None = field(default=None, init=False, repr=False)

    @property
    def name(self) -> str:
        return "postgres"

    def url(self, database: str | None = None) -> str:
        password = self.password_file.read_text().strip()
        name = database or self.database
        return f"postgresql://{self.user}:{password}@127.0.0.1:{self.port}/{name}"

    @property
    def admin_url(self) -> str:
        return self.url("postgres")

    def pid(self) -> int | None:
        """The supervisor's pid while it runs. Else the postmaster's of a server started
        without one (by `pg_ctl`, before servers were supervised), so `stop` still reaches it."""
        supervisor = self._supervised()
        pid = supervisor.pid() if supervisor is not None else None
        return pid if pid is not None else self._unsupervised_postmaster()

    def start(self, timeout: float = 60.0) -> None:
        """initdb once, write the config, run the supervised server, wait until it accepts
        connections and create the database; a no-op while it runs."""
        if self.pid() is not None:
            return
        ensure_secret_file(self.password_file)
        self.bin_dir = self.bin_dir or ensure_postgres_installed()
        if _as_root():
            user = pwd.getpwnam(SERVER_USER)
            for folder in (self.data_dir.parent, self.log_file.parent):
                folder.mkdir(parents=True, exist_ok=True)
                _check_traversable(folder, user)
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb()
        self._write_config()
        supervisor = self._supervised()
        assert supervisor is not None  # bin_dir is known by now
        supervisor.start()
        self.wait_ready(timeout)
        self.ensure_database(self.database)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Block until the server accepts a connection; fail early, naming the log, when
        nothing runs any more."""
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(self.admin_url, connect_timeout=2).close()
                return
            except psycopg.OperationalError as exc:  # refused, or starting up, or recovering
                if self.pid() is None:
                    raise ProcessError(self._failure("exited", exc)) from exc
                if time.monotonic() > deadline:
                    raise ProcessError(self._failure(f"not ready after {timeout}s", exc)) from exc
            time.sleep(0.2)

    def stop(self, timeout: float = 60.0) -> bool:
        """Fast shutdown (rolls back open transactions), SIGKILL after `timeout`; True if it
        was running."""
        supervisor = self._supervised()
        if supervisor is not None and supervisor.pid() is not None:
            return supervisor.stop(timeout)
        if self._unsupervised_postmaster() is None:
            return False
        self._pg_ctl("stop", "-m", "fast", "-w", "-t", str(int(timeout)))
        return True

    def _supervised(self) -> DetachedProcess | None:
        """The supervisor running `postgres -D`, once the bin dir is known."""
        bin_dir = self.bin_dir or find_postgres_bin()
        if self._supervisor is None and bin_dir is not None:
            server = [str(bin_dir / "postgres"), "-D", str(self.data_dir)]
            argv = supervised_argv(
                server, stop_signal=signal.SIGINT, user=SERVER_USER if _as_root() else None
            )
            pid_file = self.pid_file or self.data_dir.with_name(f"{self.data_dir.name}.pid")
            self._supervisor = DetachedProcess(
                "postgres", argv, pid_file, self.log_file, cwd=Path("/")
            )
        return self._supervisor

    def _unsupervised_postmaster(self) -> int | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError):
            return None
        return pid if is_alive(pid) and _is_postgres(pid) else None

    def _failure(self, what: str, exc: Exception) -> str:
        return f"PostgreSQL {what} ({exc}); see {self.log_file}:\n{tail(self.log_file)}"

    def ensure_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{name}"')

    def _initdb(self) -> None:
        self._prepare_data_dir()
        fd, pwfile = tempfile.mkstemp(prefix="nexus-pg-pw-")
        try:
            with os.fdopen(fd, "w") as file:
                file.write(self.password_file.read_text().strip() + "\n")
            self._chown(Path(pwfile))
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", self.user,
                "--auth=scram-sha-256", f"--pwfile={pwfile}", "--encoding=UTF8", "--no-locale",
            )  # fmt: skip
        finally:
            os.unlink(pwfile)
        with open(self.data_dir / "postgresql.conf", "a") as conf:
            conf.write(f"\ninclude_if_exists = '{CONFIG_FILE}'\n")

    def _write_config(self) -> None:
        path = self.data_dir / CONFIG_FILE
        path.write_text(
            "# Written by infra/local/postgres_server.py on every start.\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {self.port}\n"
            "unix_socket_directories = ''\n"
            f"fsync = {'on' if self.fsync else 'off'}\n"
            "max_connections = 200\n"
        )
        self._chown(path)

    def _prepare_data_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        if any(self.data_dir.iterdir()):
            raise ProcessError(f"{self.data_dir} is not empty and holds no PostgreSQL cluster")
        self._chown(self.data_dir)

    def _pg_ctl(self, *args: str) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), *args)

    def _run(self, program: str, *args: str) -> None:
        bin_dir = self.bin_dir or ensure_postgres_installed()
        argv = [str(bin_dir / program), *args]
        if _as_root():
            argv = ["runuser", "-u", SERVER_USER, "--", *argv]
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd="/"
        )
        if result.returncode != 0:
            raise ProcessError(
                f"`{program} {' '.join(args[:1])}` failed ({result.returncode}):\n"
                f"{result.stdout}{result.stderr}\n--- {self.log_file}:\n{tail(self.log_file)}"
            )

    def _chown(self, path: Path) -> None:
        if _as_root():
            user = pwd.getpwnam(SERVER_USER)
            os.chown(path, user.pw_uid, user.pw_gid)


def _is_postgres(pid: int) -> bool:
    # postmaster.pid survives a crash or reboot; its pid may now belong to another program.
    try:
        return b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False


def _as_root() -> bool:
    return os.geteuid() == 0


def _check_traversable(path: Path, user: pwd.struct_passwd) -> None:
    """Raise unless `user` may enter every folder from / down to `path`."""
    groups = {user.pw_gid, *os.getgrouplist(user.pw_name, user.pw_gid)}
    for folder in [*reversed(path.resolve().parents), path.resolve()]:
        info = folder.stat()
        if info.st_uid == user.pw_uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise ProcessError(
                f"PostgreSQL runs as the `{user.pw_name}` OS user, which cannot enter {folder} "
                f"(mode {stat.filemode(info.st_mode)}); run `chmod o+x {folder}` or put the "
                "data dir elsewhere (NEXUS_HOME)"
            )
