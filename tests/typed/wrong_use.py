"""Uses of fastipc that a type checker must refuse: ``tests/test_typing.py`` runs ``mypy
--strict`` on this file and expects exactly the errors marked ``# error: [code]`` and the types
marked ``# reveal: <type>``, on their lines. Never run."""

from __future__ import annotations

from typing import reveal_type

import fastipc


def wrong(fd: int) -> None:
    conn: fastipc.Connection = fastipc.fromfd(fd, kind="datagram")  # error: [assignment]
    dgram: fastipc.DatagramSocket = fastipc.fromfd(fd, kind="stream")  # error: [assignment]
    either: fastipc.Connection = fastipc.fromfd(fd)  # error: [assignment]
    fastipc.fromfd(fd, kind="raw")  # error: [call-overload]
    reveal_type(fastipc.fromfd(fd, kind="seqpacket"))  # reveal: fastipc._fastipc.Connection
    reveal_type(fastipc.fromfd(fd, kind="datagram"))  # reveal: fastipc._fastipc.DatagramSocket
    reveal_type(conn.recv())  # reveal: Any
    print(dgram, either)
