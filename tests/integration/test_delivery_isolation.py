"""Concurrent deliveries keep their provider responses apart: the ledger shows each user's
`provider_response`, so one user's must never hold another's recipient or answer.

Real receivers: aiosmtpd for email, an HTTP sink standing in for an ntfy server.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
from aiosmtpd.controller import Controller
from test_delivery import Mailbox, render
from webhook_sink import webhook_sink

from infra.local.processes import free_port
from sagas.adapters.apprise_notifier import AppriseNotifier
from sagas.adapters.config import DeliveryConfig, NtfyConfig, SmtpConfig
from sagas.adapters.port import DeliveryResult

ROUNDS = 24  # sends per user, interleaved over more threads than users


@pytest.fixture
def smtp_port() -> Iterator[int]:
    port = free_port()
    controller = Controller(Mailbox(), hostname="127.0.0.1", port=port)
    controller.start()
    yield port
    controller.stop()


def send_interleaved(
    notifier: AppriseNotifier, channel: str, addresses: tuple[str, str]
) -> list[tuple[str, DeliveryResult]]:
    rendered = render("welcome", channel)
    jobs = [addresses[i % 2] for i in range(2 * ROUNDS)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda a: notifier.send(channel, a, rendered, 5), jobs))  # type: ignore[arg-type]
    return list(zip(jobs, results, strict=True))


def assert_one_send_each(sent: list[tuple[str, DeliveryResult]], line: str) -> None:
    """Each response holds the provider's line for its own send, and no other send's."""
    for address, result in sent:
        assert result.ok, result
        assert result.provider_response.count(line) == 1, (address, result.provider_response)


def test_concurrent_emails_to_two_users_each_record_their_own_response(smtp_port: int) -> None:
    smtp = SmtpConfig("127.0.0.1", smtp_port, "nexus@example.com", mode="insecure")
    notifier = AppriseNotifier(DeliveryConfig(smtp=smtp))

    sent = send_interleaved(notifier, "email", ("ada@example.com", "bob@example.com"))

    assert_one_send_each(sent, "Sent Email to")
    for address, result in sent:
        other = "bob@" if address.startswith("ada@") else "ada@"
        assert f"Sent Email to {address}" in result.provider_response
        assert other not in result.provider_response, (address, result.provider_response)


def test_concurrent_pushes_to_two_users_each_record_their_own_response() -> None:
    with webhook_sink() as (_, port):
        config = DeliveryConfig(
            allow_list=(f"127.0.0.1:{port}",), ntfy=NtfyConfig(f"http://127.0.0.1:{port}")
        )
        notifier = AppriseNotifier(config)

        sent = send_interleaved(notifier, "push", ("ada-topic", "bob-topic"))

    # apprise names the server, not the topic, in its line: one line per send is the check.
    assert_one_send_each(sent, "Sent ntfy notification")
