"""Addresses turned into apprise URLs: whole-string checks, linear on hostile input."""

from __future__ import annotations

import time

import pytest

from sagas.adapters.apprise_urls import AddressError, email_message, push_message
from sagas.adapters.config import DeliveryConfig, SmtpConfig
from sagas.rendering import Rendered

CONFIG = DeliveryConfig(smtp=SmtpConfig(host="127.0.0.1", port=25, from_addr="n@x.io"))
MAIL = Rendered("email", subject="s", text="t", html="<p>t</p>")


@pytest.mark.parametrize("address", ["a@b.co\n", "a@b.co;c@d.io", "<a@b.co>", "a@b"])
def test_a_bad_email_address_is_refused(address: str) -> None:
    with pytest.raises(AddressError):
        email_message(CONFIG, address, MAIL, 5.0)


def test_a_good_email_address_is_taken() -> None:
    assert "to=a%40b.co" in email_message(CONFIG, "a@b.co", MAIL, 5.0).url


def test_a_pathological_email_address_is_refused_at_once() -> None:
    started = time.perf_counter()
    with pytest.raises(AddressError):
        email_message(CONFIG, "a@" + "." * 40_000 + " ", MAIL, 5.0)
    assert time.perf_counter() - started < 0.05


def test_a_push_topic_with_a_trailing_newline_is_refused() -> None:
    with pytest.raises(AddressError):
        push_message(CONFIG, "topic\n", Rendered("push", title="t", body="b"), 5.0)
