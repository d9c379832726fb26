"""The ``fastipc`` command: ``bench`` options, its JSON against the schema shipped in the package
(``fastipc/bench/schema.json``, which docs/bench.md must match), ``--plot``, the skip of a missing
optional baseline, bad options, ``info`` and ``--version``.

The benchmark runs here are tiny (one size, a few mechanisms, ``--iterations``) so that each takes
a second or two; ``fastipc bench`` itself is run in this process (its peers are child processes).
"""

from __future__ import annotations

import importlib.resources
import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import fastipc
import pytest
from fastipc import cli
from fastipc.bench.mechanisms import REGISTRY

# Present in the source tree only: a run against an installed package checks the package's schema.
DOCS = Path(__file__).resolve().parent.parent / "docs" / "bench.md"
TINY = ["bench", "--quick", "--sizes", "64", "--iterations", "40"]


def run_cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = cli.main(args)
    out, err = capsys.readouterr()
    return status, out, err


def shipped_schema() -> dict:
    """``fastipc/bench/schema.json``, as installed with the package."""
    text = importlib.resources.files("fastipc.bench").joinpath("schema.json").read_text("utf-8")
    return json.loads(text)


def keys_by_path(value: object, path: str = "", into: dict | None = None) -> dict[str, list[str]]:
    """The keys of every object in ``value``, by path (``"results[].stats"``), in order."""
    keys: dict[str, list[str]] = {} if into is None else into
    if isinstance(value, dict):
        seen = keys.setdefault(path, [])
        for key, inner in value.items():
            if key not in seen:
                seen.append(key)
            keys_by_path(inner, f"{path}.{key}" if path else key, keys)
    elif isinstance(value, list):
        for inner in value:
            keys_by_path(inner, path + "[]", keys)
    return keys


def assert_declared(data: dict) -> None:
    """Every key of a ``fastipc bench --json`` output is in the shipped schema, at its path."""
    schema = shipped_schema()
    assert data["schema"] == schema["schema"]
    undeclared = {
        path: sorted(set(keys) - set(schema["keys"].get(path, [])))
        for path, keys in keys_by_path(data).items()
    }
    assert not any(undeclared.values()), f"keys missing from schema.json: {undeclared}"


def documented_example() -> object:
    """The JSON example of docs/bench.md, its ``//`` comments and trailing commas removed."""
    text = DOCS.read_text(encoding="utf-8")
    block = re.search(r"### JSON.*?```jsonc\n(.*?)```", text, re.S)
    assert block, "docs/bench.md has no JSON example"
    # a comment starts at "//" outside a string: after an even number of unescaped quotes
    lines = [re.sub(r'^((?:[^"/]|"(?:[^"\\]|\\.)*")*)//.*$', r"\1", line)
             for line in block.group(1).splitlines()]  # fmt: skip
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", "\n".join(lines)))


# -- options ---------------------------------------------------------------------------------------


def test_bench_options_parse() -> None:
    args = cli.build_parser().parse_args(
        [
            "bench",
            "--sizes",
            "64, 4k,1m",
            "--mechanisms",
            "mp-pipe,fastipc-shm",
            "--placement",
            "cross-core",
            "--cpus",
            "0,1",
            "--quick",
            "--iterations",
            "5",
            "--backend",
            "python",
            "--json",
            "out.json",
            "--plot",
            "out.png",
        ]
    )
    assert args.sizes == [64, 4096, 1 << 20]
    assert args.mechanisms == ["mp-pipe", "fastipc-shm"]
    assert args.placement == "cross-core"
    assert args.cpus == [0, 1]
    assert args.quick is True
    assert args.iterations == 5
    assert args.backend == "python"
    assert (args.json, args.plot) == ("out.json", "out.png")


def test_bench_defaults_and_all() -> None:
    args = cli.build_parser().parse_args(["bench"])
    assert (args.sizes, args.mechanisms, args.placement, args.json, args.plot) == (
        None,
        None,
        None,
        None,
        None,
    )
    assert cli.build_parser().parse_args(["bench", "--mechanisms", "all"]).mechanisms == list(
        REGISTRY
    )


def test_every_mechanism_the_issue_names_is_registered() -> None:
    wanted = {
        "fastipc-unix",
        "fastipc-seqpacket",
        "fastipc-tcp",
        "fastipc-socketpair",
        "fastipc-pipe",
        "fastipc-fifo",
        "fastipc-mq",
        "fastipc-shm",
        "socket-unix",
        "mp-pipe",
        "mp-queue",
        "posix_ipc-mq",
        "zmq-ipc",
        "faster-fifo",
        "c-limit",
        # the shared-memory queue and channel, their peers and their limits
        "fastipc-channel",
        "fastipc-channel-view",
        "fastipc-queue",
        "fastipc-queue-many",
        "faster-fifo-many",
        "iceoryx2",
        "c-spin",
        "c-futex",
    }
    defaults = {name for name, m in REGISTRY.items() if m.default}
    assert wanted <= defaults


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sizes", "0"], "sizes must be 1 B to 1 GiB"),
        (["--sizes", "ten"], "not a size in bytes"),
        (["--mechanisms", "carrier-pigeon"], "unknown mechanism 'carrier-pigeon'; choose from"),
        (["--placement", "sideways"], "invalid choice: 'sideways'"),
        (["--iterations", "0"], "must be at least 1"),
        (["--cpus", "1,1"], "need distinct CPU numbers"),
        (["--no-such-option"], "unrecognized arguments: --no-such-option"),
    ],
)
def test_bad_option_exits_2_with_a_clear_message(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", *args])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith("usage: fastipc")


def test_bad_option_in_a_real_process() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fastipc", "bench", "--placement", "nowhere"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "argument --placement: invalid choice: 'nowhere'" in proc.stderr


def test_cpus_this_process_may_not_use(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run_cli([*TINY, "--mechanisms", "mp-pipe", "--cpus", "4095"], capsys)
    assert status == 2
    assert "--cpus 4095: this process may only use CPUs" in err


def test_plot_without_matplotlib_exits_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib: ImportError
    png = tmp_path / "out.png"
    status, out, err = run_cli([*TINY, "--mechanisms", "mp-pipe", "--plot", str(png)], capsys)
    assert status == 2
    assert "--plot: matplotlib is not installed (pip install 'fastipc-rs[bench]'" in err
    assert out == ""  # it stopped before running anything
    assert not png.exists()


# -- runs ------------------------------------------------------------------------------------------


def test_quick_json_matches_the_documented_schema(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "out.json"
    mechanisms = "fastipc-socketpair,mp-pipe,socket-unix,c-limit"
    status, out, err = run_cli([*TINY, "--mechanisms", mechanisms, "--json", str(path)], capsys)
    assert status == 0, out + err
    data = json.loads(path.read_text(encoding="utf-8"))

    assert data["schema"] == "fastipc-bench/2"
    assert set(data) == {"schema", "started", "elapsed_s", "command", "machine", "settings",
                         "results"}  # fmt: skip
    assert data["command"][:2] == ["fastipc", "bench"]
    assert data["settings"]["reference"] == "mp-pipe"
    assert data["settings"]["limit"] == "c-limit"
    assert data["settings"]["sizes"] == [64]
    assert data["settings"]["placements"] == ["same-core"]
    assert data["settings"]["timing"]["iterations"] == 40
    for key in ("cpu_model", "cpu_count", "kernel", "python", "fastipc_backend"):
        assert key in data["machine"]

    results = data["results"]
    # table order: the limit, the alternatives, fastipc
    assert [r["mechanism"] for r in results] == [
        "c-limit",
        "mp-pipe",
        "socket-unix",
        "fastipc-socketpair",
    ]
    by_name = {r["mechanism"]: r for r in results}
    if by_name["c-limit"]["status"] != "ok":  # no C compiler: skipped with its reason
        assert by_name["c-limit"]["status"] == "unavailable"
        assert by_name["c-limit"]["error"]
    for r in results:
        if r["mechanism"] == "c-limit" and r["status"] != "ok":
            continue
        assert r["status"] == "ok", r
        assert r["size"] == 64 and r["placement"] == "same-core"
        assert r["iterations"] == 40 and r["stats"]["count"] == 40
        stats = r["stats"]
        assert 0 < stats["min_ns"] <= stats["median_ns"] <= stats["p99_ns"] <= stats["max_ns"]
        stream = r["stream"]
        assert stream["status"] == "ok", stream
        assert stream["messages_per_batch"] == 40
        assert len(stream["batches_ns"]) == stream["batches"] == 3
        assert stream["messages_per_s_min"] <= stream["messages_per_s"]
        assert stream["messages_per_s"] <= stream["messages_per_s_max"]
        assert stream["gb_per_s"] == pytest.approx(stream["messages_per_s"] * 64 / 1e9)
        ratios = r["ratios"]
        assert ratios["reference"] == "mp-pipe" and ratios["limit"] == "c-limit"
        assert ratios["speedup_vs_reference"] > 0
    assert by_name["mp-pipe"]["ratios"]["speedup_vs_reference"] == pytest.approx(1.0)
    assert by_name["fastipc-socketpair"]["ratios"]["counterpart"] == "mp-pipe"
    if by_name["c-limit"]["status"] == "ok":
        assert by_name["c-limit"]["ratios"]["fraction_of_limit"] == pytest.approx(1.0)
        assert by_name["socket-unix"]["ratios"]["stream_fraction_of_limit"] > 0

    assert_declared(data)

    # the table: grouped by size, the limit and ratio columns, which is measured how
    assert "64 B messages, same-core (both on CPU" in out
    assert "of limit" in out and "msg/s" in out and "vs mp-pipe" in out
    assert "measured" in out and "(not derived from the round trip)" in out
    assert re.search(r"^  mp-pipe \(ref\) .* 1\.00x", out, re.M)
    assert "machine :" in out and "python  :" in out
    # stderr is not a terminal here: plain progress lines, one per row that runs (without a C
    # compiler, the limit's row is unavailable before it starts)
    rows = 4 if by_name["c-limit"]["status"] == "ok" else 3
    assert re.search(rf"^\[{rows}/{rows}\] fastipc-socketpair 64 B same-core: median", err, re.M)


def test_the_shipped_schema_is_the_documented_one() -> None:
    if not DOCS.is_file():
        pytest.skip("docs/bench.md is not here (run outside the source tree)")
    example = documented_example()
    schema = shipped_schema()
    assert example["schema"] == schema["schema"]  # type: ignore[index]
    assert keys_by_path(example) == schema["keys"]


def test_missing_optional_baseline_is_skipped_with_a_note(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for module in ("zmq", "faster_fifo", "posix_ipc", "iceoryx2"):
        monkeypatch.setitem(sys.modules, module, None)  # as if not installed
    path = tmp_path / "out.json"
    mechanisms = "mp-pipe,zmq-ipc,faster-fifo,faster-fifo-many,posix_ipc-mq,iceoryx2"
    status, out, _ = run_cli([*TINY, "--mechanisms", mechanisms, "--json", str(path)], capsys)
    assert status == 0
    results = {r["mechanism"]: r for r in json.loads(path.read_text())["results"]}
    assert results["mp-pipe"]["status"] == "ok"
    notes = {
        "zmq-ipc": "pyzmq is not installed (pip install 'fastipc-rs[bench]'",
        "faster-fifo": "faster-fifo is not installed (pip install 'fastipc-rs[bench]'",
        "faster-fifo-many": "faster-fifo is not installed (pip install 'fastipc-rs[bench]'",
        "iceoryx2": "iceoryx2 is not installed (pip install 'fastipc-rs[bench]', "
        "or pip install iceoryx2)",
        "posix_ipc-mq": "posix_ipc is not installed (pip install 'fastipc-rs[bench]')",
    }
    for name, note in notes.items():
        assert results[name]["status"] == "unavailable"
        assert note in results[name]["error"]
        assert re.search(rf"^  {re.escape(name)} +unavailable$", out, re.M)
        assert f"  {name}: {note}" in out


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "bench.png"
    # in a process of its own: matplotlib keeps its font files open for the life of the process
    proc = subprocess.run(
        [
            *(sys.executable, "-m", "fastipc", *TINY),
            *("--mechanisms", "mp-pipe,fastipc-socketpair", "--plot", str(png)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"plot: {png}" in proc.stdout
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 800 and height >= 400
    assert len(data) > 20_000


def test_reference_peer_without_a_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    reason = REGISTRY["c-limit"].unavailable()
    assert reason is not None and "no C compiler" in reason


def test_shared_memory_references_without_a_compiler(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CC", "/nonexistent/cc")
    for name in ("c-spin", "c-futex"):
        reason = REGISTRY[name].unavailable()
        assert reason == "cannot build cshm.c: no C compiler (set CC, or install cc, gcc or clang)"


def test_shared_memory_references_run_and_spin_refuses_one_cpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastipc.bench import cpeer

    if cpeer._compiler() is None:
        pytest.skip("no C compiler")
    path = tmp_path / "out.json"
    status, out, _ = run_cli(
        [*TINY, "--mechanisms", "c-futex,c-spin,c-limit", "--json", str(path)], capsys
    )
    assert status == 0, out
    results = json.loads(path.read_text())["results"]
    assert [r["mechanism"] for r in results] == ["c-limit", "c-spin", "c-futex"]
    by_name = {r["mechanism"]: r for r in results}
    assert by_name["c-spin"]["status"] == "unsupported"
    assert by_name["c-spin"]["error"] == (
        "NotSupportedError: a spinning handoff needs two CPUs (on one, the spinner only burns "
        "the time slice of the side it waits for)"
    )
    futex = by_name["c-futex"]
    assert futex["status"] == "ok", futex
    assert futex["family"] == "limit"
    assert futex["iterations"] == 40 and futex["stats"]["count"] == 40
    assert futex["stream"]["status"] == "ok"
    assert futex["stream"]["messages_per_batch"] == 40
    assert re.search(r"^  c-futex \(limit\) ", out, re.M)


def test_batch_rows_and_iceoryx2_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["fastipc-queue-many"]
    for module, name in (("faster_fifo", "faster-fifo-many"), ("iceoryx2", "iceoryx2")):
        try:
            __import__(module)
        except ImportError:
            continue
        names.append(name)
    path = tmp_path / "out.json"
    status, out, _ = run_cli([*TINY, "--mechanisms", ",".join(names), "--json", str(path)], capsys)
    assert status == 0, out
    results = {r["mechanism"]: r for r in json.loads(path.read_text())["results"]}
    assert set(results) == set(names)
    for name, r in results.items():
        assert r["status"] == "ok", (name, r)
        assert r["iterations"] == 40
        assert r["stream"]["status"] == "ok" and r["stream"]["messages_per_batch"] == 40
    assert results["fastipc-queue-many"]["ratios"]["counterpart"] == "faster-fifo-many"


def test_channel_rows_run_at_both_sizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    names = ["fastipc-channel", "fastipc-channel-view", "fastipc-queue"]
    path = tmp_path / "out.json"
    args = ["bench", "--quick", "--sizes", "64,1m", "--iterations", "40"]
    args += ["--placement", "same-core", "--mechanisms", ",".join(names), "--json", str(path)]
    status, out, _ = run_cli(args, capsys)
    assert status == 0, out
    results = json.loads(path.read_text())["results"]
    cells = sorted((r["mechanism"], r["size"]) for r in results)
    assert cells == sorted((name, size) for name in names for size in (64, 1 << 20))
    for r in results:
        # the first round trip checks the echoed bytes; each stream batch checks its byte count
        assert r["status"] == "ok", r
        assert r["iterations"] == 40
        assert r["stream"]["status"] == "ok" and r["stream"]["messages_per_batch"] == 40


def test_view_client_reads_only_the_first_reply_and_short_ones(backend) -> None:
    from fastipc.bench.base import Env
    from fastipc.bench.channel import FastipcChannelView

    client, echo = FastipcChannelView().pair(Env(socket_dir="", max_size=4096, impl=backend))
    peer = echo.end  # type: ignore[attr-defined]
    try:
        receive = client.receiver()
        replies = [b"a" * 100, b"b" * 100, b"12345", b"c" * 32, b"d" * 33, b""]
        for reply in replies:
            peer.send_bytes(reply)
        got = [receive() for _ in replies]
        assert got == [b"a" * 100, 100, b"12345", b"c" * 32, 33, b""]
        assert client.received(got[2]) == b"12345"
        client.sender()(b"x" * 100)
        assert peer.recv_bytes() == b"x" * 100
        # every view was released: the client's end closes (no BufferError), the peer sees EOF
        client.close()
        with pytest.raises(EOFError):
            peer.recv_bytes()
    finally:
        client.close()
        echo.close()


def test_reference_peer_builds_into_the_user_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fastipc.bench import cpeer

    if cpeer._compiler() is None:
        pytest.skip("no C compiler")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    exe = Path(cpeer.build())
    assert exe.parent == tmp_path / "fastipc"
    assert exe.name.startswith("cpeer-")
    assert cpeer.build() == str(exe)  # reused, not rebuilt
    assert [p.name for p in exe.parent.iterdir()] == [exe.name]  # no temporary left


# -- info ------------------------------------------------------------------------------------------


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run_cli(["info"], capsys)
    assert status == 0
    assert re.search(rf"^fastipc +{re.escape(fastipc.__version__)} \(fastipc-rs\)$", out, re.M)
    assert re.search(rf"^backend +{fastipc.BACKEND}$", out, re.M)
    built = fastipc.build_info() if fastipc.BACKEND == "rust" else None
    if built is not None:
        extension = re.escape(str(fastipc._fastipc.__file__))
        assert re.search(rf"^extension +{extension}$", out, re.M)
        build = f"{built['version']} {built['profile']}, target {built['target']}"
        assert re.search(rf"^build +{re.escape(build)}$", out, re.M)
        assert re.search(
            r"^build flags +features: python; Python API: abi3 \(stable ABI\)$", out, re.M
        )
    assert "stream socketpair" in out and "pipes" in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"fastipc-rs {fastipc.__version__}\n"
    assert re.fullmatch(r"\d+\.\d+\.\d+", fastipc.__version__)


# -- what each command imports ---------------------------------------------------------------------

LOADED_BENCH = "sorted(m for m in sys.modules if m.split('.')[:2] == ['fastipc', 'bench'])"


def test_only_the_bench_command_imports_the_benchmark() -> None:
    """``import fastipc``, ``fastipc ls``, ``info`` and ``clean`` leave ``fastipc.bench`` alone;
    parsing the bench command's options is what loads it (which shows the check can fail)."""
    script = f"""
import contextlib, io, json, sys
import fastipc
loaded = {{"import fastipc": {LOADED_BENCH}}}
from fastipc import cli
for command in (["ls"], ["ls", "--json"], ["info"], ["clean", "--dry-run"]):
    with contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(command)
    assert status == 0, (command, status)
    loaded[" ".join(command)] = {LOADED_BENCH}
cli.build_parser().parse_args(["bench", "--mechanisms", "mp-pipe"])
loaded["bench --mechanisms mp-pipe"] = {LOADED_BENCH}
print(json.dumps(loaded))
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout)
    parsed_bench = loaded.pop("bench --mechanisms mp-pipe")
    assert {"fastipc.bench", "fastipc.bench.mechanisms", "fastipc.bench.sockets"} <= set(
        parsed_bench
    )
    assert loaded == {
        "import fastipc": [],
        "ls": [],
        "ls --json": [],
        "info": [],
        "clean --dry-run": [],
    }


def test_a_closed_output_pipe_ends_the_command_quietly() -> None:
    """``fastipc info | head -0``: the reader is gone before the first write. The command ends
    with status 1 and no traceback (Python's default would print two)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "fastipc", "info"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            timeout=60,
            check=False,
        )
    finally:
        os.close(write_end)
    assert (done.returncode, done.stderr) == (1, b"")
