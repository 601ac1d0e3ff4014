"""Results of a benchmark run: one JSON file and one markdown table, written atomically.

A run with random weights (no checkpoint: ``weights`` is ``"random"``, possibly with its seed)
is marked ``RANDOM WEIGHTS`` wherever its numbers appear: the ``encoder`` column of every table
(:func:`encoder_label`) and ``"random_weights": true`` in the JSON.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..fileio import atomic_write_text

__all__ = ["atomic_write_text", "encoder_label", "is_random_weights", "json_safe", "markdown_table",
           "write_results"]


def is_random_weights(weights) -> bool:
    """``weights`` as models report it: ``"random"`` (or ``"random:..."``) or a checkpoint's sha256."""
    return str(weights).startswith("random")


def encoder_label(encoder: str, weights) -> str:
    """``"egovideo_b"``, or ``"egovideo_b (RANDOM WEIGHTS)"`` for a random-weight model."""
    return f"{encoder} (RANDOM WEIGHTS)" if is_random_weights(weights) else encoder


def json_safe(obj):
    """NaN / inf -> None (strict JSON), recursively."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    return obj


def markdown_table(rows: list[dict], columns: list[str] | None = None, digits: int = 2) -> str:
    """A GitHub markdown table; floats printed with ``digits`` decimals, missing values as ``-``."""
    columns = columns or list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        return f"{v:.{digits}f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def write_results(out: str | Path, name: str, record: dict) -> tuple[Path, Path]:
    """``<out>/<name>.json`` (the whole record) and ``<name>.md`` (its metrics as a table;
    the encoder column says RANDOM WEIGHTS when ``record["weights"]`` is random)."""
    out = Path(out)
    record = json_safe(record)
    if "weights" in record:
        record["random_weights"] = is_random_weights(record["weights"])
    js = atomic_write_text(out / f"{name}.json", json.dumps(record, indent=2, sort_keys=False) + "\n")
    encoder = record.get("encoder", "")
    row = {"benchmark": record.get("benchmark", name),
           "encoder": encoder_label(encoder, record["weights"]) if "weights" in record else encoder}
    row.update(record.get("metrics", {}))
    md = atomic_write_text(out / f"{name}.md", markdown_table([row]))
    return js, md
