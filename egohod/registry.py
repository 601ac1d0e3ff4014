"""One registry implementation for every kind of named component (models, encoders, detectors,
narrators, policies, environments, experts)::

    DETECTORS = Registry("detector", builtins=("egohod.hod.detectors.skin", ...))

    @DETECTORS.register("skin")
    class SkinDetector(Detector): ...

    DETECTORS.get("skin")          # the registered object
    DETECTORS.list("s*")           # sorted names matching a glob
    DETECTORS.entry("skin").meta   # what the decorator was given besides the name
    DETECTORS.options("skin", {"work_size": 128})  # its settings, checked against its Options
    DETECTORS.schemas()            # {name: config schema generated from each component's Options}

A component declares its settings as an ``Options`` dataclass, either as a class attribute
(``Policy.Options``) or given to the decorator (``register("skin", options=Options)``): the one
place their defaults live. The built-in components live in modules that are imported on the first
look-up, so importing a package stays cheap (no MuJoCo, no torchvision until a component is asked
for). An unknown name is a ``KeyError`` that suggests the closest registered names and lists them all; registering a
second, different object under a taken name is a ``ValueError`` naming both.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, TypeVar

T = TypeVar("T")

__all__ = ["Entry", "Registry"]


@dataclass(frozen=True)
class Entry:
    """One registered component: its name, the object (class or builder function) and the
    metadata given to :meth:`Registry.register` (e.g. a model's input spec)."""

    name: str
    obj: Any
    meta: dict = field(default_factory=dict)

    @property
    def description(self) -> str:
        """First line of the object's docstring."""
        doc = (getattr(self.obj, "__doc__", None) or "").strip().splitlines()
        return doc[0] if doc else ""


def _origin(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', type(obj).__name__)}"


class Registry:
    """Named components of one ``kind``.

    Args:
        kind: what is registered, as the error messages name it ("policy", "environment").
        builtins: modules whose import registers the built-in components; imported on the first
            :meth:`get` / :meth:`list` / ``in``.
        optional_builtins: built-in modules that may be absent from a partial install (a missing
            module of that name is skipped; any other import error is raised).
        plural: plural of ``kind`` (default ``kind + "s"``).
        unknown: the start of the unknown-name message, a format string with ``{kind}`` and
            ``{name}`` (default ``"unknown {kind} {name!r}"``).
        name_attr: if given, each registered object gets its name as this attribute (e.g. a
            policy class's ``policy_name``).
    """

    def __init__(self, kind: str, builtins: Iterable[str] = (), *, optional_builtins: Iterable[str] = (),
                 plural: str | None = None, unknown: str = "unknown {kind} {name!r}", name_attr: str | None = None):
        self.kind = kind
        self.plural = plural or kind + "s"
        self._builtins = tuple(builtins)
        self._optional = tuple(optional_builtins)
        self._unknown = unknown
        self._name_attr = name_attr
        self._entries: dict[str, Entry] = {}
        self._loaded = not (self._builtins or self._optional)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} registered)"

    # ------------------------------------------------------------------ registration
    def register(self, name: str | None = None, **meta) -> Callable[[T], T]:
        """Decorator registering a class or function under ``name`` (default: its ``__name__``);
        ``meta`` is kept on its :class:`Entry`. Returns the object unchanged."""

        def deco(obj: T) -> T:
            self.add(name or obj.__name__, obj, **meta)
            return obj

        return deco

    def add(self, name: str, obj: Any, **meta) -> None:
        """Register ``obj`` under ``name`` (re-registering the same object is a no-op)."""
        if not isinstance(name, str) or not name:
            raise TypeError(f"a {self.kind} name must be a non-empty str, got {name!r}")
        old = self._entries.get(name)
        if old is not None and old.obj is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered by {_origin(old.obj)}; "
                             f"cannot register {_origin(obj)} under the same name")
        if self._name_attr:
            setattr(obj, self._name_attr, name)
        self._entries[name] = Entry(name, obj, dict(meta))

    # ------------------------------------------------------------------ look-up
    def _load_builtins(self) -> None:
        if self._loaded:
            return
        self._loaded = True  # set first: a built-in module may itself look names up while importing
        try:
            for module in self._builtins:
                importlib.import_module(module)
            for module in self._optional:
                try:
                    importlib.import_module(module)
                except ModuleNotFoundError as e:
                    if e.name != module:
                        raise
        except BaseException:
            self._loaded = False  # the next look-up raises the same error instead of a short list
            raise

    def entry(self, name: str) -> Entry:
        """The :class:`Entry` of ``name``; ``KeyError`` with close matches and every name if unknown."""
        self._load_builtins()
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise KeyError(self._unknown_message(name)) from None

    def get(self, name: str) -> Any:
        """The object registered under ``name``."""
        return self.entry(name).obj

    def list(self, pattern: str = "*") -> list[str]:
        """Sorted registered names matching the glob ``pattern``."""
        self._load_builtins()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def __contains__(self, name: object) -> bool:
        self._load_builtins()
        return name in self._entries

    def __iter__(self):
        return iter(self.list())

    def __len__(self) -> int:
        self._load_builtins()
        return len(self._entries)

    # ------------------------------------------------------------------ settings
    def options_class(self, name: str) -> type:
        """The ``Options`` dataclass of ``name`` (given to :meth:`register`, else the object's ``Options``)."""
        entry = self.entry(name)
        options = entry.meta.get("options") or getattr(entry.obj, "Options", None)
        if options is None:
            raise TypeError(f"{self.kind} {name!r} ({_origin(entry.obj)}) declares no Options dataclass")
        return options

    def options(self, name: str, values: Any = None) -> Any:
        """The settings of ``name`` as an instance of its ``Options``, from ``values`` (a mapping or
        ``DictConfig``; a ``name`` key is the component's own and is ignored). An unknown key raises
        :class:`egohod.config.ConfigError` naming the component, the key and the accepted ones."""
        from .config import ConfigError, make_options

        if values is not None and "name" in values:
            if values["name"] != name:
                raise ConfigError(f"settings named {values['name']!r} given to {self.kind} {name!r}")
            values = {k: v for k, v in values.items() if k != "name"}
        return make_options(self.options_class(name), values, what=f"{self.kind} {name!r}")

    def schemas(self) -> dict[str, type]:
        """``{name: config schema}`` of every registered component, generated from its ``Options``
        (:func:`egohod.config.options_schema`: ``name`` plus the option fields)."""
        from .config import options_schema

        return {name: options_schema(name, self.options_class(name)) for name in self.list()}

    def _unknown_message(self, name: Any) -> str:
        names = sorted(self._entries)
        msg = self._unknown.format(kind=self.kind, name=name)
        close = difflib.get_close_matches(str(name), names, n=3, cutoff=0.6)
        if close:
            quoted = [repr(c) for c in close]
            alternatives = ", ".join(quoted[:-1]) + " or " + quoted[-1] if len(quoted) > 1 else quoted[0]
            msg += f" (did you mean {alternatives}?)"
        return msg + f"; registered {self.plural}: {', '.join(names) or '(none)'}"
