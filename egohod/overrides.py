"""``key=value`` command-line settings merged onto a dataclass schema, one way for every command
that takes them (``egohod eval``, ``egohod extract``, ``python -m egohod.data.synthetic``).

:func:`parse_overrides` merges, in order, the schema's defaults, the given layers (YAML files or
mappings) and the ``key=value`` arguments (OmegaConf dotlist syntax: ``a.b=1``, ``xs=[1,2]``), and
returns the dataclass instance. Anything that is not ``key=value``, an unknown key, a wrongly typed
value or a missing required one raises :class:`OverrideError`, a ``ValueError`` that keeps the
schema's keys (``known``) so the command can say which keys exist; turning it into an exit code is
the command's job.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence


class OverrideError(ValueError):
    """A ``key=value`` argument (or layer) that does not fit the schema.

    ``argument``: the offending argument when it is not ``key=value`` at all (else None);
    ``known``: the schema's top-level keys."""

    def __init__(self, message: str, known: list[str], argument: str | None = None):
        super().__init__(message)
        self.known, self.argument = known, argument


def parse_overrides(schema: type, argv: Sequence[str], layers: Sequence[Path | Mapping[str, Any]] = ()) -> Any:
    """``schema`` defaults < ``layers`` (in order) < ``argv`` -> an instance of the dataclass ``schema``."""
    import yaml
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    base = OmegaConf.structured(schema)
    known = [str(k) for k in base.keys()]
    for a in argv:
        if "=" not in a:
            raise OverrideError(f"arguments are key=value; got {a!r}", known, argument=a)
    try:
        loaded = [OmegaConf.load(x) if isinstance(x, Path) else OmegaConf.create(dict(x)) for x in layers]
        return OmegaConf.to_object(OmegaConf.merge(base, *loaded, OmegaConf.from_dotlist(list(argv))))
    except (OmegaConfBaseException, ValueError, TypeError, yaml.YAMLError) as e:  # they name the key
        raise OverrideError(str(e), known) from None
