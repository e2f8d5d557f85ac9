"""The anomaly alert's link leads somewhere: the shipped workflow builds it from the app URL,
the gateway has a route for its path, and the page that route serves has the element its
fragment names (the anomalies table of the dashboard page)."""

from __future__ import annotations

from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Match
from test_workflows import ANOMALY, SETTINGS, SHIPPED, FakeLookups, event, planned

from gateway.app import create_app
from infra.config.settings import Settings
from sagas.workflows import plan


class Ids(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids.update(value for name, value in attrs if name == "id" and value)


def alert_link() -> str:
    detected = event("analytics.anomaly_detected", "a-1", ANOMALY)
    outcome = plan(SHIPPED, detected, FakeLookups({}, {}), {**SETTINGS, "ops_user_id": "u-ops"})
    [(_, template, data)] = planned(outcome)
    assert template == "anomaly_alert"
    link: str = data["dashboard_url"]
    return link


def gateway_route(path: str) -> BaseRoute:
    scope = {"type": "http", "path": path, "method": "GET"}
    matching = [r for r in create_app(Settings()).routes if r.matches(scope)[0] == Match.FULL]
    assert matching, f"the gateway has no GET route for {path}"
    return matching[0]


async def test_the_anomaly_alert_links_to_the_anomalies_on_the_dashboard_page() -> None:
    link = urlsplit(alert_link())
    assert f"{link.scheme}://{link.netloc}" == SETTINGS["app_url"]
    route = gateway_route(link.path)

    transport = httpx.ASGITransport(app=Starlette(routes=[route]))
    async with httpx.AsyncClient(transport=transport, base_url=SETTINGS["app_url"]) as client:
        page = await client.get(link.path)

    assert page.status_code == 200
    ids = Ids()
    ids.feed(page.text)
    assert link.fragment in ids.ids, f"{link.path} has no element #{link.fragment}"
