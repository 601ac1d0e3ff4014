"""Behaviour-cloning policy heads on frozen features, built by name::

    from policies import create_policy
    policy = create_policy("mlp", feature_dim=768, proprio_dim=9, action_dim=9)

Heads: ``mlp`` (the classic R3M protocol head), ``gmm`` and ``rnn`` (robomimic networks).
"""
from .base import Policy
from .registry import create_policy, get_policy_class, list_policies, policy_options, policy_schemas, register_policy

__all__ = ["Policy", "create_policy", "get_policy_class", "list_policies", "policy_options", "policy_schemas",
           "register_policy"]
