"""fastipc.aio typed for its users: an asyncio program passes ``mypy --strict`` without a cast,
and runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_docs import run_block

PROGRAM = Path(__file__).resolve().parent / "typed" / "aio_program.py"


def test_an_asyncio_program_passes_mypy_strict(tmp_path: Path) -> None:
    pytest.importorskip("mypy", reason="mypy comes with the test extra: pip install '.[test]'")
    options = ["--strict", "--no-color-output", "--no-error-summary", "--cache-dir", "cache"]
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", *options, str(PROGRAM)],
        cwd=tmp_path,  # no configuration file of the source tree applies
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_the_asyncio_program_runs(tmp_path: Path) -> None:
    assert run_block(PROGRAM.read_text(encoding="utf-8"), tmp_path) == []
