"""Policy registry: one class per head, registered by name, built through ``create_policy``.

Every head is a :class:`policies.base.Policy` and declares its options as a dataclass
(``Policy.Options``); ``create_policy`` validates the options against it so that a misspelt
key in ``configs/policy/*.yaml`` is an error naming the key and the accepted ones.
"""
from __future__ import annotations

import dataclasses
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


def policy_options(name: str, options: Mapping[str, Any] | None = None):
    """Validate ``options`` against the head's ``Options`` dataclass and return an instance."""
    cls = get_policy_class(name)
    fields = {f.name for f in dataclasses.fields(cls.Options)}
    options = dict(options or {})
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ValueError(
            f"policy {name!r}: unknown option(s) {unknown}; accepted options: {sorted(fields)}"
        )
    for k, v in options.items():  # OmegaConf ListConfig -> tuple for hashable, plain values
        if isinstance(v, (list, tuple)) or type(v).__name__ == "ListConfig":
            options[k] = tuple(v)
    return cls.Options(**options)


def create_policy(name: str, feature_dim: int, proprio_dim: int, action_dim: int,
                  options: Mapping[str, Any] | None = None):
    """Build the registered head ``name`` for the given input/output sizes."""
    cls = get_policy_class(name)
    return cls(feature_dim, proprio_dim, action_dim, policy_options(name, options))
