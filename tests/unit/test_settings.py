"""Settings that would break an invariant are refused when a process starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.config.scale import SERVICES
from infra.config.settings import Settings


def test_the_saga_horizon_must_outlive_two_saga_lifetimes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_NOTIFICATION_DEADLINE_S", "3600")
    monkeypatch.setenv("NEXUS_NOTIFICATION_DIGEST_WINDOW_S", "900")
    monkeypatch.setenv("NEXUS_NOTIFICATION_HORIZON_S", "8999")
    with pytest.raises(ValidationError, match="at least twice NEXUS_NOTIFICATION_DEADLINE_S"):
        Settings()

    monkeypatch.setenv("NEXUS_NOTIFICATION_HORIZON_S", "9000")
    assert Settings().notification_horizon_s == 9000


def test_scale_reads_service_counts_and_defaults_to_one_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEXUS_SCALE", " projector=2, gateway=3 ,command-processor=1")
    settings = Settings()

    assert settings.scale == {"projector": 2, "gateway": 3, "command-processor": 1}
    assert [settings.instances(name) for name in SERVICES] == [1, 2, 1, 1, 1, 3]
    # Dumped as NEXUS_SCALE text, so a child process handed the settings reads them back.
    assert Settings(scale=settings.model_dump()["scale"]).scale == settings.scale
    assert Settings(scale="").scale == {}


@pytest.mark.parametrize(
    ("value", "error"),
    [
        ("projector", r"'projector' is not SERVICE=COUNT"),
        ("projector=two", r"'projector=two' is not SERVICE=COUNT"),
        ("projector=-1", r"'projector=-1' is not SERVICE=COUNT"),
        ("projectors=2", r"unknown service 'projectors'; one of command-processor, projector"),
        ("notifier=2,notifier=3", r"notifier is given twice"),
        ("notifier=0", r"scale\.notifier\s+Input should be greater than or equal to 1"),
        ("gateway=17", r"scale\.gateway\s+Input should be less than or equal to 16"),
    ],
)
def test_a_bad_scale_is_refused_naming_the_entry(
    monkeypatch: pytest.MonkeyPatch, value: str, error: str
) -> None:
    monkeypatch.setenv("NEXUS_SCALE", value)
    with pytest.raises(ValidationError, match=error):
        Settings()


def test_instances_get_ports_ten_apart_and_gateways_share_theirs() -> None:
    settings = Settings(scale="projector=3,gateway=2")

    assert settings.instance_ports("projector") == [3102, 3112, 3122]
    assert settings.instance_ports("command-processor") == [3101]
    assert settings.instance_ports("gateway") == [3010, 3020]  # each serves 3000 too
    assert Settings().instance_ports("gateway") == [3000]


def test_instance_ports_that_collide_are_refused() -> None:
    with pytest.raises(ValidationError, match=r"the same or no port \(\[3111\]\)"):
        Settings(scale="command-processor=2", projector_health_port=3111)
    with pytest.raises(ValidationError, match=r"the same or no port \(65541\)"):
        Settings(scale="analytics=2", analytics_health_port=65531)


def test_prometheus_shares_no_port_with_an_instance() -> None:
    with pytest.raises(ValidationError, match="NEXUS_PROMETHEUS_PORT give the same"):
        Settings(prometheus_port=3112, scale="projector=2")

    assert Settings(prometheus_port=3112).prometheus_port == 3112  # one projector: 3102 only
