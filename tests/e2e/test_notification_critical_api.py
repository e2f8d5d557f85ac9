"""Critical (operational) templates over HTTP: they override opt-outs and quiet hours, so only
an operator token (`notifications:send`) may ask for one; an ordinary user may not, not even
for themselves. Checked against the running gateway, reading the requests topic back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stack import prepared, running
from test_http_api import assert_problem
from test_notifications_api import WRITE, Client, requests_for

from infra.config.settings import Settings
from sagas.rendering import DEFAULT_TEMPLATE_ROOT, load_sample

SEND = ["notifications:send"]


@pytest.fixture(scope="module")
def client(module_settings: Settings) -> Iterator[Client]:
    settings = prepared(module_settings)
    with running(settings, ("command-processor", "projector", "gateway")):
        made = Client(settings)
        yield made
        made.http.close()


def alert(client: Client, user_id: str, key: str) -> dict[str, object]:
    data = load_sample(DEFAULT_TEMPLATE_ROOT, "anomaly_alert")
    # Links a template shows must lie under the app's URL, or the request is refused.
    data["dashboard_url"] = f"{client.settings.app_url}/dashboard#anomalies"
    return {"user_id": user_id, "template": "anomaly_alert", "data": data, "idempotency_key": key}


def test_an_ordinary_user_cannot_request_a_critical_template(client: Client) -> None:
    user_id = client.new_user()

    refused = client.notify(user_id, WRITE, **alert(client, user_id, "alert-self"))

    body = assert_problem(refused, 403, "insufficient-scope")
    assert "anomaly_alert is critical" in body["detail"] and "notifications:send" in body["detail"]
    # The same token may still ask for an ordinary template for itself.
    data = load_sample(DEFAULT_TEMPLATE_ROOT, "welcome")
    welcome = {"user_id": user_id, "template": "welcome", "data": data}
    assert client.notify(user_id, WRITE, **welcome).status_code == 202


def test_an_operator_may_request_a_critical_template_for_anyone(client: Client) -> None:
    user_id = client.new_user()

    sent = client.notify("ops-console", SEND, **alert(client, user_id, "alert-ops"))

    assert sent.status_code == 202, sent.text
    [stored] = requests_for(client.settings, sent.json()["notification_id"])
    assert stored.record["data"]["template"] == "anomaly_alert"
    assert stored.record["data"]["requested_by"] == "ops-console"


def test_an_unknown_template_is_still_a_422_before_any_scope_check(client: Client) -> None:
    user_id = client.new_user()
    body = {"user_id": user_id, "template": "digest", "data": {}}

    assert_problem(client.notify(user_id, WRITE, **body), 422, "invalid-body")
    assert_problem(client.notify("ops", SEND, **body), 422, "invalid-body")
