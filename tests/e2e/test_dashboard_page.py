"""The dashboard page in a real browser: headless Chromium loads /dashboard#token=... from a
running gateway, and the figures it shows must be those of the rollup rows written here.

The page writes every figure into plain elements (ids and data attributes) besides its
charts. `--dump-dom` gives the document once its scripts ran; it runs on virtual time,
which stands still while a request is open, so those pages are opened with `live=0` (no
stream). The live updates are followed over the DevTools protocol instead, in real time.
A screenshot is kept in test-artifacts/dashboard.png for people to look at.
"""

from __future__ import annotations

import json
import random
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from browser import DevTools, chromium
from conftest import ARTIFACTS
from stack import prepared, running
from test_analytics_api import (
    BASE_TYPES,
    Tracked,
    anomaly,
    insert_anomalies,
    insert_rollups,
    ranked,
    synthetic,
    token,
    totals,
)

from infra.config.settings import Settings
from projections.analytics.rollups import bucket_of
from projections.migrations import migrate

READ = ["analytics:read"]
VIRTUAL_TIME_MS = "15000"  # the page's own timers; real time passes while it loads data


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "".join(self.texts).strip()


class Document(HTMLParser):
    """The dumped DOM, with every element that has an id, by id."""

    VOID = frozenset({"meta", "link", "br", "img", "input", "hr", "source", "wbr"})

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, Element] = {}
        self.body: Element | None = None
        self._open: list[Element] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        if self._open:
            self._open[-1].children.append(element)
        if "id" in element.attrs:
            self.by_id[element.attrs["id"]] = element
        if tag == "body":
            self.body = element
        if tag not in self.VOID:
            self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        while self._open and self._open.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        for element in self._open:
            element.texts.append(data)

    def __getitem__(self, element_id: str) -> Element:
        return self.by_id[element_id]


@dataclass(frozen=True)
class Stack:
    settings: Settings
    events: list[Tracked]  # of the last 40 minutes, so within the page's default hour


@contextmanager
def gateway_with_rollups(settings: Settings) -> Iterator[Stack]:
    settings = prepared(settings)
    migrate(settings.resolved_database_url)
    now = datetime.now(UTC)
    events = synthetic(random.Random(5), now - timedelta(minutes=40), 38 * 60, 400, BASE_TYPES)
    insert_rollups(settings.resolved_database_url, events)
    minute = bucket_of(now, "minute")
    anomalies = [anomaly(i, minute - timedelta(minutes=10 + i)) for i in range(3)]
    insert_anomalies(settings.resolved_database_url, anomalies)
    with running(settings, ["gateway"]):
        yield Stack(settings, events)


@pytest.fixture(scope="module")
def stack(module_settings: Settings) -> Iterator[Stack]:
    with gateway_with_rollups(module_settings) as started:
        yield started


def page_url(settings: Settings, fragment: str) -> str:
    return f"http://127.0.0.1:{settings.gateway_port}/dashboard{fragment}"


def with_token(settings: Settings, scopes: list[str], live: bool = False) -> str:
    return f"#token={token(settings, scopes)}" + ("" if live else "&live=0")


def shown(settings: Settings, fragment: str, profile: Path) -> Document:
    dumped = chromium(
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        "--dump-dom",
        page_url(settings, fragment),
        profile=profile,
    )
    return Document(dumped.stdout)


def test_the_page_shows_the_rollups(stack: Stack, tmp_path: Path) -> None:
    doc, events = shown(stack.settings, with_token(stack.settings, READ), tmp_path), stack.events
    assert doc["status"].attrs["data-state"] == "loaded", doc["status"].text
    assert doc["total-events"].attrs["data-value"] == str(len(events))
    assert doc["total-events"].text == f"{len(events):,}"
    for event_type, count in totals(events).items():
        assert doc[f"total-{event_type.replace('.', '-')}"].attrs["data-value"] == str(count)
    users = len({e.user for e in events})
    assert abs(int(doc["active-users"].attrs["data-value"]) - users) <= 0.03 * users
    pages = ranked([e.top for e in events if e.type == "page.view"])
    items = doc["top-pages"].children
    assert [(li.attrs["data-value"], int(li.attrs["data-count"])) for li in items] == [
        (page["value"], page["count"]) for page in pages
    ]
    assert [li.children[0].text for li in items] == [page["value"] for page in pages]
    assert doc["top-pages-chart"].attrs["data-points"] == "10"
    assert json.loads(doc["series-chart"].attrs["data-points"]) == _points_per_type(events)
    minutes = {bucket_of(e.at, "minute") for e in events}
    assert doc["series-chart"].attrs["data-labels"] == str(len(minutes))
    assert doc["anomalies"].attrs["data-count"] == "3"
    p50 = json.loads(doc["p50-page-view"].attrs["data-values"])["duration_ms"]["p50"]
    assert 20 <= p50 <= 4000


def test_without_a_usable_token_the_page_says_so(stack: Stack, tmp_path: Path) -> None:
    missing = shown(stack.settings, "", tmp_path / "missing")
    assert missing["status"].attrs["data-state"] == "error"
    assert "no token" in missing["status"].text
    refused_token = with_token(stack.settings, ["users:read"])
    refused = shown(stack.settings, refused_token, tmp_path / "refused")
    assert refused["status"].attrs["data-state"] == "error"
    assert "403" in refused["status"].text and "analytics:read" in refused["status"].text
    assert refused["total-events"].attrs["data-value"] == ""


def test_screenshot(stack: Stack, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    png = ARTIFACTS / "dashboard.png"
    png.unlink(missing_ok=True)
    chromium(
        f"--virtual-time-budget={VIRTUAL_TIME_MS}",
        f"--screenshot={png}",
        "--window-size=1280,900",
        "--hide-scrollbars",
        page_url(stack.settings, with_token(stack.settings, READ)),
        profile=tmp_path,
    )
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (1280, 900)
    assert len(data) > 30_000  # charts and tables, not a blank page


def test_page_and_vendored_files_need_no_token(stack: Stack) -> None:
    base = f"http://127.0.0.1:{stack.settings.gateway_port}"
    page = httpx.get(f"{base}/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert '<script src="/static/vendor/chart.umd.js">' in page.text
    chart = httpx.get(f"{base}/static/vendor/chart.umd.js")
    assert chart.status_code == 200 and "Chart.js v4.4." in chart.text[:200]
    assert "MIT License" in httpx.get(f"{base}/static/vendor/chart.js.LICENSE.md").text
    assert httpx.get(f"{base}/static/dashboard.js").status_code == 200


def test_the_page_follows_the_live_stream(settings: Settings, tmp_path: Path) -> None:
    """Its own gateway and database: new rollup rows reach the open page within seconds."""
    with gateway_with_rollups(settings) as live:
        browser = DevTools(tmp_path / "profile")
        try:
            browser.open(page_url(live.settings, with_token(live.settings, READ, live=True)))
            browser.wait_for("document.body.dataset.source === 'stream'", timeout=30)
            assert browser.evaluate(_figure("total-events")) == str(len(live.events))
            assert browser.evaluate("location.hash") == ""  # the token left the address bar
            now = datetime.now(UTC)
            signed_in = synthetic(
                random.Random(3), now - timedelta(minutes=3), 90, 7, ["auth.signed_in"]
            )
            insert_rollups(live.settings.resolved_database_url, signed_in)
            new_total = str(len(live.events) + len(signed_in))
            browser.wait_for(f"{_figure('total-events')} === '{new_total}'", timeout=20)
            assert browser.evaluate(_figure("total-auth-signed-in")) == str(len(signed_in))
            assert browser.evaluate("document.getElementById('status').dataset.state") == "live"
        finally:
            browser.close()


def _figure(element_id: str) -> str:
    return f"document.getElementById('{element_id}')?.dataset.value"


def _points_per_type(events: list[Tracked]) -> dict[str, int]:
    buckets: dict[str, set[datetime]] = {}
    for event in events:
        buckets.setdefault(event.type, set()).add(bucket_of(event.at, "minute"))
    return {event_type: len(buckets[event_type]) for event_type in sorted(buckets)}
