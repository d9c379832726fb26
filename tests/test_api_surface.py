"""Both backends expose exactly the public API of ``python/fastipc/_fastipc.pyi``.

The stub is read with ``ast`` (its ``sys.platform`` branches evaluated for this platform): its
``__all__``, and for every class its public methods, properties, class methods and class
attributes, with each callable's parameters (name, kind, default; a stub default of ``...``
only says that there is one). The Rust extension and the pure-Python fallback must match it
both ways, with no public name the stub lacks, and the facade's ``__all__`` is its one list of
public names.

Constructors are compared where the stub declares one (``__new__``); the other classes
(Connection, Listener, the pipe ends ...) come only from functions, and their Python-level
``__init__`` in the fallback is internal. Every Rust callable here has an inspectable signature
(PyO3 writes ``__text_signature__``); a callable without one fails the test rather than being
skipped.
"""

from __future__ import annotations

import ast
import inspect
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import fastipc
import pytest
from conftest import load_backend

STUB = Path(fastipc.__file__).with_name("_fastipc.pyi")

#: A stub default of ``...``: some default, whose value the stub does not state.
ANY_DEFAULT = "<any default>"
NO_DEFAULT = "<no default>"
#: Dunders that are part of the API (the context-manager protocol).
API_DUNDERS = ("__enter__", "__exit__")


@dataclass(frozen=True)
class Param:
    name: str
    kind: inspect._ParameterKind
    default: object


@dataclass(frozen=True)
class Member:
    kind: str  # "method", "classmethod", "property" or "attribute"
    params: tuple[Param, ...] | None  # None for properties and attributes


@dataclass
class Stub:
    names: set[str]  # the stub's __all__ on this platform
    platform_names: set[str]  # names under a sys.platform branch (on any platform)
    functions: dict[str, tuple[Param, ...]]
    classes: dict[str, dict[str, Member]]
    constructors: dict[str, tuple[Param, ...]]
    dunders: dict[str, set[str]]


# -------------------------------------------------------------------------------------------
# the stub


def _platform_test(test: ast.expr) -> bool:
    """Evaluates an ``if`` of the stub: only ``sys.platform`` comparisons are allowed."""
    names = {n.id for n in ast.walk(test) if isinstance(n, ast.Name)}
    assert names == {"sys"}, f"unexpected condition in the stub: {ast.unparse(test)}"
    return bool(eval(compile(ast.Expression(test), str(STUB), "eval"), {"sys": sys}))


def _flatten(body: list[ast.stmt], marked: set[str], in_branch: bool) -> list[ast.stmt]:
    """The statements that hold on this platform; the names defined under a platform branch
    (taken or not) go into ``marked``."""
    out: list[ast.stmt] = []
    for node in body:
        if isinstance(node, ast.If):
            for branch in (node.body, node.orelse):
                _flatten(branch, marked, True)
            taken = node.body if _platform_test(node.test) else node.orelse
            out.extend(_flatten(taken, set(), True))
            continue
        if in_branch and isinstance(node, ast.ClassDef | ast.FunctionDef):
            marked.add(node.name)
        if in_branch and isinstance(node, ast.AugAssign):
            marked.update(ast.literal_eval(node.value))
        out.append(node)
    return out


def _default(node: ast.expr | None) -> object:
    if node is None:
        return NO_DEFAULT
    if isinstance(node, ast.Constant) and node.value is Ellipsis:
        return ANY_DEFAULT
    return ast.literal_eval(node)


def _params(fn: ast.FunctionDef, drop_first: bool) -> tuple[Param, ...]:
    a = fn.args
    positional = [*a.posonlyargs, *a.args]
    defaults = [None] * (len(positional) - len(a.defaults)) + list(a.defaults)
    params = [
        Param(arg.arg, kind, _default(d))
        for arg, d, kind in zip(
            positional,
            defaults,
            [inspect.Parameter.POSITIONAL_ONLY] * len(a.posonlyargs)
            + [inspect.Parameter.POSITIONAL_OR_KEYWORD] * len(a.args),
            strict=True,
        )
    ]
    if a.vararg:
        params.append(Param(a.vararg.arg, inspect.Parameter.VAR_POSITIONAL, NO_DEFAULT))
    params += [
        Param(arg.arg, inspect.Parameter.KEYWORD_ONLY, _default(d))
        for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True)
    ]
    if a.kwarg:
        params.append(Param(a.kwarg.arg, inspect.Parameter.VAR_KEYWORD, NO_DEFAULT))
    return tuple(params[1:] if drop_first else params)


def _merge(name: str, overloads: list[tuple[Param, ...]]) -> tuple[Param, ...]:
    """One runtime signature for a function's overloads: the same parameters, each with the
    default any overload gives it (``kind="stream"`` and ``kind: Literal["datagram"]``)."""
    first = overloads[0]
    for other in overloads[1:]:
        assert [(p.name, p.kind) for p in other] == [(p.name, p.kind) for p in first], name
    merged = []
    for i, p in enumerate(first):
        defaults = {o[i].default for o in overloads} - {NO_DEFAULT}
        assert len(defaults) <= 1, f"{name}: overloads disagree on the default of {p.name}"
        merged.append(Param(p.name, p.kind, defaults.pop() if defaults else NO_DEFAULT))
    return tuple(merged)


def _decorators(fn: ast.FunctionDef) -> set[str]:
    return {ast.unparse(d) for d in fn.decorator_list}


def _functions(body: list[ast.stmt], method: bool) -> dict[str, tuple[str, tuple[Param, ...]]]:
    """Public functions (and the API dunders) of a body: kind and merged parameters."""
    found: dict[str, tuple[str, list[tuple[Param, ...]]]] = {}
    for node in body:
        if not isinstance(node, ast.FunctionDef):
            continue
        if node.name.startswith("_") and node.name not in (*API_DUNDERS, "__new__"):
            continue
        decorators = _decorators(node)
        kind = "method"
        if "property" in decorators:
            kind = "property"
        elif "classmethod" in decorators:
            kind = "classmethod"
        entry = found.setdefault(node.name, (kind, []))
        entry[1].append(_params(node, drop_first=method))
    return {name: (kind, _merge(name, sigs)) for name, (kind, sigs) in found.items()}


def _class_members(
    cls: ast.ClassDef, classes: dict[str, ast.ClassDef]
) -> tuple[dict[str, Member], tuple[Param, ...] | None, set[str]]:
    body: list[ast.stmt] = []
    for base in cls.bases:  # a base defined in the stub (_PipeEnd) lends its members
        if isinstance(base, ast.Name) and base.id in classes:
            body += _flatten(classes[base.id].body, set(), False)
    body += _flatten(cls.body, set(), False)
    members: dict[str, Member] = {}
    constructor = None
    dunders = set()
    for name, (kind, params) in _functions(body, method=True).items():
        if name == "__new__":
            constructor = params
        elif name in API_DUNDERS:
            dunders.add(name)
        else:
            members[name] = Member(kind, None if kind == "property" else params)
    for node in body:
        target = node.target if isinstance(node, ast.AnnAssign) else None
        if isinstance(target, ast.Name) and not target.id.startswith("_"):
            members[target.id] = Member("attribute", None)
    return members, constructor, dunders


def read_stub() -> Stub:
    tree = ast.parse(STUB.read_text(), str(STUB))
    marked: set[str] = set()
    body = _flatten(tree.body, marked, False)
    names: list[str] = []
    for node in body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["__all__"]:
            names = list(ast.literal_eval(node.value))
        elif isinstance(node, ast.AugAssign) and ast.unparse(node.target) == "__all__":
            names += ast.literal_eval(node.value)
    assert len(names) == len(set(names)), "a name twice in the stub's __all__"
    classes = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.ClassDef)}
    stub = Stub(set(names), marked, {}, {}, {}, {})
    for name, (_, params) in _functions(body, method=False).items():
        stub.functions[name] = params
    for node in body:
        if isinstance(node, ast.ClassDef) and node.name in stub.names:
            members, constructor, dunders = _class_members(node, classes)
            stub.classes[node.name] = members
            stub.dunders[node.name] = dunders
            if constructor is not None:
                stub.constructors[node.name] = constructor
    return stub


STUB_API = read_stub()


# -------------------------------------------------------------------------------------------
# a backend


def _public(obj: object) -> set[str]:
    return {n for n in dir(obj) if not n.startswith("_")}


def _runtime_params(obj: Any, drop_first: bool) -> tuple[Param, ...]:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError) as exc:
        raise AssertionError(f"{obj!r} has no inspectable signature: {exc}") from None
    params = [Param(p.name, p.kind, p.default) for p in sig.parameters.values()]
    if drop_first:
        params = params[1:]
    return tuple(
        Param(p.name, p.kind, NO_DEFAULT if p.default is inspect.Parameter.empty else p.default)
        for p in params
    )


def _member_kind(cls: type, name: str) -> str:
    raw = inspect.getattr_static(cls, name)
    if isinstance(raw, property) or inspect.isgetsetdescriptor(raw):
        return "property"
    if isinstance(raw, classmethod) or type(raw).__name__ == "classmethod_descriptor":
        return "classmethod"
    if callable(raw):
        return "method"
    return "attribute"


def _same_params(
    where: str, stub: tuple[Param, ...], runtime: tuple[Param, ...], problems: list[str]
) -> None:
    names = ([(p.name, p.kind) for p in stub], [(p.name, p.kind) for p in runtime])
    if names[0] != names[1]:
        problems.append(f"{where}: parameters {names[1]}, the stub has {names[0]}")
        return
    for s, r in zip(stub, runtime, strict=True):
        if s.default == ANY_DEFAULT:
            if r.default == NO_DEFAULT:
                problems.append(f"{where}: {s.name} has no default, the stub gives one")
        elif s.default != r.default:
            problems.append(f"{where}: {s.name}={r.default!r}, the stub has {s.default!r}")


def _check_class(name: str, cls: type, problems: list[str]) -> None:
    members = STUB_API.classes[name]
    extra, missing = _public(cls) - set(members), set(members) - _public(cls)
    if extra:
        problems.append(f"{name}: public members the stub lacks: {sorted(extra)}")
    if missing:
        problems.append(f"{name}: missing {sorted(missing)}")
    for dunder in STUB_API.dunders[name]:
        if not hasattr(cls, dunder):
            problems.append(f"{name}: missing {dunder}")
    for member, spec in members.items():
        if member not in _public(cls):
            continue
        kind = _member_kind(cls, member)
        if kind != spec.kind:
            problems.append(f"{name}.{member}: a {kind}, the stub has a {spec.kind}")
        elif spec.params is not None:
            runtime = _runtime_params(getattr(cls, member), drop_first=kind == "method")
            _same_params(f"{name}.{member}", spec.params, runtime, problems)
    if name in STUB_API.constructors:
        _same_params(name, STUB_API.constructors[name], _runtime_params(cls, False), problems)


def surface_problems(module: ModuleType, placeholders_allowed: bool) -> list[str]:
    """How ``module`` differs from the stub (empty: not at all). ``placeholders_allowed``: the
    module may keep a platform-marked name the stub lacks on this platform (the fallback's
    stand-ins that raise NotSupportedError there)."""
    problems: list[str] = []
    public = _public(module)
    extra = public - STUB_API.names
    if placeholders_allowed:
        extra -= STUB_API.platform_names
    if extra:
        problems.append(f"public names the stub lacks: {sorted(extra)}")
    if STUB_API.names - public:
        problems.append(f"missing: {sorted(STUB_API.names - public)}")
    declared = set(getattr(module, "__all__", ()))
    if declared != public:
        problems.append(f"__all__ differs from the public names by {sorted(declared ^ public)}")
    for name in sorted(STUB_API.names & public):
        obj = getattr(module, name)
        if name in STUB_API.classes:
            _check_class(name, obj, problems)
        elif name in STUB_API.functions:
            runtime = _runtime_params(obj, drop_first=False)
            _same_params(name, STUB_API.functions[name], runtime, problems)
    return problems


# -------------------------------------------------------------------------------------------
# the tests


def test_the_stub_is_read_whole():
    # What the reader found matches what the stub plainly holds: no class or function it
    # declares is lost, and members of a base class in the stub reach their subclasses.
    assert {"Connection", "SharedMemory", "PipeReader"} <= set(STUB_API.classes)
    assert {"listen", "connect", "socketpair", "pipe"} <= set(STUB_API.functions)
    assert STUB_API.classes["PipeReader"]["settimeout"].kind == "method"
    assert STUB_API.classes["SharedMemory"]["from_fd"].kind == "classmethod"
    assert STUB_API.classes["Lock"]["SIZE"].kind == "attribute"
    listen = {p.name: p for p in STUB_API.functions["listen"]}
    assert listen["kind"].default == "stream" and listen["max_message"].default == ANY_DEFAULT
    assert listen["backlog"].kind is inspect.Parameter.KEYWORD_ONLY
    assert {"MessageQueue", "SignalReceiver", "SysVMessageQueue"} <= STUB_API.platform_names
    assert STUB_API.names == set(STUB_API.functions) | set(STUB_API.classes) | {
        "BACKEND",
        "DEFAULT_MAX_MESSAGE",
        "SCM_MAX_FD",
    }


def test_backend_matches_the_stub(backend, backend_name):
    assert surface_problems(backend, placeholders_allowed=backend_name == "python") == []


def test_a_public_method_in_one_backend_only_is_caught(backend, backend_name, monkeypatch):
    # The check fails when a backend grows a public method the stub lacks, or loses one.
    module = backend
    if backend_name == "python":
        monkeypatch.setattr(module.Connection, "extra", lambda self: None, raising=False)
        assert surface_problems(module, True) == [
            "Connection: public members the stub lacks: ['extra']"
        ]
    else:  # the extension's classes are immutable: a stub that declares more must fail
        monkeypatch.setitem(
            STUB_API.classes, "Connection", {**STUB_API.classes["Connection"], "extra": None}
        )
        assert surface_problems(module, False) == ["Connection: missing ['extra']"]


def test_the_facade_all_is_its_one_list_of_names():
    assert len(fastipc.__all__) == len(set(fastipc.__all__))
    # Everything the facade shows is listed, and everything listed is there.
    facade_public = _public(fastipc)
    modules = {n for n in facade_public if isinstance(getattr(fastipc, n), ModuleType)}
    assert set(fastipc.__all__) == (facade_public - modules) | {"__version__"}
    # The backend's names are the stub's, whatever the platform: the facade stands in for what
    # the backend lacks here.
    own = {"Address", "AuthenticationError", "BufferTooShort", "Credentials", "IPCError"}
    own |= {"LockHolder"}
    own |= {"MessageTooLarge", "NotSupportedError", "SharedSocketDirWarning", "SignalInfo"}
    own |= {"TruncatedMessage", "UnpicklingError", "__version__"}
    assert set(fastipc.__all__) - own == STUB_API.names | STUB_API.platform_names
    backend = load_backend("python" if fastipc.BACKEND == "python" else "rust")
    for name in STUB_API.names:
        assert getattr(fastipc, name) is getattr(backend, name), name


def test_a_name_the_backend_lacks_becomes_a_stand_in(monkeypatch):
    # Off Linux the extension has no MessageQueue: the facade's name raises NotSupportedError.
    from fastipc import _backend

    backend = ModuleType("backend")
    backend.listen = fastipc.listen
    monkeypatch.setattr(_backend, "load", lambda: backend)
    namespace: dict[str, object] = {"IPCError": fastipc.IPCError}
    _backend.export(namespace, ["IPCError", "listen", "MessageQueue"])
    assert namespace["IPCError"] is fastipc.IPCError and namespace["listen"] is fastipc.listen
    with pytest.raises(fastipc.NotSupportedError) as info:
        namespace["MessageQueue"]("/q", create=True)
    assert str(info.value) == "MessageQueue: not available on this platform (Linux only)"


def test_the_connection_module_has_the_stdlib_names_and_no_others():
    """``fastipc.connection`` is a module of its own, outside the facade's ``__all__``: its
    ``__all__`` is the standard library's ``multiprocessing.connection.__all__`` and the few
    names the standard library defines there too (the challenge functions, the classes), plus
    the warning class only fastipc has."""
    import multiprocessing.connection as std

    import fastipc.connection as mpc

    assert "connection" not in fastipc.__all__
    expected = set(std.__all__) | {
        "AuthenticationError",
        "BufferTooShort",
        "Connection",
        "UnauthenticatedListenerWarning",
        "answer_challenge",
        "deliver_challenge",
    }
    assert set(mpc.__all__) == expected
    for name in expected - {"UnauthenticatedListenerWarning"}:
        assert hasattr(std, name), name
        assert hasattr(mpc, name), name
    assert mpc.Connection is fastipc.Connection
    assert mpc.AuthenticationError is fastipc.AuthenticationError
    assert mpc.BufferTooShort is fastipc.BufferTooShort
