"""The layers and the no-cycles rule (``make check`` runs ``lint-imports``): a clean copy
of the package keeps both contracts, and one import that points up a layer or closes a
cycle breaks them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_copy(tmp_path: Path, module: str = "", line: str = "") -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on a copy of the package, with ``line`` added to ``module``."""
    shutil.copytree(
        ROOT / "flowqueue", tmp_path / "flowqueue", ignore=shutil.ignore_patterns("docs")
    )
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    if module:
        path = tmp_path / (module.replace(".", "/") + ".py")
        path.write_text(path.read_text() + f"\n{line}\n")
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_package_keeps_its_contracts(tmp_path):
    result = lint_copy(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # the pure model reaching up into the engine
        ("flowqueue.model.reducer", "import flowqueue.runtime.engine", "Layers"),
        # the runtime reaching up into the API
        ("flowqueue.runtime.client", "import flowqueue.api.app", "Layers"),
        # a cycle inside one layer, even behind a function-level import
        ("flowqueue.runtime._timers", "def f():\n    import flowqueue.runtime.engine", "cycles"),
    ],
    ids=["model-imports-runtime", "runtime-imports-api", "cycle-in-runtime"],
)
def test_one_import_up_a_layer_or_round_a_cycle_breaks_the_check(tmp_path, module, line, broken):
    result = lint_copy(tmp_path, module, line)
    assert result.returncode != 0
    assert f"{broken}" in result.stdout
    assert "BROKEN" in result.stdout


def test_the_readme_layout_and_architecture_name_every_folder_and_public_module():
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("```\nflowqueue/") : readme.index("### Breaking it on purpose")]
    picture = (ROOT / "ARCHITECTURE.md").read_text()
    package = ROOT / "flowqueue"
    for folder in sorted(
        p for p in package.rglob("*") if p.is_dir() and "__pycache__" not in p.parts
    ):
        parts = folder.relative_to(package).parts
        if "docs" in parts or "dashboard" in parts[:-1]:  # asset folders, not modules
            continue
        name = f"{folder.name}/"
        assert name in layout, f"README's layout does not show {folder.relative_to(ROOT)}"
        if folder.parent == package:
            assert name in picture, f"ARCHITECTURE.md's layers do not show {name}"
    for module in sorted(package.rglob("*.py")):
        inside = module.relative_to(package).parts
        if module.name.startswith("_") or inside[0] == "api":
            continue  # private modules are described in words; api/ lists its kinds
        assert module.name in layout, f"README's layout does not name {module.relative_to(ROOT)}"
