"""Clip metadata for video-text pretraining: the HOD CSV and the Ego4D narration JSON.

Both parse into :class:`ClipRecord` rows: a video id, a time window in seconds and one or more
captions (one is drawn per training step).

HOD CSV (what ``egohod.hod`` writes and the pretraining loader reads)::

    video_id,start_second,end_second,text[,dataset,uid]
    abc123,12.5,13.6,"['#C C lifts the cup with the right hand', '#C C picks up a cup']"
    abc123,14.0,15.2,#C C puts the cup down

``text`` is plain text or a Python list literal of strings.
"""
from __future__ import annotations

import ast
import csv
import io
import json
import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..fileio import atomic_write_text

__all__ = [
    "ClipRecord",
    "MetadataError",
    "parse_text_field",
    "read_ego4d_narrations",
    "read_hod_csv",
    "split_holdout",
    "write_hod_csv",
]

HOD_REQUIRED = ("video_id", "start_second", "end_second", "text")
# `narration`: the clip's original short narration, kept by the HOD pipeline for provenance;
# the loader reads it but never trains on it (captions come from `text`).
HOD_OPTIONAL = ("dataset", "uid", "narration")


class MetadataError(ValueError):
    """A metadata file is malformed; the message names the file, the line and the field."""


@dataclass(frozen=True)
class ClipRecord:
    video_id: str
    start: float
    end: float
    texts: tuple[str, ...]
    dataset: str = ""
    uid: str = ""
    source: str = ""  # "file:line" the record came from, for error reports

    @property
    def duration(self) -> float:
        return self.end - self.start


def parse_text_field(value: str, where: str = "<text>") -> tuple[str, ...]:
    """A CSV ``text`` cell -> captions. List literals (``"['a', 'b']"``) give several captions.

    Captions are stripped; empty ones are kept out. A cell with no caption gives ``()``, which the
    dataset reports as a bad sample (it is not an error of the file as a whole).
    """
    s = (value or "").strip()
    if s.startswith("[") and s.endswith("]"):
        try:
            items = ast.literal_eval(s)
        except (ValueError, SyntaxError) as e:
            raise MetadataError(f"{where}: text looks like a list literal but does not parse ({e}): {s[:80]!r}") from None
        if not isinstance(items, (list, tuple)) or not all(isinstance(t, str) for t in items):
            raise MetadataError(f"{where}: text list must hold strings, got {s[:80]!r}")
        return tuple(t.strip() for t in items if t.strip())
    return (s,) if s else ()


def _float(value: str, field: str, where: str) -> float:
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise MetadataError(f"{where}: {field} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(x):
        raise MetadataError(f"{where}: {field} must be finite, got {value!r}")
    return x


def read_hod_csv(path: str | os.PathLike) -> list[ClipRecord]:
    """Read a HOD CSV. Missing columns, unknown columns, bad numbers or ``end <= start`` raise
    :class:`MetadataError` naming ``file:line``."""
    path = Path(path)
    if not path.is_file():
        raise MetadataError(f"{path}: metadata CSV not found")
    records = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        missing = [c for c in HOD_REQUIRED if c not in cols]
        if missing:
            raise MetadataError(f"{path}: header {cols} lacks required column(s) {missing}; "
                                f"expected {list(HOD_REQUIRED)} plus optional {list(HOD_OPTIONAL)}")
        unknown = [c for c in cols if c not in HOD_REQUIRED + HOD_OPTIONAL]
        if unknown:
            raise MetadataError(f"{path}: unknown column(s) {unknown}; allowed: {list(HOD_REQUIRED + HOD_OPTIONAL)}")
        for row in reader:
            where = f"{path}:{reader.line_num}"
            if None in row:
                raise MetadataError(f"{where}: row has more fields than the header ({len(cols)})")
            vid = (row["video_id"] or "").strip()
            if not vid:
                raise MetadataError(f"{where}: empty video_id")
            start = _float(row["start_second"], "start_second", where)
            end = _float(row["end_second"], "end_second", where)
            if start < 0 or end <= start:
                raise MetadataError(f"{where}: need 0 <= start_second < end_second, got {start} and {end}")
            records.append(ClipRecord(vid, start, end, parse_text_field(row["text"], where),
                                      (row.get("dataset") or "").strip(), (row.get("uid") or "").strip(), where))
    if not records:
        raise MetadataError(f"{path}: no clips (only a header)")
    return records


def write_hod_csv(path: str | os.PathLike, records: Iterable[ClipRecord]) -> Path:
    """Write records as a HOD CSV (several captions as a list literal); atomic."""
    path = Path(path)
    buf = io.StringIO(newline="")
    w = csv.writer(buf)
    w.writerow(HOD_REQUIRED + ("dataset", "uid"))
    for r in records:
        text = r.texts[0] if len(r.texts) == 1 else repr(list(r.texts))
        w.writerow([r.video_id, f"{r.start:.3f}", f"{r.end:.3f}", text, r.dataset, r.uid])
    return atomic_write_text(path, buf.getvalue())


_UNSURE = re.compile(r"#\s*unsure\b", re.IGNORECASE)


def read_ego4d_narrations(
    path: str | os.PathLike,
    window: str | float = "egovlp",
    passes: Sequence[str] = ("narration_pass_1", "narration_pass_2"),
    video_ids: Iterable[str] | None = None,
    drop_unsure: bool = True,
) -> list[ClipRecord]:
    """Clips from Ego4D's ``narration.json`` (``{video_uid: {narration_pass_N: {narrations:
    [{timestamp_sec, narration_text, annotation_uid}, ...]}}}``).

    ``window``: a number of seconds centred on each narration timestamp, or ``"egovlp"``: the
    EgoClip rule ``[t - b_i / (2a), t + b_i / (2a)]`` with ``b_i`` the mean gap between
    consecutive narrations of video ``i`` and ``a`` the mean of all ``b_i``. Windows are clipped
    at 0. Narrations tagged ``#unsure`` are dropped when ``drop_unsure``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MetadataError(f"{path}: Ego4D narration JSON not found") from None
    except json.JSONDecodeError as e:
        raise MetadataError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise MetadataError(f"{path}: expected an object keyed by video_uid, got {type(data).__name__}")
    keep = None if video_ids is None else set(video_ids)
    stamps: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for vid, entry in data.items():
        if keep is not None and vid not in keep:
            continue
        if not isinstance(entry, dict):
            raise MetadataError(f"{path}: video {vid!r}: expected an object, got {type(entry).__name__}")
        for p in passes:
            block = entry.get(p)
            if block is None:
                continue
            for k, n in enumerate(block.get("narrations", [])):
                where = f"{path}: {vid}/{p}/narrations[{k}]"
                try:
                    t = float(n["timestamp_sec"])
                    text = str(n["narration_text"]).strip()
                except (KeyError, TypeError, ValueError) as e:
                    raise MetadataError(f"{where}: needs timestamp_sec and narration_text ({e!r})") from None
                if drop_unsure and _UNSURE.search(text):
                    continue
                stamps[vid].append((t, text, str(n.get("annotation_uid", ""))))
    if not stamps:
        raise MetadataError(f"{path}: no narrations found in passes {list(passes)}")
    half: dict[str, float] = {}
    if window == "egovlp":
        gaps = {}
        for vid, items in stamps.items():
            ts = sorted(set(t for t, _, _ in items))
            if len(ts) > 1:
                gaps[vid] = (ts[-1] - ts[0]) / (len(ts) - 1)
        alpha = sum(gaps.values()) / len(gaps) if gaps else 1.0
        for vid in stamps:
            half[vid] = gaps.get(vid, alpha) / (2 * alpha)
    else:
        try:
            w = float(window)
        except (TypeError, ValueError):
            raise MetadataError(f"window must be 'egovlp' or seconds, got {window!r}") from None
        if w <= 0:
            raise MetadataError(f"window must be positive seconds, got {w}")
        half = {vid: w / 2 for vid in stamps}
    out = []
    for vid in sorted(stamps):
        for t, text, uid in sorted(stamps[vid]):
            start = max(0.0, t - half[vid])
            end = max(start + 1e-3, t + half[vid])
            out.append(ClipRecord(vid, start, end, (text,) if text else (), "ego4d", uid, f"{path}: {vid}@{t:.3f}s"))
    return out


def split_holdout(records: Sequence[ClipRecord], fraction: float, seed: int = 0) -> tuple[list[ClipRecord], list[ClipRecord]]:
    """Split into (train, held-out) by whole videos, so held-out clips come from unseen videos.

    A video is held out when a seeded hash of its id falls below ``fraction``; deterministic
    across processes and Python runs.
    """
    if not 0 <= fraction < 1:
        raise ValueError(f"holdout fraction must be in [0, 1), got {fraction}")
    import hashlib

    def u(vid: str) -> float:
        h = hashlib.sha1(f"{seed}:{vid}".encode()).digest()
        return int.from_bytes(h[:8], "big") / 2 ** 64

    train, held = [], []
    for r in records:
        (held if u(r.video_id) < fraction else train).append(r)
    return train, held
