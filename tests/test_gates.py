"""The code-quality gates of the anchors: formatting, lint and types, as part of the test command.

Each gate runs the pinned tool of the ``test`` extra over the whole tree and fails with its report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYTHON_TREES = ["src", "tests", "workflow_scripts", "benchmarks"]
CPP_SOURCES = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "csrc").glob("*.[ch]pp"))
WORKFLOW_FILES = ["Snakefile", "rules"]

GATES = {
    "ruff format": [sys.executable, "-m", "ruff", "format", "--check", *PYTHON_TREES],
    "ruff check": [sys.executable, "-m", "ruff", "check", *PYTHON_TREES],
    "mypy": [sys.executable, "-m", "mypy"],
    "snakefmt": [sys.executable, "-m", "snakefmt", "--check", *WORKFLOW_FILES],
    # The clang-format wheel's binary, found by the wheel itself (no PATH or pyenv shim needed).
    "clang-format": [
        sys.executable,
        "-c",
        "import clang_format; clang_format.clang_format()",
        "--dry-run",
        "--Werror",
        *CPP_SOURCES,
    ],
}


@pytest.mark.parametrize("gate", list(GATES))
def test_gate_is_clean(gate: str) -> None:
    command = GATES[gate]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, f"{' '.join(command[:4])} found problems:\n{result.stdout}\n{result.stderr}"
