"""Policy registry: one class per head, registered by name, built through ``create_policy``.

Every head is a :class:`policies.base.Policy` and declares its options as a frozen dataclass
(``Policy.Options``), the one place their defaults live. :func:`policy_schemas` turns each into
the Hydra schema that ``configs/policy/<name>.yaml`` extends (``defaults: [<name>_schema,
_self_]``; ``robot.config.register_configs`` stores them), so the YAML holds only what differs
from the defaults and a misspelt ``policy.KEY`` is an error at composition. ``create_policy``
validates the options again (``+policy.KEY=...``, options read from a checkpoint): an unknown key
is an error naming it and the accepted ones.
"""
from __future__ import annotations

from typing import Any, Mapping

from egohod.registry import Registry

POLICIES = Registry("policy", builtins=("policies.mlp", "policies.robomimic_heads"), plural="policies",
                    name_attr="policy_name")


def register_policy(name: str):
    """Class decorator: register a :class:`~policies.base.Policy` subclass under ``name``
    (also its ``policy_name``)."""
    return POLICIES.register(name)


def list_policies(pattern: str = "*") -> list[str]:
    return POLICIES.list(pattern)


def get_policy_class(name: str) -> type:
    return POLICIES.get(name)


def policy_schemas() -> dict[str, type]:
    """name -> the config schema of every registered head: ``name`` plus the fields of its
    ``Options`` (:func:`egohod.config.options_schema`; tuple options become lists)."""
    return POLICIES.schemas()


def policy_options(name: str, options: Mapping[str, Any] | None = None):
    """Validate ``options`` (a mapping or a ``DictConfig``, without ``name``) against the head's
    ``Options`` dataclass and return an instance; list values of tuple options become tuples.
    Raises :class:`egohod.config.ConfigError` (a ``ValueError``) for an unknown option."""
    return POLICIES.options(name, options)


def create_policy(name: str, feature_dim: int, proprio_dim: int, action_dim: int,
                  options: Mapping[str, Any] | None = None):
    """Build the registered head ``name`` for the given input/output sizes."""
    cls = get_policy_class(name)
    return cls(feature_dim, proprio_dim, action_dim, policy_options(name, options))
