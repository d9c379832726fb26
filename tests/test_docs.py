"""Every Python block of README.md and docs/*.md runs on its own, as written.

A block (a fence whose info string is ``python``) is saved as ``block.py`` in an empty temporary
directory and run there as ``python block.py``, with the interpreter of this suite importing the
fastipc under test, on the default backend. It must exit 0 within ``TIMEOUT`` seconds with
nothing on stderr, and leave nothing behind: no file beside ``block.py``, no socket in its socket
directory (``FASTIPC_SOCKET_DIR``, private to the run), no segment, semaphore or lock left
unlinked (its ``FASTIPC_REGISTRY_DIR``, private too, must end empty; no new ``/dev/shm`` entry of
its own) and no new POSIX message queue.

A block that is not meant to run alone (a signature, a fragment of a larger program) is preceded
by an HTML comment that says why: ``<!-- not run: a signature, not a program -->``. Its test is
skipped with that reason, so every exception shows in the report.

Outside the source tree (the suite run against an installed wheel) the documents are not there:
the tests that need them skip.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import fastipc
import pytest
from _helpers import foreign_shm_entry

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
NOT_HERE = (
    f"{README} is not here: the suite runs outside the source tree (against an installed "
    "package), where README.md and docs/ are absent"
)
TIMEOUT = 60.0
PYTHON_INFO = {"python", "py", "python3"}
NOT_RUN = re.compile(r"<!--\s*not run:(.*?)-->")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*)")
#: The package directory that holds the fastipc under test (put first on the block's path).
PACKAGE_PARENT = str(Path(fastipc.__file__).resolve().parent.parent)


@dataclass(frozen=True)
class Block:
    source: str  # "README.md" or "docs/x.md"
    line: int  # the line of the opening fence, counted from 1
    code: str
    not_run: str | None  # the reason given in a preceding <!-- not run: ... --> comment

    @property
    def id(self) -> str:
        return f"{self.source}:{self.line}"


# -------------------------------------------------------------------------------------------
# collecting the blocks


def _reason(previous: str) -> str | None:
    match = NOT_RUN.fullmatch(previous.strip())
    return match.group(1).strip() if match else None


def extract(text: str, source: str) -> list[Block]:
    """The Python blocks of a Markdown text, with their ``not run`` reasons."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, info = opening.groups()
        end = i + 1
        while end < len(lines) and lines[end].strip() != fence:
            end += 1
        if info.lower() in PYTHON_INFO:
            body = [line.removeprefix(indent) for line in lines[i + 1 : end]]
            previous = next((p for p in reversed(lines[:i]) if p.strip()), "")
            code = "\n".join(body) + "\n"
            blocks.append(Block(source, i + 1, code, _reason(previous)))
        i = end + 1
    return blocks


def documents() -> list[Path]:
    if not README.is_file():
        return []
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def collect() -> list[Block]:
    found: list[Block] = []
    for doc in documents():
        found += extract(doc.read_text(encoding="utf-8"), doc.relative_to(ROOT).as_posix())
    return found


BLOCKS = collect()


def _params() -> list[object]:
    if not BLOCKS:
        return [pytest.param(None, marks=pytest.mark.skip(reason=NOT_HERE), id="no-docs")]
    return [
        pytest.param(
            b,
            id=b.id,
            marks=[pytest.mark.skip(reason=f"not run: {b.not_run}")] if b.not_run else [],
        )
        for b in BLOCKS
    ]


# -------------------------------------------------------------------------------------------
# running one block


def _listing(path: Path) -> set[str]:
    try:
        return set(os.listdir(path))
    except FileNotFoundError:
        return set()


def _private_dir(path: Path) -> Path:
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    return path


def _block_env(socket_dir: Path, registry: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("FASTIPC_BACKEND", None)  # the default backend, as a user gets it
    env.pop("XDG_RUNTIME_DIR", None)
    env["FASTIPC_SOCKET_DIR"] = str(socket_dir)
    env["FASTIPC_REGISTRY_DIR"] = str(registry)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_PARENT, env.get("PYTHONPATH")]))
    return env


def _ours_in_mqueue(name: str, pid: int) -> bool:
    """A new /dev/mqueue entry is this block's unless it is another test run's."""
    return "fastipc-test-" not in name or str(pid) in re.split(r"[-.]", name)


def _leftovers(base: Path, pid: int, shm_before: set[str], mq_before: set[str]) -> list[str]:
    problems = []
    files = _listing(base / "run") - {"block.py"}
    if files:
        problems.append(f"files left in its directory: {sorted(files)}")
    sockets = _listing(base / "sockets")
    if sockets:
        problems.append(f"left in the socket directory: {sorted(sockets)}")
    records = _listing(base / "registry")
    if records:
        problems.append(f"segments, semaphores or locks not unlinked: {sorted(records)}")
    registry = str(base / "registry")
    shm = {
        n
        for n in _listing(Path("/dev/shm")) - shm_before
        if not foreign_shm_entry(n, {pid}, registry)
    }
    if shm:
        problems.append(f"/dev/shm entries left: {sorted(shm)}")
    mq = {n for n in _listing(Path("/dev/mqueue")) - mq_before if _ours_in_mqueue(n, pid)}
    if mq:
        problems.append(f"message queues left: {sorted(mq)}")
    return problems


def _remove_all(base: Path) -> None:
    """Removes what a failed block left, so that one failure does not spread."""
    for name in _listing(base / "sockets"):
        (base / "sockets" / name).unlink(missing_ok=True)
    for record in _listing(base / "registry"):
        kind, _, bare = record.partition(".")
        entry = f"sem.{bare}" if kind == "sem" else bare
        Path("/dev/shm", entry).unlink(missing_ok=True)
        (base / "registry" / record).unlink(missing_ok=True)


def run_block(code: str, base: Path) -> list[str]:
    """Runs ``code`` as ``python block.py`` in ``base/run``; what went wrong (empty: nothing)."""
    run = _private_dir(base / "run")
    env = _block_env(_private_dir(base / "sockets"), _private_dir(base / "registry"))
    (run / "block.py").write_text(code, encoding="utf-8")
    shm_before, mq_before = _listing(Path("/dev/shm")), _listing(Path("/dev/mqueue"))
    proc = subprocess.Popen(
        [sys.executable, "block.py"],
        cwd=run,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group: anything it started is killed below
    )
    problems = []
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        problems.append(f"still running after {TIMEOUT} s")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if proc.returncode != 0:
        problems.append(f"exit status {proc.returncode}")
    if err:
        problems.append("stderr:\n" + err.decode(errors="replace"))
    problems += _leftovers(base, proc.pid, shm_before, mq_before)
    _remove_all(base)
    if problems:
        problems.append("stdout:\n" + out.decode(errors="replace"))
    return problems


# -------------------------------------------------------------------------------------------
# the tests


@pytest.mark.parametrize("block", _params())
def test_doc_block_runs(block: Block, tmp_path: Path) -> None:
    problems = run_block(block.code, tmp_path)
    assert not problems, f"{block.id}: " + "\n".join(problems)


def test_the_documents_are_collected() -> None:
    if not BLOCKS:
        pytest.skip(NOT_HERE)
    sources = {b.source for b in BLOCKS}
    assert {"README.md", "docs/fdpass.md", "docs/shm.md", "docs/classic.md"} <= sources
    # The README's tour runs whole: none of its blocks is an exception.
    readme = [b for b in BLOCKS if b.source == "README.md"]
    assert len(readme) >= 3
    assert [b.id for b in readme if b.not_run] == []
    # Exceptions stay rare, and each gives its reason.
    exceptions = [b for b in BLOCKS if b.not_run is not None]
    assert all(b.not_run for b in exceptions), [b.id for b in exceptions]
    assert len(exceptions) * 2 < len(BLOCKS), [b.id for b in exceptions]


def test_extract_finds_python_blocks_and_their_reasons() -> None:
    text = "\n".join(
        [
            "# Title",
            "```sh",
            "echo not python",
            "```",
            "",
            "```python",
            "print(1)",
            "```",
            "<!-- not run: a signature -->",
            "",
            "```python",
            "f(x, *, y=1)",
            "```",
            "- a list item:",
            "  ```py",
            "  if True:",
            "      print(2)",
            "  ```",
            "````python",
            "s = '''",
            "```",
            "'''",
            "````",
        ]
    )
    assert extract(text, "t.md") == [
        Block("t.md", 6, "print(1)\n", None),
        Block("t.md", 11, "f(x, *, y=1)\n", "a signature"),
        Block("t.md", 15, "if True:\n    print(2)\n", None),
        Block("t.md", 19, "s = '''\n```\n'''\n", None),
    ]


def test_a_failing_block_fails(tmp_path: Path) -> None:
    problems = run_block("import sys\nprint('before')\nsys.exit(3)\n", tmp_path)
    assert problems == ["exit status 3", "stdout:\nbefore\n"]


def test_a_block_that_writes_to_stderr_fails(tmp_path: Path) -> None:
    problems = run_block("import warnings\nwarnings.warn('careful')\n", tmp_path)
    assert len(problems) == 2, problems
    assert problems[0].startswith("stderr:\n") and "UserWarning: careful" in problems[0]


def test_a_block_that_leaves_a_file_or_a_socket_fails(tmp_path: Path) -> None:
    code = (
        "import os, fastipc\n"
        "open('app.log', 'w').close()\n"
        "server = fastipc.listen('127.0.0.1:0')\n"
        "os._exit(0)\n"  # no cleanup at all: the socket file stays
    )
    problems = run_block(code, tmp_path)
    assert problems[0] == "files left in its directory: ['app.log']"
    assert re.fullmatch(r"left in the socket directory: \['127\.0\.0\.1:\d+'.*\]", problems[1])
    assert problems[2:] == ["stdout:\n"]


def test_a_block_that_leaves_a_segment_fails(tmp_path: Path) -> None:
    code = (
        "import fastipc\n"
        "shm = fastipc.SharedMemory(create=True, size=4096)\n"
        "print(shm.name)\n"
        "shm.close()\n"
    )
    problems = run_block(code, tmp_path)
    name = problems[-1].removeprefix("stdout:\n").strip()
    assert problems == [
        f"segments, semaphores or locks not unlinked: ['shm.{name[1:]}']",
        f"/dev/shm entries left: ['{name[1:]}']",
        f"stdout:\n{name}\n",
    ]
    assert not os.path.exists(f"/dev/shm/{name[1:]}")  # removed after the report
