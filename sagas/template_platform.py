"""The platform's own template variables, which request data cannot override (pure).

Notification data comes from whoever asked: a client over HTTP, `notify()`, a workflow. A
template that names the platform must not take its name or address from there, or a request
could send a "Welcome to Nexus" mail whose "Get started" link points somewhere else. With a
`PlatformContext` (built from `NEXUS_APP_NAME` / `NEXUS_APP_URL`), the renderer therefore:

- sets `app` to `{"name": ..., "url": ...}` from settings, replacing any `app` in the data;
- treats every other value under a key named `url` or ending in `_url` (`workspace.url`,
  `target.url`, `dashboard_url`) as a link that must stay on the platform: same scheme,
  host and port as the app URL, under its path, with no user info. A link elsewhere is
  replaced by a `ForeignLink`, which fails the render if a template shows it, so a message
  never carries it; data the template does not show is left alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import SplitResult, urlsplit

_DEFAULT_PORTS = {"http": 80, "https": 443}
PLATFORM_ROOT = "app"  # the one template variable settings fill in, whatever the data says
PLATFORM_VARIABLES = frozenset({PLATFORM_ROOT})
_LEAVES = (str, int, float, bool, type(None))  # JSON scalars: no link inside


class ForeignLink:
    """A link from request data that leaves the platform; rendering it raises ValueError."""

    def __init__(self, url: object) -> None:
        self._url = url  # underscored: the jinja2 sandbox hides it from templates

    def _refuse(self) -> str:
        raise ValueError(f"link {self._url!r} is not on the platform's URL")

    __str__ = __html__ = _refuse

    def __repr__(self) -> str:
        return f"ForeignLink({self._url!r})"


def _origin(parts: SplitResult) -> tuple[str, str, int | None]:
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").rstrip("."), parts.port or _DEFAULT_PORTS.get(scheme)


@dataclass(frozen=True)
class PlatformContext:
    """What templates may know about the platform, from settings rather than requests."""

    name: str
    url: str

    def variables(self) -> dict[str, Any]:
        return {PLATFORM_ROOT: {"name": self.name, "url": self.url}}

    def owns(self, link: object) -> bool:
        """Whether `link` is a URL on this platform: its origin, at or under its path."""
        if not isinstance(link, str) or any(c.isspace() or c == "\\" for c in link):
            return False
        try:
            parts = urlsplit(link)
            if parts.username is not None or parts.password is not None:
                return False
            origin, root = self._base
            if _origin(parts) != origin:
                return False
        except ValueError:  # an invalid port or IPv6 literal
            return False
        return parts.path == root or parts.path.startswith(f"{root}/")

    @cached_property
    def _base(self) -> tuple[tuple[str, str, int | None], str]:
        """The app URL's origin and path, split once (raises ValueError, uncached, if bad)."""
        base = urlsplit(self.url)
        return _origin(base), base.path.rstrip("/")

    def apply(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """The template context: `data` with links checked and `app` from settings (the
        data's own `app` is replaced, so it is not checked)."""
        own = {k: v for k, v in data.items() if k != PLATFORM_ROOT}
        return {**_checked_links(own, self), **self.variables()}


def is_link_key(key: object) -> bool:
    return isinstance(key, str) and (key == "url" or key.endswith("_url"))


def _checked_links(value: Any, platform: PlatformContext) -> Any:
    if isinstance(value, _LEAVES):  # most values; the ABC checks below cost more
        return value
    if isinstance(value, Mapping):
        return {
            k: (v if platform.owns(v) else ForeignLink(v))
            if is_link_key(k)
            else _checked_links(v, platform)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_checked_links(v, platform) for v in value]
    return value
