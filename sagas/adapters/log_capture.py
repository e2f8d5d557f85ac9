"""Per-call capture of a library's log lines (apprise's), safe with concurrent sender threads.

`apprise.LogCapture` adds a handler to the shared `apprise` logger for the length of a call,
so every call capturing at the same moment also receives every other call's lines: one
user's `provider_response` could hold another user's address and the provider's answer to
it. Its level bump and restore race between threads as well, which can drop lines.

Here one handler is installed on the logger, once, and routes each record to the buffer of
the call that produced it. The buffer lives in a ContextVar: every thread has its own
context, and apprise (with `async_mode` off) notifies on the calling thread, so a record
can only reach the call on whose thread it was logged. Records logged outside any capture
are ignored by this handler and propagate as before.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

LINE_FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
MAX_LINES = 200  # a misbehaving plugin must not grow one attempt's buffer without bound

_buffer: ContextVar[list[str] | None] = ContextVar("captured_log_lines", default=None)
_installed: set[str] = set()
_install_lock = threading.Lock()


class _CallRouter(logging.Handler):
    """Appends a record to the capturing call's buffer, if the logging thread has one."""

    def emit(self, record: logging.LogRecord) -> None:
        lines = _buffer.get()
        if lines is None or len(lines) >= MAX_LINES:
            return
        try:
            lines.append(self.format(record))
        except Exception:  # logging must never break a delivery
            self.handleError(record)


def _install(name: str, level: int) -> None:
    with _install_lock:
        if name in _installed:
            return
        logger = logging.getLogger(name)
        router = _CallRouter(level)
        router.setFormatter(logging.Formatter(LINE_FORMAT))
        logger.addHandler(router)
        # Records below the logger's level are never made; lowering it once (instead of
        # per call, as LogCapture does) keeps concurrent calls from undoing each other.
        if logger.getEffectiveLevel() > level:
            logger.setLevel(level)
        _installed.add(name)


@contextmanager
def captured_lines(name: str = "apprise", level: int = logging.INFO) -> Iterator[list[str]]:
    """The lines logger `name` writes on this thread inside the block, formatted."""
    _install(name, level)
    lines: list[str] = []
    token = _buffer.set(lines)
    try:
        yield lines
    finally:
        _buffer.reset(token)
