"""The vendored browser libraries are what their npm packages hold, each with its license.

gateway/web/vendored.json names, for every file under gateway/web/static/vendor/, the
package, version and tarball integrity it came from and the file's sha256; a file edited
by hand, added without an entry, or shipped without its license fails here.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import gateway

WEB = Path(gateway.__file__).with_name("web")
VENDOR = WEB / "static" / "vendor"
MANIFEST: dict[str, Any] = {
    name: package
    for name, package in json.loads((WEB / "vendored.json").read_text()).items()
    if not name.startswith("_")
}


def test_every_vendored_file_is_listed_and_unchanged() -> None:
    listed = {f: p["files"][f] for p in MANIFEST.values() for f in p["files"]}
    assert sorted(listed) == sorted(path.name for path in VENDOR.iterdir())
    for name, entry in listed.items():
        assert hashlib.sha256((VENDOR / name).read_bytes()).hexdigest() == entry["sha256"], name


def test_every_package_is_pinned_and_keeps_its_license() -> None:
    for name, package in MANIFEST.items():
        assert package["integrity"].startswith("sha512-"), name
        assert package["version"].count(".") == 2, name
        licenses = [f for f, e in package["files"].items() if "LICENSE" in e["from"]]
        assert licenses, f"{name} is vendored without its license"
