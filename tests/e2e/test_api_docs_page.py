"""The API docs page in a real browser: headless Chromium opens /api/docs from a running
gateway, Swagger UI renders one block per operation of /api/openapi.json, and no request
leaves the host, with the page's Content-Security-Policy in force and with it bypassed
(so that nothing is merely blocked). A screenshot is kept in test-artifacts/api-docs.png.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import DevTools
from conftest import ARTIFACTS
from stack import prepared, running

from infra.config.settings import Settings

METHODS = ("get", "put", "post", "delete", "patch")
RENDERED = "document.body.dataset.state === 'rendered'"
OPERATION_BLOCKS = "document.querySelectorAll('#swagger-ui .opblock').length"


@pytest.fixture(scope="module")
def base(module_settings: Settings) -> Iterator[str]:
    settings = prepared(module_settings)
    with running(settings, ["gateway"]):
        yield f"http://127.0.0.1:{settings.gateway_port}"


@pytest.fixture(scope="module")
def document(base: str) -> dict[str, Any]:
    answer = httpx.get(f"{base}/api/openapi.json")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/json"
    found: dict[str, Any] = answer.json()
    return found


def operation_count(document: dict[str, Any]) -> int:
    return sum(1 for item in document["paths"].values() for m in METHODS if m in item)


def open_docs(browser: DevTools, base: str, *, bypass_csp: bool) -> None:
    before = [("Network.enable", {}), ("Log.enable", {}), ("Runtime.enable", {})]
    if bypass_csp:
        before.append(("Page.setBypassCSP", {"enabled": True}))
    browser.open(f"{base}/api/docs", before=before)
    browser.wait_for(RENDERED, timeout=60)


def requested(browser: DevTools) -> list[str]:
    return [event["request"]["url"] for event in browser.named("Network.requestWillBeSent")]


def leaving(urls: list[str], base: str) -> list[str]:
    """The requests to the network (data: and blob: URLs are not) elsewhere than `base`."""
    remote = [url for url in urls if url.split(":", 1)[0] in ("http", "https", "ws", "wss")]
    return [url for url in remote if not url.startswith(f"{base}/")]


def test_the_page_renders_every_operation(
    base: str, document: dict[str, Any], tmp_path: Path
) -> None:
    browser = DevTools(tmp_path / "profile")
    try:
        open_docs(browser, base, bypass_csp=False)
        expected = operation_count(document)
        browser.wait_for(f"{OPERATION_BLOCKS} === {expected}", timeout=30)
        text = browser.evaluate("document.getElementById('swagger-ui').innerText")
        assert "Register user" in text and "/api/v1/events" in text and "Nexus" in text
        assert browser.evaluate("document.querySelectorAll('.opblock-tag').length") >= 8
        violations = [e["entry"]["text"] for e in browser.named("Log.entryAdded")
                      if "Content Security Policy" in e["entry"]["text"]]  # fmt: skip
        assert violations == []
        assert leaving(requested(browser), base) == []
        ARTIFACTS.mkdir(exist_ok=True)
        png = browser.screenshot(ARTIFACTS / "api-docs.png")
    finally:
        browser.close()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", png[16:24])
    assert width >= 700 and height >= 2000  # the whole page, every operation listed
    assert len(png) > 50_000


def test_no_request_leaves_the_host_even_without_the_policy(base: str, tmp_path: Path) -> None:
    """With CSP bypassed, anything the page would load from elsewhere is requested, not
    blocked: so every request it makes must still go to the gateway."""
    browser = DevTools(tmp_path / "profile")
    try:
        open_docs(browser, base, bypass_csp=True)
        browser.wait_for(f"{OPERATION_BLOCKS} > 0", timeout=30)
        # Expanding an operation loads nothing more either.
        browser.evaluate("document.querySelector('.opblock-summary-control').click()")
        browser.wait_for("document.querySelectorAll('.opblock-body').length > 0", timeout=10)
        urls = requested(browser)
    finally:
        browser.close()
    assert f"{base}/api/openapi.json" in urls
    assert f"{base}/static/vendor/swagger-ui-bundle.js" in urls
    assert leaving(urls, base) == []


def test_the_page_forbids_other_origins_and_ships_its_licenses(base: str) -> None:
    page = httpx.get(f"{base}/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "http" not in policy  # no other origin named anywhere
    assert '<script src="/static/vendor/swagger-ui-bundle.js">' in page.text
    license_text = httpx.get(f"{base}/static/vendor/swagger-ui.LICENSE").text
    assert "Apache License" in license_text
    assert "SmartBear" in httpx.get(f"{base}/static/vendor/swagger-ui.NOTICE").text
    bundled = httpx.get(f"{base}/static/vendor/swagger-ui-bundle.js.LICENSE.txt")
    assert bundled.status_code == 200
