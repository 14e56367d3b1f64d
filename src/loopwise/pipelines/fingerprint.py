"""Code fingerprints: the part of a step's cache key that covers its code.

A fingerprint hashes a step's source, the source of the project functions, classes, modules and
constants it reaches, and the versions of the installed distributions it uses.
"""

from __future__ import annotations

import contextlib
import dis
import functools
import hashlib
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import json
import linecache
import re
import sys
import textwrap
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loopwise.errors import InvalidArgumentError

__all__ = ["CodeFingerprint", "explain_difference", "fingerprint", "module_label"]

# Part of every digest, so that a change in what gets hashed never reuses old cache entries.
_FORMAT = "loopwise-code-fingerprint/1"
_STDLIB = frozenset(sys.stdlib_module_names) | frozenset(sys.builtin_module_names)
_SCALAR_TYPES = (type(None), bool, int, float, complex, str, bytes)
# Larger containers are data, not settings; hashing them on every call would cost too much.
_MAX_CONSTANT_ITEMS = 10_000


@dataclass(frozen=True)
class CodeFingerprint:
    """What a step's code depends on, and one digest over all of it."""

    digest: str
    sources: dict[str, str] = field(default_factory=dict)
    packages: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready form; :meth:`from_dict` reads it back."""
        return {
            "digest": self.digest,
            "sources": dict(sorted(self.sources.items())),
            "packages": dict(sorted(self.packages.items())),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CodeFingerprint:
        """Rebuild a fingerprint from :meth:`as_dict` output."""
        digest = data.get("digest") if isinstance(data, Mapping) else None
        if not isinstance(digest, str):
            raise InvalidArgumentError(
                f"Expected a mapping with a string 'digest' (CodeFingerprint.as_dict() output), "
                f"got {type(data).__name__} with digest {digest!r}; pass what as_dict() returned.",
                parameter="data",
            )
        return cls(digest, _string_map(data, "sources"), _string_map(data, "packages"))


def fingerprint(fn: Callable[..., Any]) -> CodeFingerprint:
    """Fingerprint ``fn`` (a function, or a step or decorator wrapping one) and what it uses."""
    target: object = getattr(fn, "fn", fn)
    if not callable(target):
        raise InvalidArgumentError(
            f"Expected a function or a step to fingerprint, got {type(fn).__name__}; "
            "pass the step function itself.",
            parameter="fn",
        )
    # A __wrapped__ cycle raises ValueError: then fingerprint the object as given.
    with contextlib.suppress(ValueError):
        target = inspect.unwrap(target)
    walker = _Walker()
    walker.visit_root(target)
    sources = walker.sources()
    if not sources and not walker.packages:
        raise InvalidArgumentError(
            f"Expected a Python function to fingerprint, got {fn!r}, which has no source and "
            "belongs to no installed package; wrap the call in a def.",
            parameter="fn",
        )
    payload = {"format": _FORMAT, "sources": sources, "packages": walker.packages}
    digest = _sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")))
    return CodeFingerprint(
        digest, dict(sorted(sources.items())), dict(sorted(walker.packages.items()))
    )


def explain_difference(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Plain-English reasons why two fingerprints (``as_dict()`` outputs) differ; [] if equal."""
    before, after = CodeFingerprint.from_dict(old), CodeFingerprint.from_dict(new)
    if before.digest == after.digest:
        return []
    lines: list[str] = []
    for key in sorted(before.sources.keys() | after.sources.keys()):
        changed_subject, subject = _describe(key)
        if key not in before.sources:
            lines.append(f"{subject} is new")
        elif key not in after.sources:
            lines.append(f"{subject} is no longer used")
        elif before.sources[key] != after.sources[key]:
            lines.append(f"{changed_subject} changed")
    for dist in sorted(before.packages.keys() | after.packages.keys()):
        was, now = before.packages.get(dist), after.packages.get(dist)
        if was is None:
            lines.append(f"package {dist} {now} is new")
        elif now is None:
            lines.append(f"package {dist} {was} is no longer used")
        elif was != now:
            lines.append(f"{dist} {was} -> {now}")
    return lines or ["the code is the same, but the fingerprints were made by different versions"]


class _Walker:
    """One walk from a step through everything it references; not reusable."""

    def __init__(self) -> None:
        self.packages: dict[str, str] = {}
        self._sources: dict[str, set[str]] = {}
        # Objects stay referenced here so that their ids cannot be reused during the walk.
        self._seen: dict[int, object] = {}
        self._seen_attributes: set[tuple[int, str]] = set()

    def sources(self) -> dict[str, str]:
        # Two objects can share a key (closures from one factory); combine them order-free.
        return {
            key: next(iter(hashes)) if len(hashes) == 1 else _sha256("".join(sorted(hashes)))
            for key, hashes in self._sources.items()
        }

    def visit_root(self, obj: object) -> None:
        """The step itself is hashed even when it lives in an installed package."""
        if isinstance(obj, types.MethodType):
            self.visit(obj.__self__)
            obj = obj.__func__
        if isinstance(obj, functools.partial):
            self._visit_partial(obj, root=True)
        elif isinstance(obj, types.FunctionType):
            self._visit_function(obj)
        elif isinstance(obj, type):
            self._visit_class(obj, root=True)
        else:
            self.visit(obj)

    def visit(self, obj: object, names: frozenset[str] = frozenset()) -> None:
        """Record what ``obj`` contributes; ``names`` are the names the referencing code reads."""
        if isinstance(obj, types.ModuleType):
            self._visit_module(obj, names)
        elif isinstance(obj, types.FunctionType):
            if _is_project(_module_of(obj)):
                self._visit_function(obj)
            else:
                self._record_package(_module_of(obj))
        elif isinstance(obj, type):
            self._visit_class(obj)
        elif isinstance(obj, types.MethodType):
            self.visit(obj.__func__)
            self.visit(obj.__self__)
        elif isinstance(obj, functools.partial):
            self._visit_partial(obj, root=False)
        elif isinstance(obj, staticmethod | classmethod):
            self.visit(obj.__func__)
        elif isinstance(obj, property):
            for accessor in (obj.fget, obj.fset, obj.fdel):
                self.visit(accessor)
        elif inspect.isroutine(obj):
            self._record_package(_routine_module(obj))
        elif isinstance(obj, list | tuple | set | frozenset | dict):
            if self._first_visit(obj):
                items = obj.values() if isinstance(obj, dict) else obj
                for item in list(items)[:_MAX_CONSTANT_ITEMS]:
                    self.visit(item, names)
        elif obj is not None:
            self._visit_class(type(obj))
            wrapped = _wrapped_function(obj)
            if wrapped is not None:
                self.visit(wrapped)

    def _first_visit(self, obj: object) -> bool:
        if id(obj) in self._seen:
            return False
        self._seen[id(obj)] = obj
        return True

    def _add_source(self, key: str, digest: str) -> None:
        module, sep, rest = key.partition(":")
        self._sources.setdefault(module_label(module) + sep + rest, set()).add(digest)

    def _record_package(self, module_name: str | None) -> None:
        if module_name is None:
            return
        for dist in _distributions_of(module_name.partition(".")[0]):
            if dist not in self.packages:
                self.packages[dist] = _version(dist)

    def _visit_partial(self, obj: functools.partial[Any], *, root: bool) -> None:
        if not self._first_visit(obj):
            return
        if root:
            self.visit_root(obj.func)
        else:
            self.visit(obj.func)
        for value in (*obj.args, *obj.keywords.values()):
            self.visit(value)

    def _visit_function(self, func: types.FunctionType, *, with_source: bool = True) -> None:
        if not self._first_visit(func):
            return
        module = _module_of(func) or "__main__"
        if with_source:
            source = _function_source(func)
            # Defaults like `def f(x=THRESHOLD)` are evaluated once and absent from the body.
            defaults = [*(func.__defaults__ or ()), *(func.__kwdefaults__ or {}).values()]
            tokens = [_constant_token(value) for value in defaults]
            source += "\n" + repr(tokens)
            self._add_source(f"{module}:{func.__qualname__}", _sha256(source))
            for value, token in zip(defaults, tokens, strict=True):
                if token is None:
                    self.visit(value)
        names, imports = _code_references(func.__code__)
        namespace = func.__globals__
        for name in sorted(names):
            # Names missing from the globals are builtins, attributes or imported in the body.
            if name not in namespace:
                continue
            value = namespace[name]
            token = None if _is_dunder(name) else _constant_token(value)
            if token is not None:
                self._add_source(f"{module}:{name} (value)", _sha256(token))
            else:
                self.visit(value, names)
        for level, imported in imports:
            self._visit_import(_absolute_name(imported, level, namespace), names)
        for variable, cell in zip(func.__code__.co_freevars, func.__closure__ or (), strict=True):
            try:
                value = cell.cell_contents
            except ValueError:
                continue  # an empty cell: the variable is not assigned yet
            token = _constant_token(value)
            if token is not None:
                key = f"{module}:{func.__qualname__} (captured {variable})"
                self._add_source(key, _sha256(token))
            else:
                self.visit(value, names)

    def _visit_class(self, cls: type, *, root: bool = False) -> None:
        module = cls.__module__
        if not root and not _is_project(module):
            self._record_package(module)
            return
        if not self._first_visit(cls):
            return
        self._add_source(f"{module}:{cls.__qualname__}", _sha256(_class_source(cls)))
        for base in cls.__bases__:
            self.visit(base)
        # Methods are covered by the class source; walk them for what they reference.
        for _, member in sorted(vars(cls).items()):
            if isinstance(member, staticmethod | classmethod):
                member = member.__func__
            accessors = (
                (member.fget, member.fset, member.fdel)
                if isinstance(member, property)
                else (member,)
            )
            for accessor in accessors:
                if isinstance(accessor, types.FunctionType):
                    self._visit_function(accessor, with_source=False)
                elif isinstance(accessor, type):
                    self.visit(accessor)

    def _visit_module(self, module: types.ModuleType, names: frozenset[str]) -> None:
        if not _is_project(module.__name__):
            self._record_package(module.__name__)
            return
        if self._first_visit(module):
            filename = getattr(module, "__file__", None)
            if filename:
                self._add_module_file(module.__name__, filename)
        # Follow what the code reads from the module (helpers.clean), which the file hash
        # alone would not reach when clean calls into a third module.
        namespace = vars(module)
        for name in sorted(names):
            if name in namespace and (id(module), name) not in self._seen_attributes:
                self._seen_attributes.add((id(module), name))
                self.visit(namespace[name], names)

    def _visit_import(self, name: str | None, names: frozenset[str]) -> None:
        if not name or not _is_project(name):
            self._record_package(name)
            return
        module = sys.modules.get(name)
        if module is not None:
            self._visit_module(module, names)
            return
        # Not imported yet (imported inside the body): hash the file the import will load.
        filename = _find_module_file(name)
        if filename is not None:
            self._add_module_file(name, filename)

    def _add_module_file(self, module_name: str, filename: str) -> None:
        try:
            content = Path(filename).read_bytes()
        except OSError:
            return  # no file behind the module (a zip import, a deleted file)
        self._add_source(f"{module_name}:<module>", hashlib.sha256(content).hexdigest())


@functools.cache
def _distributions_by_import_name() -> Mapping[str, tuple[str, ...]]:
    # Costs ~0.2 s, so once per process; _installed_distribution catches later installs.
    mapping = importlib.metadata.packages_distributions()
    return {name: tuple(sorted({_normalise(d) for d in dists})) for name, dists in mapping.items()}


@functools.lru_cache(maxsize=1024)
def _installed_distribution(top_level: str, search_path: tuple[str, ...]) -> tuple[str, ...]:
    # packages_distributions() misses editable installs that only ship a .pth file (Loopwise's
    # own) and anything installed after it ran; a distribution named like the import still counts.
    try:
        dist = importlib.metadata.distribution(top_level)
    except (importlib.metadata.PackageNotFoundError, ValueError):
        return ()
    return (_normalise(dist.name or top_level),)


def _distributions_of(top_level: str) -> tuple[str, ...]:
    if top_level in _STDLIB:
        return ()
    known = _distributions_by_import_name().get(top_level)
    if known:
        return known
    return _installed_distribution(top_level, tuple(sys.path))


def _is_project(module_name: str | None) -> bool:
    """User code: neither the standard library nor an installed distribution."""
    if module_name is None:
        return False
    top_level = module_name.partition(".")[0]
    return top_level not in _STDLIB and not _distributions_of(top_level)


def _version(dist: str) -> str:
    # Read fresh every time: an upgrade within a running process must change the digest.
    try:
        return importlib.metadata.version(dist) or "unknown"
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _normalise(dist: str) -> str:
    return re.sub(r"[-_.]+", "-", dist).lower()


@functools.lru_cache(maxsize=4096)
def _code_references(code: types.CodeType) -> tuple[frozenset[str], tuple[tuple[int, str], ...]]:
    """Names a code object (and the code nested in it) reads, and the modules it imports."""
    names: set[str] = set()
    imports: set[tuple[int, str]] = set()
    for nested in _code_objects(code):
        names.update(nested.co_names)
        recent: list[dis.Instruction] = []
        for instruction in dis.get_instructions(nested):
            if instruction.opname == "IMPORT_NAME":
                # Compiled as LOAD_CONST level; LOAD_CONST fromlist; IMPORT_NAME name.
                level_arg = recent[-2].argval if len(recent) >= 2 else 0
                level = level_arg if isinstance(level_arg, int) else 0
                imports.add((level, str(instruction.argval)))
            recent = [*recent[-1:], instruction]
    return frozenset(names), tuple(sorted(imports))


def _code_objects(code: types.CodeType) -> Iterator[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


def _absolute_name(name: str, level: int, namespace: Mapping[str, Any]) -> str | None:
    if level == 0:
        return name
    package = namespace.get("__package__") or str(namespace.get("__name__", "")).rpartition(".")[0]
    try:
        return importlib.util.resolve_name("." * level + name, package)
    except (ImportError, ValueError):
        return None


def _find_module_file(name: str) -> str | None:
    """The file ``import name`` would load, found without importing anything."""
    search_path: list[str] | None = None
    spec = None
    parts = name.split(".")
    for index in range(len(parts)):
        spec = importlib.machinery.PathFinder.find_spec(".".join(parts[: index + 1]), search_path)
        if spec is None:
            return None
        search_path = list(spec.submodule_search_locations or [])
    return spec.origin if spec is not None and spec.has_location else None


def _function_source(func: types.FunctionType) -> str:
    # linecache would otherwise serve the text it read before the file was edited.
    linecache.checkcache(func.__code__.co_filename)
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return _code_token(func.__code__)


def _class_source(cls: type) -> str:
    try:
        filename = inspect.getsourcefile(cls)
        if filename:
            linecache.checkcache(filename)
        return textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        methods = [
            f"{name}={_code_token(member.__code__)}"
            for name, member in sorted(vars(cls).items())
            if isinstance(member, types.FunctionType)
        ]
        return f"class {cls.__qualname__}\n" + "\n".join(methods)


def _code_token(code: types.CodeType) -> str:
    """A stand-in for source that is equal across processes (no ids, no hash-ordered sets)."""
    consts = [
        _code_token(c) if isinstance(c, types.CodeType) else _constant_token(c)
        for c in code.co_consts
    ]
    return repr((code.co_code.hex(), consts, code.co_names))


def _constant_token(value: object, budget: list[int] | None = None) -> str | None:
    """A canonical text for a plain setting (numbers, strings, containers of them), else None."""
    budget = [_MAX_CONSTANT_ITEMS] if budget is None else budget
    budget[0] -= 1
    if budget[0] < 0:
        return None
    if isinstance(value, _SCALAR_TYPES):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, list | tuple | set | frozenset):
        tokens = [_constant_token(item, budget) for item in value]
        if any(token is None for token in tokens):
            return None
        # Set iteration order depends on the per-process string hash seed.
        ordered = sorted(tokens) if isinstance(value, set | frozenset) else tokens  # type: ignore[type-var]
        return f"{type(value).__name__}:[{','.join(ordered)}]"  # type: ignore[arg-type]
    if isinstance(value, dict):
        pairs = [(_constant_token(k, budget), _constant_token(v, budget)) for k, v in value.items()]
        if any(k is None or v is None for k, v in pairs):
            return None
        return "dict:{" + ",".join(f"{k}={v}" for k, v in pairs) + "}"
    if isinstance(value, types.CodeType):
        return _code_token(value)
    return None


_SCRIPT_NAMES = ("__main__", "__mp_main__", "__loopwise_main__")


def module_label(name: str) -> str:
    """A module's name as the cache sees it: a script is named after its file, however it was
    loaded (run as ``__main__``, imported by name, or read by ``loopwise pipeline run``), so all
    three share one cache."""
    if name in _SCRIPT_NAMES or name.startswith("loopwise_pipeline_"):
        filename = getattr(sys.modules.get(name), "__file__", None)
        if filename:
            return Path(filename).stem
    return name


def _module_of(func: types.FunctionType) -> str | None:
    module = func.__module__ or func.__globals__.get("__name__")
    return str(module) if module is not None else None


def _routine_module(obj: object) -> str | None:
    module = getattr(obj, "__module__", None)
    if isinstance(module, str):
        return module
    owner = getattr(obj, "__self__", None) or getattr(obj, "__objclass__", None)
    if isinstance(owner, types.ModuleType):
        return owner.__name__
    return type(owner).__module__ if owner is not None and not isinstance(owner, type) else None


def _wrapped_function(obj: object) -> object | None:
    """The function inside a wrapper object (a step, a decorator class), read without calling
    __getattr__, which could have side effects on arbitrary objects."""
    for attribute in ("__wrapped__", "fn"):
        try:
            value = inspect.getattr_static(obj, attribute)
        except AttributeError:
            continue
        if isinstance(value, types.MemberDescriptorType):  # a __slots__ attribute
            try:
                value = value.__get__(obj, type(obj))
            except AttributeError:
                continue
        if isinstance(value, types.FunctionType | functools.partial):
            return value
    return None


def _is_dunder(name: str) -> bool:
    # Module metadata such as __file__ differs between checkouts without the code changing.
    return name.startswith("__") and name.endswith("__")


def _describe(key: str) -> tuple[str, str]:
    """How explain_difference names a `sources` key: (when changed, when new or gone)."""
    module, _, name = key.partition(":")
    if name == "<module>":
        return f"the source of module {module}", f"module {module}"
    if name.endswith(" (value)"):
        name = name.removesuffix(" (value)")
        return f"the value of {name} ({module})", f"value {name} ({module})"
    captured = re.fullmatch(r"(.*) \(captured (.*)\)", name)
    if captured:
        owner, variable = captured.groups()
        return (
            f"the value of {variable} captured by {owner} ({module})",
            f"captured value {variable} of {owner} ({module})",
        )
    return f"the source of {name} ({module})", f"helper {name} ({module})"


def _string_map(data: Mapping[str, Any], key: str) -> dict[str, str]:
    value = data.get(key, {})
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise InvalidArgumentError(
            f"Expected '{key}' to map strings to strings (CodeFingerprint.as_dict() output), "
            f"got {value!r}; pass what as_dict() returned.",
            parameter="data",
        )
    return dict(value)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
