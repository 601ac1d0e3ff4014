"""Readers for the official benchmark annotation files.

Every reader checks the file exists and has the columns / keys it needs, and raises
:class:`BenchmarkDataError` naming the file and what is missing or malformed.

EPIC-KITCHENS-100 (``epic-kitchens-100-annotations``):
    ``EPIC_100_train.csv``, ``EPIC_100_validation.csv``, ``retrieval_annotations/
    EPIC_100_retrieval_test.csv``: columns ``narration_id, participant_id, video_id,
    narration_timestamp, start_timestamp, stop_timestamp, start_frame, stop_frame, narration,
    verb, verb_class, noun, noun_class, all_nouns, all_noun_classes`` (timestamps
    ``HH:MM:SS.ff``). ``EPIC_100_retrieval_test_sentence.csv``: ``narration_id, narration``.
    ``relevancy/caption_relevancy_EPIC_100_retrieval_test.pkl``: a pickled ``[clips, captions]``
    array (numpy, or a pandas frame) of graded relevancy.
EGTEA Gaze+:
    ``action_idx.txt``: one ``Class_Name_Words <id>`` per line, ids 1..106;
    ``test_split1.txt``: ``<clip_id> <action_id> <verb_id> <noun_id>`` per line, where
    ``clip_id`` looks like ``OP01-R01-PastaSalad-1002316-1004005-F024051-F024101`` and its video
    is the first three ``-`` fields.
EgoMCQ (EgoVLP's ``egomcq.json``):
    ``{"<i>": {"query": {"clip_text", ...}, "choices": {"0": {"video_uid", "clip_start",
    "clip_end", "clip_text", ...}, ... "4": {...}}, "answer": int, "types": 1 | 2}}``.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..safe_load import load_pickle

__all__ = [
    "BenchmarkDataError",
    "EK100Clip",
    "EgteaSample",
    "McqChoice",
    "McqQuestion",
    "read_csv_columns",
    "timestamp_to_seconds",
    "read_ek100_clips",
    "read_ek100_sentences",
    "read_relevancy",
    "ek100_action_classes",
    "read_egtea_classes",
    "read_egtea_split",
    "read_egomcq",
]

EK100_CLIP_COLUMNS = ("narration_id", "participant_id", "video_id", "start_timestamp", "stop_timestamp",
                      "narration", "verb_class", "noun_class")
EK100_SENTENCE_COLUMNS = ("narration_id", "narration")


class BenchmarkDataError(ValueError):
    """A benchmark file is missing or malformed; the message names the file and the problem."""


def _need_file(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise BenchmarkDataError(f"{what} not found: {path}")
    return path


def read_json(path: str | Path, what: str, error: type[Exception] = BenchmarkDataError):
    """The parsed JSON of a benchmark file; a missing file or malformed JSON raises ``error`` naming
    ``what`` (e.g. "NLQ ground truth") and the path."""
    path = Path(path)
    if not path.is_file():
        raise error(f"{what} file not found: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise error(f"{path}: {what} is not valid JSON ({e})") from None


def read_csv_columns(path: str | Path, required: Sequence[str], what: str = "CSV file") -> list[dict]:
    """Rows of a headed CSV as dicts; every ``required`` column must be in the header."""
    path = _need_file(path, what)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in required if c not in header]
        if missing:
            raise BenchmarkDataError(f"{path}: missing column(s) {missing}; header has {header}")
        rows = list(reader)
    if not rows:
        raise BenchmarkDataError(f"{path}: no data rows")
    return rows


def timestamp_to_seconds(text: str) -> float:
    """``HH:MM:SS.ff`` -> seconds."""
    parts = str(text).strip().split(":")
    if len(parts) != 3:
        raise ValueError(f"timestamp {text!r} is not HH:MM:SS.ff")
    h, m, s = parts
    return int(h) * 3600 + int(m) * 60 + float(s)


@dataclass(frozen=True)
class EK100Clip:
    narration_id: str
    participant_id: str
    video_id: str
    start_sec: float
    end_sec: float
    narration: str
    verb_class: int
    noun_class: int

    @property
    def action_key(self) -> str:
        """``"verb:noun"``, the EK-100 zero-shot class key."""
        return f"{self.verb_class}:{self.noun_class}"


def read_ek100_clips(path: str | Path) -> list[EK100Clip]:
    """Clips of an EK-100 annotation CSV (train / validation / retrieval test).

    A row whose ``stop_timestamp`` is before its ``start_timestamp`` is an error naming the line.
    """
    rows = read_csv_columns(path, EK100_CLIP_COLUMNS, "EK-100 annotation CSV")
    out = []
    for line, r in enumerate(rows, start=2):
        try:
            out.append(EK100Clip(r["narration_id"], r["participant_id"], r["video_id"],
                                 timestamp_to_seconds(r["start_timestamp"]), timestamp_to_seconds(r["stop_timestamp"]),
                                 r["narration"], int(r["verb_class"]), int(r["noun_class"])))
        except (TypeError, ValueError) as e:
            raise BenchmarkDataError(f"{path}, line {line}: {e}") from None
        clip = out[-1]
        if clip.end_sec < clip.start_sec:
            raise BenchmarkDataError(
                f"{path}, line {line} (narration_id {clip.narration_id}): stop_timestamp {r['stop_timestamp']} is "
                f"before start_timestamp {r['start_timestamp']}; fix or drop this row")
    return out


def read_ek100_sentences(path: str | Path) -> list[tuple[str, str]]:
    """``(narration_id, narration)`` per caption of ``EPIC_100_retrieval_test_sentence.csv``."""
    rows = read_csv_columns(path, EK100_SENTENCE_COLUMNS, "EK-100 retrieval sentence CSV")
    return [(r["narration_id"], r["narration"]) for r in rows]


def read_relevancy(path: str | Path, shape: tuple[int, int] | None = None, trust_pickle: bool = False) -> np.ndarray:
    """The relevancy matrix (pickle as released, or ``.npy``) as float64, optionally checked against ``shape``.

    The pickle is read by :func:`egohod.safe_load.load_pickle` (numpy arrays only; the released
    file is a plain array): anything else raises :class:`~egohod.safe_load.UnsafeFileError`
    unless ``trust_pickle=True``; an unreadable file raises
    :class:`~egohod.safe_load.CorruptFileError`.
    """
    path = _need_file(path, "EK-100 relevancy matrix")
    if path.suffix == ".npy":
        try:
            obj = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise BenchmarkDataError(f"{path}: cannot read the relevancy matrix ({type(e).__name__}: {e})") from None
    else:
        obj = load_pickle(path, trust_pickle=trust_pickle, what="EK-100 relevancy pickle")
    if hasattr(obj, "to_numpy"):  # a pandas DataFrame
        obj = obj.to_numpy()
    try:
        rel = np.asarray(obj, dtype=np.float64)
    except (TypeError, ValueError):
        raise BenchmarkDataError(f"{path}: relevancy must be a numeric 2-D array, got {type(obj).__name__}") from None
    if rel.ndim != 2:
        raise BenchmarkDataError(f"{path}: relevancy must be 2-D [clips, captions], got shape {rel.shape}")
    if shape is not None and rel.shape != tuple(shape):
        raise BenchmarkDataError(f"{path}: relevancy has shape {rel.shape}, expected {tuple(shape)} "
                                 "(clips in the test CSV x captions in the sentence CSV)")
    bad = ~np.isfinite(rel)
    if bad.any():
        i, j = (int(x) for x in np.argwhere(bad)[0])
        raise BenchmarkDataError(f"{path}: relevancy has {int(bad.sum())} NaN / inf entries (the first at clip {i}, "
                                 f"caption {j}); every entry must be a number in 0..1")
    return rel


def ek100_action_classes(*csv_paths: str | Path) -> tuple[list[str], list[list[str]]]:
    """EK-100 zero-shot action classes from train + validation CSVs.

    Returns the ``"verb:noun"`` keys of every pair seen, sorted as strings (LaViLa's and EgoHOD's
    class order), and per class the sorted unique narrations annotated with it.
    """
    narrations: dict[str, set[str]] = {}
    for p in csv_paths:
        for clip in read_ek100_clips(p):
            narrations.setdefault(clip.action_key, set()).add(clip.narration)
    keys = sorted(narrations)
    return keys, [sorted(narrations[k]) for k in keys]


# ---- EGTEA ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EgteaSample:
    clip_id: str
    video_id: str
    label: int  # 0-based index into the class list


def read_egtea_classes(path: str | Path) -> list[str]:
    """Class texts of ``action_idx.txt`` in id order (``Open_fridge 3`` -> ``"open fridge"``).

    Ids must run 1..N without gaps (the test split refers to them).
    """
    path = _need_file(path, "EGTEA action_idx.txt")
    by_id: dict[int, str] = {}
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        parts = line.split(" ")
        if len(parts) < 2 or not parts[-1].isdigit():
            raise BenchmarkDataError(f"{path}, line {line_no}: expected '<Class_Name> <id>', got {line!r}")
        idx = int(parts[-1])
        if idx in by_id:
            raise BenchmarkDataError(f"{path}, line {line_no}: class id {idx} appears twice")
        by_id[idx] = " ".join(parts[:-1]).replace("_", " ").lower()
    if not by_id:
        raise BenchmarkDataError(f"{path}: no classes")
    if sorted(by_id) != list(range(1, len(by_id) + 1)):
        raise BenchmarkDataError(f"{path}: class ids must be 1..{len(by_id)} without gaps")
    return [by_id[i] for i in range(1, len(by_id) + 1)]


def read_egtea_split(path: str | Path, num_classes: int) -> list[EgteaSample]:
    """Samples of ``test_split1.txt`` (``clip_id action_id ...``; ids are 1-based)."""
    path = _need_file(path, "EGTEA split file")
    out = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) < 2 or not parts[1].isdigit():
            raise BenchmarkDataError(f"{path}, line {line_no}: expected '<clip_id> <action_id> ...', got {line!r}")
        action = int(parts[1])
        if not 1 <= action <= num_classes:
            raise BenchmarkDataError(f"{path}, line {line_no}: action id {action} outside 1..{num_classes} "
                                     "(the ids of action_idx.txt)")
        clip_id = parts[0]
        out.append(EgteaSample(clip_id, "-".join(clip_id.split("-")[:3]), action - 1))
    if not out:
        raise BenchmarkDataError(f"{path}: no samples")
    return out


# ---- EgoMCQ -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class McqChoice:
    video_uid: str
    start_sec: float
    end_sec: float
    text: str


@dataclass(frozen=True)
class McqQuestion:
    key: str
    query: str
    choices: tuple[McqChoice, ...]
    answer: int
    type: int  # 1 = inter-video, 2 = intra-video


def _req(d, key: str, where: str):
    if not isinstance(d, dict) or key not in d:
        raise BenchmarkDataError(f"{where}: missing key {key!r}")
    return d[key]


def read_egomcq(path: str | Path) -> list[McqQuestion]:
    """Questions of ``egomcq.json`` in key order (``"0"``, ``"1"``, ...)."""
    path = Path(path)
    data = read_json(path, "EgoMCQ json")
    if not isinstance(data, dict) or not data:
        raise BenchmarkDataError(f"{path}: expected a non-empty object mapping question ids to questions")
    out = []
    for key in sorted(data, key=lambda k: (not str(k).isdigit(), int(k) if str(k).isdigit() else 0, str(k))):
        item = data[key]
        where = f"{path}: question {key!r}"
        query = _req(_req(item, "query", where), "clip_text", where + " query")
        raw = _req(item, "choices", where)
        if not isinstance(raw, dict) or not raw:
            raise BenchmarkDataError(f"{where}: 'choices' must be an object {{'0': {{...}}, ...}}")
        choices = []
        for c in range(len(raw)):
            ch = _req(raw, str(c), where + " choices")
            cw = f"{where} choice {c}"
            uid, start, end = _req(ch, "video_uid", cw), _req(ch, "clip_start", cw), _req(ch, "clip_end", cw)
            try:
                choices.append(McqChoice(str(uid), float(start), float(end), str(ch.get("clip_text", ""))))
            except (TypeError, ValueError):
                raise BenchmarkDataError(f"{cw}: clip_start / clip_end must be numbers") from None
        answer, qtype = _req(item, "answer", where), _req(item, "types", where)
        answer = int(answer) if isinstance(answer, str) and answer.isdigit() else answer
        qtype = int(qtype) if isinstance(qtype, str) and qtype.isdigit() else qtype
        if not isinstance(answer, int) or not 0 <= answer < len(choices):
            raise BenchmarkDataError(f"{where}: answer {answer!r} is not a choice index 0..{len(choices) - 1}")
        if qtype not in (1, 2):
            raise BenchmarkDataError(f"{where}: types {qtype!r} must be 1 (inter-video) or 2 (intra-video)")
        out.append(McqQuestion(str(key), str(query), tuple(choices), answer, qtype))
    return out
