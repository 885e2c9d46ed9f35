"""Machine-checked contracts: lint, format, import layering, types (issue 12, item 7).

Each check runs the tool the way a developer would from the repository root; a failure shows
the tool's own report.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("generator", "pkf", "closures", "cases")


def run(*command: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
    )


def test_ruff_lint_is_clean():
    result = run(sys.executable, "-m", "ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_applied():
    result = run(sys.executable, "-m", "ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_layering_contracts_hold():
    # generator ↛ pkf/closures/cases; pkf ↛ closures/cases; closures ↛ cases
    command = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    result = run(command)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.split("Contracts:")[-1].replace("0 broken", "")


@pytest.mark.slow
def test_public_packages_type_check():
    # mypy on generator, pkf, closures and cases with the [tool.mypy] settings of pyproject.toml
    result = run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout + result.stderr
