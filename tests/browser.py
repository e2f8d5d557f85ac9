"""Test helper: headless Chromium, run once (`chromium(...)`: --dump-dom, --screenshot) or
driven over the DevTools protocol (`DevTools`), for the tests of the gateway's pages."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

BROWSER_TIMEOUT_S = 120
HEADLESS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
)


def chromium_binary() -> str:
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is missing: run `nexus install --test-tools`", pytrace=False)
    return binary


def chromium(*arguments: str, profile: Path) -> subprocess.CompletedProcess[str]:
    command = [chromium_binary(), *HEADLESS, f"--user-data-dir={profile}", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, timeout=BROWSER_TIMEOUT_S)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


class DevTools:
    """Headless Chromium driven over `--remote-debugging-pipe`: the browser reads commands
    on fd 3 and writes answers and events on fd 4, each JSON message ending in a NUL."""

    def __init__(self, profile: Path) -> None:
        commands_in, self._commands = _high_pipe()
        self._answers, answers_out = _high_pipe()
        flags = [*HEADLESS, f"--user-data-dir={profile}", "--remote-debugging-pipe"]
        fds = [str(commands_in), str(answers_out)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", ON_FDS_3_AND_4, *fds, chromium_binary(), *flags, "about:blank"],
            pass_fds=(commands_in, answers_out),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(commands_in)
        os.close(answers_out)
        self._buffer, self._last_id, self._session = b"", 0, ""
        self.events: list[dict[str, Any]] = []  # every event received, in order

    def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params or {}}
        if self._session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + BROWSER_TIMEOUT_S
        while (answer := self._receive(deadline)).get("id") != self._last_id:
            if "method" in answer:  # an event (else another session's answer)
                self.events.append(answer)
        assert "error" not in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "chromium does not answer"
            if select.select([self._answers], [], [], remaining)[0]:
                chunk = os.read(self._answers, 1 << 16)
                assert chunk, "chromium closed its pipe"
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        parsed: dict[str, Any] = json.loads(message)
        return parsed

    def open(self, url: str, *, before: Sequence[tuple[str, dict[str, Any]]] = ()) -> None:
        """A new tab at `url`; the `before` calls (such as Network.enable) are made first."""
        target = self.call("Target.createTarget", {"url": "about:blank"})
        attach = {"targetId": target["targetId"], "flatten": True}
        self._session = self.call("Target.attachToTarget", attach)["sessionId"]
        for method, params in before:
            self.call(method, params)
        self.call("Page.navigate", {"url": url})

    def named(self, method: str) -> list[dict[str, Any]]:
        """The params of every event of that name received so far."""
        return [event["params"] for event in self.events if event["method"] == method]

    def screenshot(self, path: Path) -> bytes:
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        data = base64.b64decode(shot["data"])
        path.write_bytes(data)
        return data

    def evaluate(self, expression: str) -> Any:
        params = {"expression": expression, "returnByValue": True}
        return self.call("Runtime.evaluate", params)["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.evaluate(expression):
            assert time.monotonic() < deadline, f"never true: {expression}"
            time.sleep(0.2)

    def close(self) -> None:
        self._session = ""
        try:
            self.call("Browser.close")
            self.process.wait(20)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait(10)
            os.close(self._commands)
            os.close(self._answers)


# Runs argv[3:] with argv[1] as its fd 3 and argv[2] as its fd 4 (sh takes only fds < 10).
ON_FDS_3_AND_4 = (
    "import os, sys; os.dup2(int(sys.argv[1]), 3); os.dup2(int(sys.argv[2]), 4);"
    " os.execv(sys.argv[3], sys.argv[3:])"
)


def _high_pipe() -> tuple[int, int]:
    """A pipe whose ends are not fd 3 or 4, which the child's dup2 calls overwrite."""
    ends = os.pipe()
    high = tuple(fcntl.fcntl(end, fcntl.F_DUPFD_CLOEXEC, 10) for end in ends)
    for end in ends:
        os.close(end)
    return high[0], high[1]
