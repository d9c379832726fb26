"""fastipc typed for its users: a typed program passes ``mypy --strict`` without a cast, and
wrong uses are errors.

``tests/typed/user_program.py`` is a user's program (sockets, ``recv`` of objects, ``fromfd``
with and without ``kind``, shared memory and semaphores); ``tests/typed/wrong_use.py`` marks on
each line the error (``# error: [code]``) or revealed type (``# reveal: <type>``) mypy must report
there, and nothing else. mypy checks the fastipc that this interpreter imports (installed,
editable or not), through its ``py.typed`` marker and the stub of the extension.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_docs import run_block

TYPED = Path(__file__).resolve().parent / "typed"
USER_PROGRAM = TYPED / "user_program.py"
WRONG_USE = TYPED / "wrong_use.py"
REPORT = re.compile(
    r"(?P<file>[^:]+):(?P<line>\d+): (?P<severity>error|note): (?P<message>.*?)"
    r"(?:  \[(?P<code>[a-z-]+)\])?"
)
EXPECTED = re.compile(r"# (?:error: \[(?P<code>[a-z-]+)\]|reveal: (?P<type>\S+))$")


@dataclass(frozen=True)
class Reports:
    status: int
    output: str
    errors: dict[str, set[tuple[int, str]]]  # file name -> (line, code)
    reveals: dict[str, set[tuple[int, str]]]  # file name -> (line, revealed type)


def _parse(status: int, output: str) -> Reports:
    reports = Reports(status, output, {}, {})
    for line in output.splitlines():
        match = REPORT.fullmatch(line)
        if not match:
            continue
        name, number = Path(match["file"]).name, int(match["line"])
        revealed = re.fullmatch(r'Revealed type is "(.*)"', match["message"])
        if match["severity"] == "error":
            reports.errors.setdefault(name, set()).add((number, match["code"] or "?"))
        elif revealed:
            reports.reveals.setdefault(name, set()).add((number, revealed[1]))
    return reports


@pytest.fixture(scope="module")
def mypy_reports(tmp_path_factory: pytest.TempPathFactory) -> Reports:
    try:
        import mypy  # noqa: F401
    except ImportError:
        pytest.skip("mypy is not installed (it comes with the test extra: pip install '.[test]')")
    where = tmp_path_factory.mktemp("mypy")
    options = ["--strict", "--no-color-output", "--no-error-summary", "--cache-dir", "cache"]
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", *options, str(USER_PROGRAM), str(WRONG_USE)],
        cwd=where,  # no configuration file of the source tree applies
        capture_output=True,
        text=True,
        timeout=600,
    )
    return _parse(proc.returncode, proc.stdout + proc.stderr)


def _marked(path: Path) -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
    errors, reveals = set(), set()
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        match = EXPECTED.search(line)
        if match and match["code"]:
            errors.add((number, match["code"]))
        elif match:
            reveals.add((number, match["type"]))
    return errors, reveals


def test_a_typed_user_program_passes_mypy_strict_without_casts(mypy_reports: Reports) -> None:
    assert USER_PROGRAM.name not in mypy_reports.errors, mypy_reports.output
    assert "cast(" not in USER_PROGRAM.read_text()
    assert "type: ignore" not in USER_PROGRAM.read_text()


def test_wrong_uses_are_type_errors(mypy_reports: Reports) -> None:
    errors, reveals = _marked(WRONG_USE)
    assert len(errors) == 4 and len(reveals) == 3  # the markers are read
    assert mypy_reports.status == 1, mypy_reports.output
    assert mypy_reports.errors.get(WRONG_USE.name) == errors, mypy_reports.output
    assert mypy_reports.reveals.get(WRONG_USE.name) == reveals, mypy_reports.output
    assert set(mypy_reports.errors) == {WRONG_USE.name}, mypy_reports.output


def test_the_typed_user_program_runs(tmp_path: Path) -> None:
    assert run_block(USER_PROGRAM.read_text(), tmp_path) == []
