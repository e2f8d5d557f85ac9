"""The README's scope table names every operator scope, and the prose every default one."""

from __future__ import annotations

import re

from gateway.auth import DEFAULT_SCOPES, OPERATOR_SCOPES
from infra.config.settings import PROJECT_ROOT

README = (PROJECT_ROOT / "README.md").read_text()


def test_the_scope_table_is_the_operator_scopes() -> None:
    rows = re.findall(r"^\| `([a-z]+:[a-z]+)` \| ", README, flags=re.MULTILINE)
    assert sorted(rows) == sorted(OPERATOR_SCOPES)


def test_every_default_scope_is_named() -> None:
    assert [s for s in DEFAULT_SCOPES if f"`{s}`" not in README] == []
    assert not set(DEFAULT_SCOPES) & set(OPERATOR_SCOPES)
