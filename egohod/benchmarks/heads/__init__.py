"""Heads trained on frozen per-video features: action segmentation (MS-TCN, ASFormer), Ego4D NLQ
and MQ. One registry holds every head::

    @register_head("mstcn", task="segmentation")
    class MSTCN(nn.Module):
        @dataclass
        class Options: ...            # the head's settings, checked by head_options()

    HEADS.list()                      # every registered head
    heads_for_task("segmentation")    # ['asformer', 'mstcn']

A head class declares its settings as an ``Options`` dataclass (as policies do); the config
loader checks a head's YAML / command-line settings against it, so a misspelt key is an error
that names the accepted ones. What a run owns (folder lock, saved config, seeds, resumable
checkpoints, results JSON + markdown) is in :mod:`egohod.benchmarks.heads.common`.
"""
from __future__ import annotations

from typing import Any, Mapping

from ...registry import Registry

__all__ = ["HEADS", "register_head", "get_head_class", "heads_for_task", "head_options"]

# Modules whose import registers the built-in heads (imported on the first look-up).
HEADS = Registry(
    "head",
    builtins=("egohod.benchmarks.heads.segmentation_head", "egohod.benchmarks.heads.mstcn",
              "egohod.benchmarks.heads.asformer", "egohod.benchmarks.heads.vslnet", "egohod.benchmarks.heads.mq_head"),
    name_attr="head_name",
)


def register_head(name: str, *, task: str):
    """Class decorator: register a head class under ``name`` for ``task`` (``segmentation``,
    ``nlq``, ``mq``); the class sets ``head_name`` and declares an ``Options`` dataclass."""
    return HEADS.register(name, task=task)


def get_head_class(name: str, task: str | None = None) -> type:
    """The class registered as ``name``; with ``task``, an error if it is another task's head."""
    entry = HEADS.entry(name)
    if task is not None and entry.meta.get("task") != task:
        raise KeyError(f"head {name!r} is a {entry.meta.get('task')} head, not a {task} head; "
                       f"{task} heads: {', '.join(heads_for_task(task)) or '(none)'}")
    return entry.obj


def heads_for_task(task: str) -> list[str]:
    """Sorted names of the heads registered for ``task``."""
    return [n for n in HEADS.list() if HEADS.entry(n).meta.get("task") == task]


def head_options(name: str, options: Mapping[str, Any] | None = None, task: str | None = None) -> Any:
    """``options`` checked against the head's ``Options`` dataclass; returns an instance.
    Unknown keys are a ``ConfigError`` (a ``ValueError``) naming the accepted ones; a ``name`` key is
    how a config names the head (:meth:`egohod.registry.Registry.options`)."""
    get_head_class(name, task)
    return HEADS.options(name, options)
