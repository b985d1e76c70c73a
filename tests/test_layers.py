"""The layer contract in pyproject.toml holds, and it would catch an arrow that points up.

`scripts/test` runs `lint-imports` on the tree as it is; this test shows the contract is not
vacuous: the same contract over a copy of the package where storage imports the HTTP layer fails.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).parent / "lint-imports"

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (scripts/install --test)")


def lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"})


def test_the_layers_depend_one_way() -> None:
    result = lint(REPO, REPO / "backend")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "KEPT" in result.stdout


def test_an_import_that_points_up_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(REPO / "backend" / "privchat", tmp_path / "src" / "privchat",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    db = tmp_path / "src" / "privchat" / "storage" / "db.py"
    db.write_text(db.read_text() + "\nfrom ..api import gate  # an arrow that points up\n")
    result = lint(tmp_path, tmp_path / "src")
    assert result.returncode != 0, result.stdout
    assert "privchat.storage is not allowed to import privchat.api" in result.stdout, result.stdout
