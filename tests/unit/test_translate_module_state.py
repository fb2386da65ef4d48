"""translate/ is pure: no module holds mutable state (caches, registries, last-seen values).
Memoisation lives in a TranslationMemo the cache owns and passes in."""

from __future__ import annotations

import enum
import importlib
import operator
import pkgutil
import types
import typing
from pathlib import Path

import controlplane.translate

IMMUTABLE_VALUES = (str, bytes, int, float, complex, bool, type(None), range, type(Ellipsis))
DEFINITIONS = (type, types.FunctionType, types.BuiltinFunctionType, types.ModuleType, typing.TypeVar, operator.attrgetter)


def translate_modules() -> list[types.ModuleType]:
    package = controlplane.translate
    names = [f"{package.__name__}.{m.name}" for m in pkgutil.iter_modules(package.__path__)]
    return [package, *(importlib.import_module(name) for name in sorted(names))]


def mutable_parts(value: object, where: str) -> list[str]:
    """Where `value` (a module global) could hold state; empty when it cannot."""
    if isinstance(value, IMMUTABLE_VALUES + DEFINITIONS) or isinstance(value, enum.Enum):
        return []
    if type(value).__module__ in ("typing", "__future__"):
        return []  # names imported for type hints (Callable, Iterable...) and `annotations`
    if isinstance(value, (tuple, frozenset)):
        return [p for i, item in enumerate(value) for p in mutable_parts(item, f"{where}[{i}]")]
    if isinstance(value, types.MappingProxyType):
        return [p for key, item in value.items() for p in mutable_parts(key, where) + mutable_parts(item, f"{where}[{key!r}]")]
    return [f"{where}: {type(value).__module__}.{type(value).__qualname__}"]


def test_no_translate_module_holds_a_mutable_global() -> None:
    found = [
        part
        for module in translate_modules()
        for name, value in vars(module).items()
        if not (name.startswith("__") and name.endswith("__"))
        for part in mutable_parts(value, f"{module.__name__}.{name}")
    ]
    assert found == []


def test_no_translate_module_uses_functools_caches() -> None:
    sources = sorted(Path(controlplane.translate.__file__).parent.glob("*.py"))
    assert len(sources) > 10
    offenders = [p.name for p in sources if any(word in p.read_text() for word in ("lru_cache", "functools.cache", "@cache"))]
    assert offenders == []


def test_the_check_catches_what_it_is_for() -> None:
    """The test above would fail on the state translate/ used to have."""
    import functools

    assert mutable_parts({}, "index") and mutable_parts([], "_last_index") and mutable_parts({1}, "seen")
    assert mutable_parts(functools.lru_cache(maxsize=4)(lambda s: s), "service_cluster")
    assert mutable_parts((1, []), "pair") and mutable_parts(types.MappingProxyType({"a": []}), "table")
    assert not mutable_parts(types.MappingProxyType({"a": (1, "b")}), "table")
