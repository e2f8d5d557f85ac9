"""Settings that would break an invariant are refused when a process starts."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from infra.config.settings import Settings


def test_the_saga_horizon_must_outlive_two_saga_lifetimes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEXUS_NOTIFICATION_DEADLINE_S", "3600")
    monkeypatch.setenv("NEXUS_NOTIFICATION_DIGEST_WINDOW_S", "900")
    monkeypatch.setenv("NEXUS_NOTIFICATION_HORIZON_S", "8999")
    with pytest.raises(ValidationError, match="at least twice NEXUS_NOTIFICATION_DEADLINE_S"):
        Settings()

    monkeypatch.setenv("NEXUS_NOTIFICATION_HORIZON_S", "9000")
    assert Settings().notification_horizon_s == 9000
