"""The processes of ``fastipc bench``: ``python -m fastipc.bench.peer ROLE CONFIG_JSON``.

Roles:

- ``probe``: report the fastipc version and backend, then exit.
- ``serve``: set up a mechanism's echo side, report its address, serve one client, exit.
- ``client``: connect (or create a pair and fork its echo side), verify one round trip, warm up,
  time round trips, report the statistics, exit.

Each process reports JSON lines on stdout (``{"event": ...}``) and exits when its stdin reaches end
of file, which is how it dies with the process that started it, whatever killed that one.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

from .. import BACKEND, __version__
from .affinity import pin
from .base import Client, Env, ListenerMechanism, PairMechanism, fork_echo, refuses
from .mechanisms import REGISTRY
from .timing import TimingPlan, measure, payload_for, stream, summarize

__all__ = ["main"]


def _emit(event: str, **data: Any) -> None:
    sys.stdout.write(json.dumps({"event": event, **data}) + "\n")
    sys.stdout.flush()


def _die_with_parent(socket_dir: str | None) -> None:
    """Exit at once when the parent closes our stdin while we run (it died, or it gave up).

    The socket directory is private to the run that started us: with the parent gone, nobody
    else will remove it.
    """

    def watch() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        if socket_dir:
            shutil.rmtree(socket_dir, ignore_errors=True)
        os._exit(3)

    threading.Thread(target=watch, name="fastipc-bench-parent", daemon=True).start()


def _env(config: dict[str, Any]) -> Env:
    return Env(socket_dir=config["socket_dir"], max_size=int(config["max_size"]))


def _probe() -> None:
    _emit("probe", version=__version__, backend=BACKEND)


def _serve(config: dict[str, Any]) -> None:
    mechanism = REGISTRY[config["mechanism"]]
    assert isinstance(mechanism, ListenerMechanism)
    pin(config.get("cpu"))
    server = mechanism.listen(_env(config))
    timeout = float(config.get("accept_timeout", 30.0))
    try:
        _emit("ready", address=server.address, pid=os.getpid())
        # by default the round trips on the first connection, the one-way stream on the second
        for phase in config.get("phases", ["echo", "drain"]):
            drain = phase == "drain"
            echo = server.accept(timeout)
            try:
                if drain:
                    echo.drain()
                else:
                    echo.serve()
            finally:
                echo.close()
    finally:
        server.close()


def _client(config: dict[str, Any]) -> None:
    mechanism = REGISTRY[config["mechanism"]]
    env = _env(config)
    size = int(config["size"])
    plan = TimingPlan.from_json(config["plan"])
    pin(config.get("cpu"))
    payload = payload_for(size)

    def connected(drain: bool) -> tuple[Client, int | None]:
        if isinstance(mechanism, PairMechanism):
            client, echo = mechanism.pair(env)
            return client, fork_echo(echo, client, config.get("peer_cpu"), drain=drain)
        assert isinstance(mechanism, ListenerMechanism)
        return mechanism.connect(env, config["address"]), None

    client, echo_pid = connected(False)
    try:
        send, recv = client.sender(), client.receiver()
        send(payload)
        echoed = client.received(recv())
        if echoed != payload:
            raise AssertionError(f"the echo returned {len(echoed)} different bytes for {size}")
        samples, warmup, warmup_ns = measure(send, recv, payload, plan)
    finally:
        client.close()
        if echo_pid is not None:
            os.waitpid(echo_pid, 0)
    result: dict[str, Any] = {
        "iterations": len(samples),
        "warmup_iterations": warmup,
        "warmup_ns": warmup_ns,
        "stats": summarize(samples),
    }
    try:
        client, echo_pid = connected(True)
        try:
            result["stream"] = stream(
                client.sender(), client.receiver(), client.received, payload, plan
            )
        finally:
            client.close()
            if echo_pid is not None:
                os.waitpid(echo_pid, 0)
    except Exception as exc:
        result["stream_error"] = f"{type(exc).__name__}: {exc}"
    _emit("result", **result)


def main(argv: Sequence[str] | None = None) -> int:
    """Run one role; the exit status is 0, 1 after reporting an error event, 2 for bad usage."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2 or args[0] not in ("probe", "serve", "client"):
        sys.stderr.write("usage: python -m fastipc.bench.peer probe|serve|client CONFIG_JSON\n")
        return 2
    role, config = args[0], json.loads(args[1])
    _die_with_parent(config.get("socket_dir"))
    try:
        if role == "probe":
            _probe()
        elif role == "serve":
            _serve(config)
        else:
            _client(config)
    except BaseException as exc:
        message = str(exc) or type(exc).__name__
        _emit(
            "error",
            type=type(exc).__name__,
            unsupported=refuses(exc),
            message=message,
            traceback=traceback.format_exc(),
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
