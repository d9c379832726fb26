"""Address parsing and loopback remapping (pure: no I/O)."""

from __future__ import annotations

import ipaddress
import os
import tempfile
from typing import Literal, NamedTuple

from .._errors import NotSupportedError
from . import _platform

__all__ = [
    "Address",
    "Endpoint",
    "default_socket_dir",
    "explicit_socket_dir",
    "format_host",
    "ip_logical",
    "parse",
    "remapped_name",
    "resolve",
]

Address = str | tuple[str, int]

EndpointKind = Literal["remap", "unix", "abstract", "ip"]


class Endpoint(NamedTuple):
    """What an address means on this platform.

    - ``remap``: a Unix socket ``path`` = ``<sdir>/<name>:<port>`` (``name`` is ``127.x.y.z`` or
      ``[::1]``); port 0 asks for a free name.
    - ``unix``: the Unix socket ``path``.
    - ``abstract``: the Linux abstract socket ``path`` (the name, without ``@``).
    - ``ip``: TCP or UDP on ``host`` (no brackets) and ``port``; ``prefix`` is what precedes the
      host in the logical address (``"tcp:"``, or ``""`` for a remapped address on a platform
      without Unix sockets).

    ``explicit`` says whether the socket directory ``sdir`` was named (argument or environment).
    """

    kind: EndpointKind
    logical: str
    host: str
    port: int
    path: str
    sdir: str
    prefix: str
    explicit: bool = False


def default_socket_dir() -> str:
    env = os.environ.get("FASTIPC_SOCKET_DIR")
    if env:
        return env
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "fastipc")
    if hasattr(os, "getuid"):
        return f"/tmp/fastipc-{os.getuid()}"
    return os.path.join(tempfile.gettempdir(), "fastipc")  # pragma: no cover - Windows


def explicit_socket_dir(socket_dir: str | None) -> tuple[str, bool]:
    """The socket directory to use, and whether it was named explicitly (argument or env)."""
    if socket_dir is not None:
        return os.fspath(socket_dir), True
    env = os.environ.get("FASTIPC_SOCKET_DIR")
    if env:
        return env, True
    return default_socket_dir(), False


def format_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def ip_logical(prefix: str, host: str, port: int) -> str:
    return f"{prefix}{format_host(host)}:{port}"


def _bad(address: object, why: str) -> ValueError:
    return ValueError(f"invalid address {address!r}: {why}")


def _port(text: str, address: object) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 5:
        raise _bad(address, "the port must be a number from 0 to 65535")
    port = int(text)
    if port > 65535:
        raise _bad(address, "the port must be a number from 0 to 65535")
    return port


def _split_hostport(text: str, address: object) -> tuple[str, int]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise _bad(address, "missing ']' after an IPv6 host")
        host = text[1:end]
        rest = text[end + 1 :]
        if not rest.startswith(":"):
            raise _bad(address, "expected ':port' after the host")
        if not host:
            raise _bad(address, "the host is empty")
        return host, _port(rest[1:], address)
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise _bad(address, "expected host:port")
    if not host:
        raise _bad(address, "the host is empty")
    if ":" in host:
        raise _bad(address, "write IPv6 hosts in brackets: [::1]:5000")
    return host, _port(port_text, address)


def remapped_name(host: str) -> str | None:
    """``127.x.y.z`` or ``[::1]`` if ``host`` is a loopback address that is remapped, else None."""
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ip) if ip.is_loopback else None
    if ip.scope_id is None and ip == ipaddress.IPv6Address("::1"):
        return "[::1]"
    return None


def _ip_host(host: str) -> str:
    return "127.0.0.1" if host.lower() == "localhost" else host


def parse(address: object, socket_dir: str | None = None) -> Endpoint:
    """Parse ``address`` for this platform (``NotSupportedError`` for what it cannot do)."""
    if isinstance(address, tuple):
        return _parse_tuple(address, socket_dir)
    if not isinstance(address, str):
        raise TypeError(f"a fastipc address is a str or a (host, port) tuple, not {address!r}")
    if "\0" in address:
        raise _bad(address, "it contains a NUL byte")
    if address.startswith("unix:"):
        return _parse_unix(address)
    if address.startswith(("tcp:", "udp:")):
        host, port = _split_hostport(address[4:], address)
        host = _ip_host(host)
        return Endpoint("ip", ip_logical("tcp:", host, port), host, port, "", "", "tcp:")
    host, port = _split_hostport(address, address)
    return _host_endpoint(host, port, socket_dir)


def _parse_tuple(address: tuple[object, ...], socket_dir: str | None) -> Endpoint:
    """A ``(host, port)`` address."""
    if len(address) != 2:
        raise _bad(address, "a tuple address is (host, port)")
    host, port = address
    if not isinstance(host, str):
        raise TypeError(f"invalid address {address!r}: the host must be a str")
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError(f"invalid address {address!r}: the port must be an int")
    if "\0" in host:
        raise _bad(address, "it contains a NUL byte")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host:
        raise _bad(address, "the host is empty")
    if not 0 <= port <= 65535:
        raise _bad(address, "the port must be a number from 0 to 65535")
    return _host_endpoint(host, port, socket_dir)


def _parse_unix(address: str) -> Endpoint:
    """A ``unix:<path>`` or ``unix:@<abstract name>`` address."""
    rest = address[5:]
    if not rest:
        raise _bad(address, "the path is empty")
    if _platform.tcp_loopback():
        raise NotSupportedError(f"unix: addresses are not supported on Windows ({address!r})")
    if not rest.startswith("@"):
        return Endpoint("unix", address, "", 0, rest, "", "")
    if not rest[1:]:
        raise _bad(address, "empty abstract name")
    if not _platform.abstract_supported():
        raise NotSupportedError(f"abstract sockets exist on Linux only ({address!r})")
    return Endpoint("abstract", address, "", 0, rest[1:], "", "")


def _host_endpoint(host: str, port: int, socket_dir: str | None) -> Endpoint:
    name = remapped_name(host)
    if name is None:
        host = _ip_host(host)
        return Endpoint("ip", ip_logical("tcp:", host, port), host, port, "", "", "tcp:")
    logical = f"{name}:{port}"
    if _platform.tcp_loopback():
        return Endpoint("ip", logical, name.strip("[]"), port, "", "", "")
    sdir, explicit = explicit_socket_dir(socket_dir)
    return Endpoint("remap", logical, name, port, os.path.join(sdir, logical), sdir, "", explicit)


def resolve(address: Address, *, socket_dir: str | None = None) -> str:
    ep = parse(address, socket_dir)
    if ep.kind in ("remap", "unix"):
        return f"unix:{ep.path}"
    if ep.kind == "abstract":
        return f"unix:@{ep.path}"
    return ip_logical("tcp:", ep.host, ep.port)
