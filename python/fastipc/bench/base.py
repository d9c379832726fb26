"""The interface of a ``fastipc bench`` mechanism, and the registry mechanisms add themselves to.

A mechanism is one way of carrying a message to another process and back. Each one provides an
echo side, which runs in a separate process and returns every message it receives, and a client
side, which sends a message and waits for it to come back. There are two topologies:

- :class:`ListenerMechanism`: the echo process listens and reports an address; the client connects.
- :class:`PairMechanism`: the client process creates a connected pair and forks the echo process
  (a connected pair cannot be handed to an unrelated process otherwise).

To add a mechanism, subclass one of them in a module of its family, decorate the class with
:func:`register`, and name the module in :mod:`fastipc.bench.mechanisms`. A module of mechanisms
imports this one, :mod:`.affinity`, :mod:`.framing`, :mod:`.batching` and fastipc, never another
such module. The timing loop calls ``send(payload)`` then ``recv()``, the two callables a
:class:`Client` returns; make them bound methods of the transport where possible, so that the loop
adds no Python frame.
"""

from __future__ import annotations

import abc
import errno
import os
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import ClassVar, Literal, Protocol, TypeVar

from .. import _backend
from .._errors import MessageTooLarge, NotSupportedError
from .affinity import pin

__all__ = [
    "FAMILIES",
    "LIMIT",
    "REFERENCE",
    "REGISTRY",
    "Client",
    "Echo",
    "Env",
    "ListenerMechanism",
    "Mechanism",
    "PairMechanism",
    "Server",
    "drain_loop",
    "family",
    "fork_echo",
    "ordered",
    "refuses",
    "register",
]

Topology = Literal["listener", "pair", "external"]

#: The mechanism every other one is compared with.
REFERENCE = "mp-pipe"
#: The C reference peer (:mod:`.cpeer`): the machine's limit for the same exchange.
LIMIT = "c-limit"


@dataclass(frozen=True)
class Env:
    """What a mechanism needs to know to set itself up."""

    socket_dir: str
    """A private directory for socket files, removed by whoever created it."""
    max_size: int
    """The largest message the echo side must be able to return."""
    impl: ModuleType | None = None
    """The fastipc backend module; ``None`` for the one ``import fastipc`` chose."""

    def fastipc(self) -> ModuleType:
        if self.impl is not None:
            return self.impl
        return _backend.load()

    @property
    def max_message(self) -> int:
        """A ``max_message`` for fastipc connections large enough for every message."""
        default: int = self.fastipc().DEFAULT_MAX_MESSAGE
        return max(default, self.max_size + 16)


class Echo(Protocol):
    """The echo side of a connection."""

    def serve(self) -> None:
        """Return every message until the client closes the connection."""

    def drain(self) -> None:
        """The receiving side of the one-way stream, until the client closes the connection:
        batches of a count message (ASCII digits), that many messages, then one message back
        with the number of payload bytes received (ASCII digits). See :func:`drain_loop`."""

    def close(self) -> None: ...


class Client(Protocol):
    """The client side of a connection."""

    def sender(self) -> Callable[[bytes], object]:
        """A callable that sends one message."""

    def receiver(self) -> Callable[[], object]:
        """A callable that receives one message and returns it, or its length."""

    def received(self, result: object) -> bytes:
        """The message that a call of the receiver returned ``result`` for (for verification)."""

    def close(self) -> None: ...


class Server(Protocol):
    """A listening echo side."""

    @property
    def address(self) -> str:
        """What the client passes to :meth:`ListenerMechanism.connect`."""

    def accept(self, timeout: float) -> Echo: ...

    def close(self) -> None: ...


class Mechanism(abc.ABC):
    """One way of doing a round trip: see :class:`ListenerMechanism` and :class:`PairMechanism`."""

    name: ClassVar[str]
    summary: ClassVar[str]
    topology: ClassVar[Topology]
    uses_fastipc: ClassVar[bool] = False
    counterpart: ClassVar[str | None] = None
    """The stdlib mechanism this one is compared with (besides the reference)."""
    default: ClassVar[bool] = True
    """Whether ``fastipc bench`` runs it when ``--mechanisms`` is not given."""
    family: ClassVar[str] = "stdlib"
    """``fastipc``, ``stdlib``, ``optional`` (a package of the ``bench`` extra) or ``limit``."""

    def unavailable(self) -> str | None:
        """Why this mechanism cannot run here, or ``None`` if it can."""
        return None


class ListenerMechanism(Mechanism):
    topology: ClassVar[Topology] = "listener"

    @abc.abstractmethod
    def listen(self, env: Env) -> Server: ...

    @abc.abstractmethod
    def connect(self, env: Env, address: str) -> Client: ...


class PairMechanism(Mechanism):
    topology: ClassVar[Topology] = "pair"

    def unavailable(self) -> str | None:
        if not hasattr(os, "fork"):
            return "needs os.fork to give one end of the pair to another process"
        return None

    @abc.abstractmethod
    def pair(self, env: Env) -> tuple[Client, Echo]: ...


REGISTRY: dict[str, Mechanism] = {}

FAMILIES = ("limit", "stdlib", "optional", "fastipc")
"""The order of the rows in a table: the machine's limit, the alternatives, then fastipc."""

_M = TypeVar("_M", bound=type[Mechanism])


def register(cls: _M) -> _M:
    """Class decorator: add an instance of ``cls`` to :data:`REGISTRY`."""
    if cls.name in REGISTRY:
        raise ValueError(f"mechanism {cls.name!r} is registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def refuses(exc: BaseException) -> bool:
    """Whether ``exc`` is a mechanism refusing a message size (a packet larger than the kernel
    takes, a queue's message size limit): the cell is ``unsupported``, not failed."""
    return isinstance(exc, (MessageTooLarge, NotSupportedError)) or (
        isinstance(exc, OSError) and exc.errno == errno.EMSGSIZE
    )


def drain_loop(
    first: Callable[[], bytes | None],
    receive: Callable[[], int],
    ack: Callable[[bytes], object],
) -> None:
    """The stream protocol of :meth:`Echo.drain` on three primitives: ``first`` receives the
    count message (``None`` at end of file), ``receive`` one message and returns its length,
    ``ack`` sends a message back."""
    while True:
        count = first()
        if count is None:
            return
        total = 0
        for _ in range(int(count)):
            total += receive()
        ack(str(total).encode())


def fork_echo(echo: Echo, client: Client, cpu: int | None, *, drain: bool = False) -> int:
    """Fork a process that serves ``echo`` (pinned to ``cpu``) and return its pid; with
    ``drain``, it is the receiving side of the one-way stream (:meth:`Echo.drain`) instead.

    The forked process closes its copy of the client's end so that it sees end of file when the
    client closes or dies, and leaves with ``os._exit``; the caller's copy of ``echo`` is closed.
    """
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the forked process
        status = 0
        try:
            client.close()
            pin(cpu)
            if drain:
                echo.drain()
            else:
                echo.serve()
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    echo.close()
    return pid


def family(mechanism: Mechanism) -> str:
    """The group of a mechanism in the table (see :data:`FAMILIES`)."""
    return "fastipc" if mechanism.uses_fastipc else mechanism.family


def ordered(names: list[str]) -> list[str]:
    """``names`` in table order: by family, then in the order they were registered."""
    rank = {name: i for i, name in enumerate(REGISTRY)}
    return sorted(
        names, key=lambda n: (FAMILIES.index(family(REGISTRY[n])), rank.get(n, len(rank)))
    )


# The other mechanisms register themselves when imported; every user of REGISTRY sees them all.
