"""Detached processes, service declarations and the `nexus` CLI's process commands."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path

import pytest

from infra.cli.main import build_parser, main
from infra.config.settings import Settings
from infra.local.processes import (
    DetachedProcess,
    ProcessError,
    command_line,
    free_port,
    free_ports,
    is_alive,
)
from infra.local.service_env import SERVICE_PORT_FIELDS, with_free_ports
from infra.local.services import AppProcess, Service, all_services, app_services
from infra.local.supervise import supervised_argv, supervised_child

SLEEPER = "import time; time.sleep(60)"
# Touches the file named by its last argument once SIGTERM is ignored, so the test knows.
STUBBORN = (
    "import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "pathlib.Path(sys.argv[-1]).touch(); time.sleep(60)"
)
READY_SERVER = """
import http.server, sys
class Ready(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/readyz" else 404)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ready).serve_forever()
"""


def _process(tmp_path: Path, code: str, name: str = "sleeper") -> DetachedProcess:
    argv = [sys.executable, "-c", code, name]
    return DetachedProcess(name, argv, tmp_path / f"{name}.pid", tmp_path / f"{name}.log")


def test_start_is_idempotent_and_stop_terminates(tmp_path: Path) -> None:
    process = _process(tmp_path, SLEEPER)
    pid = process.start()

    assert process.start() == pid
    assert process.pid() == pid
    assert process.stop(timeout=5) is True
    assert process.pid() is None
    assert not process.pid_file.exists()
    assert process.stop(timeout=5) is False


def test_a_pid_file_naming_another_program_counts_as_stopped(tmp_path: Path) -> None:
    process = _process(tmp_path, SLEEPER)
    process.pid_file.write_text(f"{os.getpid()}\n")

    assert process.pid() is None
    pid = process.start()
    try:
        assert pid != os.getpid()
    finally:
        process.stop(timeout=5)


def test_stop_kills_a_process_that_ignores_sigterm(tmp_path: Path) -> None:
    ignoring = tmp_path / "ignoring"
    argv = [sys.executable, "-c", STUBBORN, str(ignoring)]
    process = DetachedProcess("stubborn", argv, tmp_path / "s.pid", tmp_path / "s.log")
    process.start()
    deadline = time.monotonic() + 20
    while not ignoring.exists():  # under load the child may not have set its handler yet
        assert time.monotonic() < deadline
        time.sleep(0.02)

    assert process.stop(timeout=0.5) is True
    assert process.pid() is None


def test_the_starter_trusts_its_child_while_the_command_line_differs(tmp_path: Path) -> None:
    # Between fork and exec a child's /proc/PID/cmdline is still its parent's, so comparing it
    # with argv called a live child dead ("web exited" with an empty log). `sh -c "exec sleep"`
    # makes that difference last: once exec'd, the command line is `sleep 60`.
    argv = ["sh", "-c", "exec sleep 60", "marker"]
    process = DetachedProcess("exec", argv, tmp_path / "exec.pid", tmp_path / "exec.log")
    pid = process.start()
    deadline = time.monotonic() + 20
    while command_line(pid) != ["sleep", "60"]:
        assert time.monotonic() < deadline, "never exec'd"
        time.sleep(0.02)

    assert process.pid() == pid
    # Anyone else (`nexus status`, `down`) compares command lines, against recycled pids.
    assert DetachedProcess("exec", argv, process.pid_file, process.log_file).pid() is None
    assert process.stop(timeout=5) is True
    assert not is_alive(pid)


def test_stop_ends_a_supervisor_and_its_program(tmp_path: Path) -> None:
    argv = supervised_argv([sys.executable, "-c", SLEEPER, "supervised"])
    process = DetachedProcess("supervised", argv, tmp_path / "s.pid", tmp_path / "s.log")
    supervisor = process.start()
    program = _child_of(supervisor)

    assert process.stop(timeout=10) is True
    assert not is_alive(supervisor)
    assert not is_alive(program)


def test_stop_kills_a_supervised_program_that_ignores_its_stop_signal(tmp_path: Path) -> None:
    ignoring = tmp_path / "ignoring"
    argv = supervised_argv([sys.executable, "-c", STUBBORN, str(ignoring)])
    process = DetachedProcess("stubborn", argv, tmp_path / "s.pid", tmp_path / "s.log")
    supervisor = process.start()
    program = _child_of(supervisor)
    deadline = time.monotonic() + 20
    while not ignoring.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)

    assert process.stop(timeout=1) is True
    assert not is_alive(supervisor)
    assert not is_alive(program)


def _child_of(supervisor: int) -> int:
    deadline = time.monotonic() + 20
    while (program := supervised_child(supervisor)) is None:
        assert time.monotonic() < deadline, "the supervisor started nothing"
        time.sleep(0.02)
    return program


def test_free_ports_are_distinct_bindable_and_outside_the_ephemeral_range() -> None:
    low, _ = (int(n) for n in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(200):
        ports = free_ports(6)
        assert len(set(ports)) == 6
        assert all(port < low for port in ports)
    with socket.socket() as server:
        server.bind(("127.0.0.1", ports[0]))


def test_every_service_gets_its_own_port() -> None:
    for _ in range(200):
        settings = with_free_ports(Settings())
        ports = {getattr(settings, field) for field in SERVICE_PORT_FIELDS.values()}
        assert len(ports) == len(SERVICE_PORT_FIELDS)


def test_app_process_is_ready_when_its_health_url_answers(tmp_path: Path) -> None:
    port = free_port()
    argv = (sys.executable, "-c", READY_SERVER, str(port))
    app = AppProcess(Service("web", argv, port, f"http://127.0.0.1:{port}/readyz"), tmp_path)
    app.start()
    try:
        app.wait_ready(timeout=20)
        assert (tmp_path / "run" / "web.pid").exists()
    finally:
        app.stop(timeout=5)


def test_app_process_that_exits_names_its_log_file(tmp_path: Path) -> None:
    argv = (sys.executable, "-c", "print('boom'); raise SystemExit(3)", "crasher")
    app = AppProcess(Service("crasher", argv, 1, "http://127.0.0.1:1/readyz"), tmp_path)
    app.start()

    with pytest.raises(ProcessError, match=r"crasher exited.*crasher\.log") as failure:
        app.wait_ready(timeout=20)
    assert "boom" in str(failure.value)
    app.stop(timeout=5)


@pytest.fixture(autouse=True)
def _no_external_infrastructure(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEXUS_KAFKA_BOOTSTRAP", raising=False)
    monkeypatch.delenv("NEXUS_DATABASE_URL", raising=False)


APP_SERVICES = ("command-processor", "projector", "workflows", "notifier", "analytics", "gateway")


def test_services_leave_out_external_infrastructure(tmp_path: Path) -> None:
    local = Settings(home=tmp_path)
    external = Settings(home=tmp_path, kafka_bootstrap="k:9092", database_url="postgresql://x")

    assert [s.name for s in all_services(local)] == [
        "kafka",
        "postgres",
        "prometheus",
        *APP_SERVICES,
    ]
    assert [s.name for s in all_services(external)] == ["prometheus", *APP_SERVICES]


def test_each_instance_has_its_own_name_pid_file_log_port_and_instance_id(
    tmp_path: Path,
) -> None:
    settings = Settings(home=tmp_path, scale="projector=2,gateway=2", instance_id="host")

    apps = {service.name: service for service in app_services(settings)}

    assert list(apps) == [
        "command-processor", "projector", "projector-2", "workflows", "notifier", "analytics",
        "gateway", "gateway-2",
    ]  # fmt: skip
    assert dict(apps["projector"].env) == {
        "NEXUS_INSTANCE_ID": "host",
        "NEXUS_PROJECTOR_HEALTH_PORT": "3102",
    }
    assert dict(apps["projector-2"].env) == {
        "NEXUS_INSTANCE_ID": "host-2",
        "NEXUS_PROJECTOR_HEALTH_PORT": "3112",
    }
    assert apps["projector-2"].argv == apps["projector"].argv
    assert apps["projector-2"].service == "projector"
    # Both gateways serve port 3000; each is probed on a port of its own.
    assert dict(apps["gateway-2"].env) == {
        "NEXUS_INSTANCE_ID": "host-2",
        "NEXUS_GATEWAY_INSTANCE_PORT": "3020",
    }
    assert apps["gateway"].health_url == "http://127.0.0.1:3010/readyz"
    processes = [AppProcess(service, tmp_path) for service in apps.values()]
    assert len({app.process.pid_file for app in processes}) == len(apps)
    assert len({app.log_file for app in processes}) == len(apps)


def test_status_lists_every_service_as_down(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path))

    assert main(["status"]) == 3

    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["SERVICE", "STATE", "PID", "PORT", "LAG"]
    assert {line.split()[0]: line.split()[1] for line in lines[1:]} == {
        "kafka": "down",
        "postgres": "down",
        "prometheus": "down",
        **{name: "down" for name in APP_SERVICES},
    }


def test_bad_settings_are_reported_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEXUS_SCALE", "projector=two")

    assert main(["up"]) == 2

    error = capsys.readouterr().err
    assert error.startswith("nexus up: invalid settings:\n")
    assert "NEXUS_SCALE: 'projector=two' is not SERVICE=COUNT" in error
    assert "Traceback" not in error


def test_logs_rejects_an_unknown_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path))

    assert main(["logs", "nope"]) == 2
    assert "unknown service 'nope'" in capsys.readouterr().err


def test_logs_of_a_kafka_cluster_show_every_node(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("NEXUS_HOME", str(tmp_path))
    monkeypatch.setenv("NEXUS_KAFKA_BROKERS", "3")
    (tmp_path / "logs").mkdir()
    for n in (1, 2, 3):
        (tmp_path / "logs" / f"kafka-{n}.log").write_text(f"node {n} says hello\n")

    assert main(["logs", "kafka", "-n", "1"]) == 0
    out = capfd.readouterr().out
    assert [line for line in out.splitlines() if "says hello" in line] == [
        "node 1 says hello",
        "node 2 says hello",
        "node 3 says hello",
    ]


def test_every_subcommand_parses() -> None:
    parser = build_parser()

    for argv in (["up"], ["down"], ["status"], ["logs", "gateway", "-f"], ["run", "projector"]):
        assert parser.parse_args(argv).command == argv[0]
