"""The one place in egohod that unpickles a file.

A pickle can run any code while it loads, so every file this package reads that may hold one
(torch checkpoints of every kind, the EK-100 relevancy pickle, precomputed detections, R3M demo
pickles, style-filter models, BC policies, pretraining checkpoints) goes through one of two
readers:

* :func:`load_torch` -- ``torch.load(weights_only=True)`` inside
  ``torch.serialization.safe_globals`` with :func:`torch_safe_globals` (numpy arrays, dtypes and
  scalars; OmegaConf containers and nodes, which the official EgoVideo checkpoints pickle;
  ``typing.Any``; ``collections`` containers) plus what the caller adds in ``extra_globals``.
* :func:`load_pickle` -- a :class:`pickle.Unpickler` whose ``find_class`` returns only the
  objects of an explicit ``(module, name)`` table (numpy arrays/dtypes/scalars under both the
  numpy 1.x ``numpy.core`` and the numpy 2.x ``numpy._core`` names, ``collections.OrderedDict``
  and ``defaultdict``, a few builtin containers, ``_codecs.encode`` that protocol-2 pickles use
  for ``bytes``). Nothing else is ever imported or called.

``trust_pickle=True`` lifts the restriction (plain ``pickle``/``torch.load(weights_only=False)``)
for files you trust; every refusal says so.

Two errors, both :class:`ValueError` subclasses:

* :class:`UnsafeFileError` -- "refused: <file> wants to run <module.name> ...; if you trust the
  file, pass trust_pickle=true";
* :class:`CorruptFileError` -- "<file> is truncated or corrupt (...)": empty, cut-off zip
  archive, bytes that are not a pickle. It never repeats torch's advice to load with
  ``weights_only=False``.
"""
from __future__ import annotations

import functools
import io
import pickle
import pickletools
import re
import struct
import zipfile
from pathlib import Path
from typing import Any, Iterable

__all__ = ["CorruptFileError", "UnsafeFileError", "load_pickle", "load_torch", "pickle_allowlist",
           "torch_safe_globals"]

TRUST_HINT = "if you trust the file, pass trust_pickle=true"


class UnsafeFileError(ValueError):
    """The file asks the unpickler for an object outside the allowlist (it would run code)."""

    def __init__(self, path: str | Path, what: str, wanted: str):
        self.path, self.what, self.wanted = str(path), what, wanted
        super().__init__(f"refused: {what} {path} wants to run {wanted}, which is outside egohod's safe-loading "
                         f"allowlist; {TRUST_HINT}")


class CorruptFileError(ValueError):
    """The file is empty, cut off, or not the kind of file it should be."""

    def __init__(self, path: str | Path, what: str, reason: str):
        self.path, self.what, self.reason = str(path), what, reason
        super().__init__(f"{what} {path} is truncated or corrupt ({reason}); write or download it again")


# --------------------------------------------------------------------------------- allowlists

def _numpy_objects() -> dict[tuple[str, str], Any]:
    import numpy as np

    try:
        from numpy._core import multiarray as ma, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray as ma, numeric
    out: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for core in ("numpy.core", "numpy._core"):  # files written under numpy 1.x / 2.x
        out[(f"{core}.multiarray", "_reconstruct")] = ma._reconstruct
        out[(f"{core}.multiarray", "scalar")] = ma.scalar
        out[(f"{core}.numeric", "_frombuffer")] = numeric._frombuffer
    for n in dir(np.dtypes):
        if n.endswith("DType"):
            out[("numpy.dtypes", n)] = getattr(np.dtypes, n)
    return out


@functools.lru_cache(maxsize=1)
def pickle_allowlist() -> dict[tuple[str, str], Any]:
    """``{(module, name): object}``: everything :func:`load_pickle` will hand to a pickle."""
    import builtins
    import codecs
    import collections

    out = _numpy_objects()
    out[("collections", "OrderedDict")] = collections.OrderedDict
    out[("collections", "defaultdict")] = collections.defaultdict
    out[("_codecs", "encode")] = codecs.encode  # protocol <= 2 pickles store bytes as encode(str, 'latin1')
    for n in ("set", "frozenset", "slice", "complex", "bytearray", "range", "list", "dict", "tuple", "int",
              "float", "str", "bytes", "bool"):
        for mod in ("builtins", "__builtin__"):  # protocol <= 2 pickles name the python 2 module
            out[(mod, n)] = getattr(builtins, n)
    return out


def torch_safe_globals() -> list:
    """The extra objects :func:`load_torch` allows on top of torch's own ``weights_only`` set."""
    import collections
    import typing

    allowed: list = [typing.Any, dict, list, tuple, set, int, float, bool, str, bytes, collections.defaultdict,
                     collections.OrderedDict]
    try:
        import numpy as np

        try:
            from numpy._core import multiarray as ma  # numpy >= 2
        except ImportError:  # pragma: no cover - numpy 1.x
            from numpy.core import multiarray as ma
        allowed += [np.dtype, np.ndarray, ma.scalar, ma._reconstruct]
        # files written under numpy 1.x name numpy.core.*, under 2.x numpy._core.*
        allowed += [(ma.scalar, "numpy.core.multiarray.scalar"),
                    (ma._reconstruct, "numpy.core.multiarray._reconstruct")]
        allowed += [getattr(np.dtypes, n) for n in dir(np.dtypes) if n.endswith("DType")]
    except ImportError:  # pragma: no cover
        pass
    try:
        import omegaconf
        from omegaconf import base, nodes

        allowed += [omegaconf.DictConfig, omegaconf.ListConfig, base.ContainerMetadata, base.Metadata,
                    nodes.AnyNode, nodes.StringNode, nodes.IntegerNode, nodes.FloatNode,
                    nodes.BooleanNode, nodes.BytesNode, nodes.PathNode, nodes.EnumNode]
    except ImportError:  # pragma: no cover
        pass
    return allowed


def _qualname(obj: Any) -> str:
    if isinstance(obj, tuple):  # (object, "module.name") alias as torch.serialization accepts
        return obj[1]
    return f"{obj.__module__}.{obj.__qualname__}"


# --------------------------------------------------------------------------------- readers

def _check_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    if path.stat().st_size == 0:
        raise CorruptFileError(path, what, "empty file, 0 bytes")
    return path


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path, what: str, allowed: dict[tuple[str, str], Any]):
        super().__init__(file)
        self._path, self._what, self._allowed = path, what, allowed

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        try:
            return self._allowed[(module, name)]
        except KeyError:
            raise UnsafeFileError(self._path, self._what, f"{module}.{name}") from None


# what a malformed byte stream raises while being unpickled (never UnsafeFileError: caught first)
_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
                  struct.error, UnicodeDecodeError, OverflowError, MemoryError, RecursionError)


def load_pickle(path: str | Path, *, trust_pickle: bool = False, what: str = "pickle file",
                extra_globals: Iterable[Any] = ()) -> Any:
    """Unpickle ``path`` allowing only :func:`pickle_allowlist` (plus ``extra_globals``, objects
    looked up by their ``__module__`` and ``__qualname__``).

    ``trust_pickle=True``: plain :func:`pickle.load` (runs whatever the file says; trusted files only).
    Raises :class:`UnsafeFileError`, :class:`CorruptFileError` or :class:`FileNotFoundError`.
    """
    path = _check_file(path, what)
    allowed = dict(pickle_allowlist())
    for obj in extra_globals:
        allowed[(obj.__module__, obj.__qualname__)] = obj
    with open(path, "rb") as f:
        if f.read(2) == b"PK":
            raise CorruptFileError(path, what, "a zip archive (a torch.save file?), not a pickle")
        f.seek(0)
        try:
            if trust_pickle:
                return pickle.load(f)  # the caller said the file is trusted
            return _RestrictedUnpickler(f, path, what, allowed).load()
        except UnsafeFileError:
            raise
        except _PICKLE_ERRORS as e:
            raise CorruptFileError(path, what, f"not a readable pickle: {type(e).__name__}: {_first_line(e)}") from None


def load_torch(path: str | Path, *, trust_pickle: bool = False, what: str = "checkpoint",
               extra_globals: Iterable[Any] = (), map_location: Any = "cpu") -> Any:
    """``torch.load`` a file with ``weights_only=True`` and :func:`torch_safe_globals` (plus
    ``extra_globals``: objects or ``(object, "module.name")`` pairs).

    ``trust_pickle=True``: ``weights_only=False`` (runs whatever the file says; trusted files only).
    Raises :class:`UnsafeFileError`, :class:`CorruptFileError` or :class:`FileNotFoundError`.
    """
    import torch

    path = _check_file(path, what)
    with open(path, "rb") as f:
        magic = f.read(4)
    if magic[:2] == b"PK" and not zipfile.is_zipfile(path):
        # torch.save writes zip archives; a cut-off zip has no central directory
        raise CorruptFileError(path, what, f"incomplete zip archive, {path.stat().st_size} bytes")
    allowed = torch_safe_globals() + list(extra_globals)
    try:
        if trust_pickle:
            return torch.load(path, map_location=map_location, weights_only=False)  # trusted by the caller
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location=map_location, weights_only=True)
    except _PICKLE_ERRORS + (RuntimeError, zipfile.BadZipFile, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise _classify_torch_error(path, what, e, allowed, trust_pickle) from None


_UNSUPPORTED_GLOBAL = re.compile(r"unsupported global:?\s+(?:GLOBAL\s+)?([A-Za-z_][\w.]*)", re.IGNORECASE)
_WEIGHTS_UNPICKLER = re.compile(r"WeightsUnpickler error:\s*(.+)")
_TORCH_ADVICE = re.compile(r"weights_only|Re-running|torch\.load|pytorch\.org|safe_globals|file an issue", re.I)


def _first_line(e: BaseException) -> str:
    for line in str(e).splitlines():
        if line.strip() and not _TORCH_ADVICE.search(line):
            return line.strip()[:300]
    return type(e).__name__


def _classify_torch_error(path: Path, what: str, e: BaseException, allowed: list, trusted: bool) -> ValueError:
    msg = str(e)
    if not trusted:
        m = _UNSUPPORTED_GLOBAL.search(msg)
        if m:
            return UnsafeFileError(path, what, m.group(1))
        names = _pickled_globals(path)
        if names is not None:
            bad = _not_allowed(names, allowed)
            if bad:
                return UnsafeFileError(path, what, bad[0])
            w = _WEIGHTS_UNPICKLER.search(msg)
            if w and not w.group(1).startswith("Unsupported operand"):
                # an allowed class used in a way weights_only refuses (e.g. building an arbitrary object)
                return UnsafeFileError(path, what, f"an object construction torch refuses ({w.group(1).strip()[:200]})")
            if w:
                return CorruptFileError(path, what, "a plain pickle, not a torch.save file")
    w = _WEIGHTS_UNPICKLER.search(msg)
    reason = w.group(1).strip() if w else _first_line(e)
    if "Unsupported operand" in reason:
        reason = f"not a torch.save file: {reason}"
    return CorruptFileError(path, what, reason[:300])


def _not_allowed(names: list[str], allowed: list) -> list[str]:
    ok = {_qualname(a) for a in allowed} | {f"{m}.{n}" for m, n in pickle_allowlist()}
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        ok |= set(_get_allowed_globals())
    except ImportError:  # pragma: no cover - private torch helper renamed
        pass
    return [n for n in names if n not in ok and not n.startswith("torch.")]


_SCAN_BYTES = 64 << 20  # legacy torch files: the pickles come first, the raw storages after them
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "STRING", "BINSTRING",
               "SHORT_BINSTRING"}


def _pickled_globals(path: Path) -> list[str] | None:
    """The ``module.name`` globals a torch file's pickle(s) ask for, read without unpickling
    (``pickletools``); None when the bytes are not a complete pickle. Used only to word errors:
    what may load is decided by the unpickler's allowlist."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                members = [n for n in z.namelist() if n.endswith("data.pkl")]
                if not members:
                    return None
                data = z.read(members[0])
        else:
            with open(path, "rb") as f:
                data = f.read(_SCAN_BYTES)
    except Exception:  # noqa: BLE001 - a damaged archive: nothing to scan
        return None
    buf = io.BytesIO(data)
    names: list[str] = []
    parsed = 0
    while buf.tell() < len(data) and parsed < 8:  # legacy files hold several pickles in a row
        try:
            names += _globals_of_one(buf)
        except Exception:  # noqa: BLE001 - anything pickletools cannot parse ends the scan
            break
        parsed += 1
    return names if parsed else None


def _globals_of_one(buf: io.BytesIO) -> list[str]:
    names, strings, memo, last = [], [], {}, None
    for op, arg, _ in pickletools.genops(buf):
        if op.name in _STRING_OPS:
            last = arg
            strings.append(arg)
        elif op.name == "MEMOIZE":
            memo[len(memo)] = last
        elif op.name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[int(arg)] = last
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            last = memo.get(int(arg))
            strings.append(last)
        elif op.name == "GLOBAL":
            names.append(str(arg).replace(" ", "."))
            last = None
        elif op.name == "STACK_GLOBAL":
            if len(strings) >= 2 and isinstance(strings[-1], str) and isinstance(strings[-2], str):
                names.append(f"{strings[-2]}.{strings[-1]}")
            last = None
        elif op.name != "FRAME":
            last = None
    return names
