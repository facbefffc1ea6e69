"""The built wheel carries everything the installed package serves or runs: the Lua
scripts, ``/docs`` (Swagger UI) and the dashboard (its page, modules, styles and the
vendored dagre with its license), so a ``pip install`` works with no network and no
build step."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flowqueue"


def test_the_wheel_holds_every_file_the_package_serves(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("flowqueue-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    served = [
        path
        for folder in ("api/dashboard", "api/docs", "backend/redis/lua", "backend/postgres")
        for path in (PACKAGE / folder).rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    ]
    missing = sorted(
        str(path.relative_to(ROOT)) for path in served if str(path.relative_to(ROOT)) not in names
    )
    assert missing == []
    assert "flowqueue/api/dashboard/index.html" in names
    assert any(name.startswith("flowqueue/api/dashboard/assets/vendor/dagre/") for name in names)


def test_the_dashboard_page_preloads_every_module_it_has():
    """index.html lists each module for ``modulepreload`` (fetched at once, not level by
    level as imports are found): the list must name every module and only modules."""
    assets = PACKAGE / "api" / "dashboard" / "assets"
    page = (PACKAGE / "api" / "dashboard" / "index.html").read_text()
    preloaded = set(
        re.findall(r'<link rel="modulepreload" href="/dashboard/assets/([^"]+)">', page)
    )
    modules = {
        str(path.relative_to(assets))
        for path in assets.rglob("*.js")
        if "vendor" not in path.parts and path.name != "app.js"
    }
    assert preloaded == modules


def test_vendored_dagre_is_the_file_its_readme_names():
    """The vendored build is byte for byte the one its README pins (version, sha256)."""
    folder = PACKAGE / "api" / "dashboard" / "assets" / "vendor" / "dagre"
    pinned = re.search(
        r"sha256:\s+([0-9a-f]{64})\s+dagre\.min\.js", (folder / "README.txt").read_text()
    )
    assert pinned is not None
    assert hashlib.sha256((folder / "dagre.min.js").read_bytes()).hexdigest() == pinned.group(1)
    assert "MIT" in (folder / "LICENSE").read_text()
