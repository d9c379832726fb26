"""A write to a pipe or FIFO whose reader is gone raises BrokenPipeError, whatever SIGPIPE's
disposition: with it at SIG_DFL (a C host embedding Python, a CLI tool) the process lives on."""

from __future__ import annotations

import errno
import sys

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGPIPE is a POSIX signal")

SIGPIPE_CHILD = """
import os, signal
signal.signal(signal.SIGPIPE, {disposition})

def ends(kind):
    if kind == "pipe":
        return B.pipe()
    path = os.path.join(ARGS["dir"], "fifo")
    fifo = B.FIFO(path, create=True)
    raw = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    writer = fifo.open_writer(timeout=10)
    fifo.unlink()
    return os.fdopen(raw, "rb"), writer

errors = []
for kind in ("pipe", "fifo"):
    for method in ("write", "write_all"):
        reader, writer = ends(kind)
        reader.close()
        try:
            getattr(writer, method)(b"x" * 100)
            errors.append([kind, method, "no error"])
        except BrokenPipeError as e:
            errors.append([kind, method, type(e).__name__, e.errno])
        writer.close()
pending = signal.SIGPIPE in signal.sigpending()
blocked = signal.SIGPIPE in signal.pthread_sigmask(signal.SIG_BLOCK, [])
report(errors=errors, pending=pending, blocked=blocked)
"""


@pytest.mark.parametrize("disposition", ["SIG_DFL", "SIG_IGN"])
def test_write_after_reader_closed(backend, spawn, tmp_path, disposition):
    child = spawn(
        SIGPIPE_CHILD.replace("{disposition}", f"signal.{disposition}"),
        args={"dir": str(tmp_path)},
    )
    got = child.expect("errors")
    assert got["errors"] == [
        [kind, method, "BrokenPipeError", errno.EPIPE]
        for kind in ("pipe", "fifo")
        for method in ("write", "write_all")
    ]
    # no SIGPIPE left behind to kill the process later, and the thread's mask as it was
    assert (got["pending"], got["blocked"]) == (False, False)
    child.finish()  # exit status 0, not 141: not killed by SIGPIPE
