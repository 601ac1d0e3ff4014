"""Clips, labels and captions of the fine-tuning tasks, read with the benchmark suite's readers
(:mod:`egohod.benchmarks.readers`), and the datasets the loop and the evaluation iterate.

Layouts (``data=DIR``; ``data.videos`` is relative to it unless absolute):

* **egtea**: ``action_idx.txt``, ``train_split<k>.txt``, ``test_split<k>.txt``; clip videos
  ``<videos>/<video_id>/<clip_id>.mp4`` or ``<videos>/<clip_id>.mp4`` (``data.videos=cropped_clips``).
* **ek100-cls**: ``EPIC_100_train.csv`` (train), ``EPIC_100_validation.csv`` (evaluation), in DIR
  or ``DIR/epic-kitchens-100-annotations``; labels ``verb_class`` (97) and ``noun_class`` (300).
* **ek100-mir**: ``EPIC_100_retrieval_train.csv``, ``EPIC_100_retrieval_train_sentence.csv``,
  ``relevancy/caption_relevancy_EPIC_100_retrieval_train.pkl`` (read through
  :mod:`egohod.safe_load`) for training; the test files of the zero-shot protocol for evaluation.
* EK-100 videos: ``<videos>/<participant>/<video_id>.MP4`` (LaViLa) or ``<videos>/<video_id>.mp4``.

Every annotation problem, class id out of range or missing video is raised as
:class:`~egohod.benchmarks.readers.BenchmarkDataError` before training starts, naming the file.

Frames: segment-based sampling of ``data.num_frames`` frames over the clip, a random frame per
segment in training (:func:`egohod.data.video.sample_segment_indices`), the protocols' frame ids in
evaluation (:mod:`egohod.benchmarks.frames`). Training randomness (frames, crop, flip, MIR
caption) is a function of ``(seed, epoch, index)``, so a resumed run reads the same clips.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from egohod.benchmarks import frames as fr
from egohod.benchmarks.protocols import EK100_SUBDIRS, find_annotation
from egohod.benchmarks.readers import (BenchmarkDataError, read_csv_columns, read_egtea_classes, read_egtea_split,
                                       read_ek100_clips, read_relevancy)
from egohod.data.transforms import VideoTransform
from egohod.data.video import VideoReadError, probe_video, read_frames, sample_segment_indices
from egohod.preprocess import normalize, resize_short_side

__all__ = ["FtClip", "TaskData", "load_task_data", "TrainClips", "EvalClips"]

EK100_ANN = ("", "epic-kitchens-100-annotations")
EK100_VERBS, EK100_NOUNS = 97, 300


@dataclass(frozen=True)
class FtClip:
    path: Path
    start_sec: float | None  # None: the whole file (EGTEA clips)
    end_sec: float | None
    labels: tuple[int, ...] = ()  # EGTEA: (action,); EK-100 CLS: (verb, noun)
    key: str = ""


@dataclass
class TaskData:
    train: list[FtClip]
    test: list[FtClip]
    num_classes: tuple[int, ...] = ()  # per label
    captions: list[str] = field(default_factory=list)  # MIR: train sentences
    positives: list[np.ndarray] = field(default_factory=list)  # MIR: per train clip, (caption ids, relevancies)


def _videos_root(root: str, videos: str) -> Path:
    v = Path(videos)
    return v if v.is_absolute() else Path(root) / v


def _resolve(clips_paths, what: str) -> None:
    missing = [p for p in clips_paths if isinstance(p, VideoReadError)]
    if missing:
        raise BenchmarkDataError(f"{len(missing)} {what} video(s) not found; the first: {missing[0]}. "
                                 "Set data.videos=DIR (absolute or relative to data=) to the folder holding them")


def _find(root: Path, candidates: list[str], what: str):
    try:
        return fr.find_video(root, candidates, what)
    except VideoReadError as e:
        return e


def _ek100_clips(path: Path, videos: Path, labels: bool) -> list[FtClip]:
    out, found = [], []
    for c in read_ek100_clips(path):
        p = _find(videos, [f"{c.participant_id}/{c.video_id}.MP4", f"{c.participant_id}/{c.video_id}.mp4",
                           f"{c.video_id}.MP4", f"{c.video_id}.mp4"], f"EK-100 clip {c.narration_id} ({path.name})")
        found.append(p)
        if labels and not (0 <= c.verb_class < EK100_VERBS and 0 <= c.noun_class < EK100_NOUNS):
            raise BenchmarkDataError(f"{path}: narration {c.narration_id} has verb_class {c.verb_class} / noun_class "
                                     f"{c.noun_class} outside 0..{EK100_VERBS - 1} / 0..{EK100_NOUNS - 1}")
        out.append(FtClip(p if isinstance(p, Path) else Path(), c.start_sec, c.end_sec,
                          (c.verb_class, c.noun_class) if labels else (), c.narration_id))
    _resolve(found, path.name)
    return out


def _egtea_clips(path: Path, videos: Path, num_classes: int) -> list[FtClip]:
    samples = read_egtea_split(path, num_classes)
    found = [_find(videos, [f"{s.video_id}/{s.clip_id}.mp4", f"{s.clip_id}.mp4"], f"EGTEA clip {s.clip_id}")
             for s in samples]
    _resolve(found, path.name)
    return [FtClip(p, None, None, (s.label,), s.clip_id) for p, s in zip(found, samples)]


def load_task_data(task: str, root: str, videos: str, split: int = 1, relevancy_threshold: float = 0.1,
                   trust_pickle: bool = False) -> TaskData:
    """Read and check everything a task trains and evaluates on (no video is decoded)."""
    vroot = _videos_root(root, videos)
    if not vroot.is_dir():
        raise BenchmarkDataError(f"video folder {vroot} does not exist (set data.videos=DIR)")
    if task == "egtea":
        classes = read_egtea_classes(find_annotation(root, "action_idx.txt"))
        train = _egtea_clips(find_annotation(root, f"train_split{split}.txt"), vroot, len(classes))
        test = _egtea_clips(find_annotation(root, f"test_split{split}.txt"), vroot, len(classes))
        return TaskData(train, test, (len(classes),))
    if task == "ek100-cls":
        train = _ek100_clips(find_annotation(root, "EPIC_100_train.csv", EK100_ANN), vroot, True)
        test = _ek100_clips(find_annotation(root, "EPIC_100_validation.csv", EK100_ANN), vroot, True)
        return TaskData(train, test, (EK100_VERBS, EK100_NOUNS))
    if task == "ek100-mir":
        return _mir_data(root, vroot, relevancy_threshold, trust_pickle)
    raise ValueError(f"unknown task {task!r}")


def _mir_data(root: str, vroot: Path, threshold: float, trust_pickle: bool) -> TaskData:
    csv_path = find_annotation(root, "EPIC_100_retrieval_train.csv", EK100_SUBDIRS)
    train = _ek100_clips(csv_path, vroot, False)
    sent_path = find_annotation(root, "EPIC_100_retrieval_train_sentence.csv", EK100_SUBDIRS)
    captions = [r["narration"] for r in read_csv_columns(sent_path, ("narration_id", "narration"),
                                                        "EK-100 retrieval sentence CSV")]
    rel = read_relevancy(find_annotation(root, "caption_relevancy_EPIC_100_retrieval_train.pkl",
                                         [f"{s}/relevancy".strip("/") for s in EK100_SUBDIRS] + list(EK100_SUBDIRS)),
                         shape=(len(train), len(captions)), trust_pickle=trust_pickle)
    positives = []
    for i, row in enumerate(rel):
        ids = np.nonzero(row > threshold)[0]
        if len(ids) == 0:
            raise BenchmarkDataError(f"EK-100 MIR train clip {train[i].key} (row {i}) has no caption with relevancy > "
                                     f"{threshold}; lower data.relevancy_threshold or fix the relevancy matrix")
        positives.append(np.stack([ids, row[ids]]))
    # evaluation is the zero-shot protocol's test split (checked there); only its files are checked here
    find_annotation(root, "EPIC_100_retrieval_test.csv", EK100_SUBDIRS)
    return TaskData(train, [], (), captions, positives)


# ----------------------------------------------------------------------------- reading clips


def _frame_range(clip: FtClip) -> tuple[int, int, float, int]:
    info = probe_video(clip.path)
    if clip.start_sec is None:
        return 0, info.num_frames, info.fps, info.num_frames
    lo = min(int(round(clip.start_sec * info.fps)), info.num_frames - 1)
    hi = min(max(int(round(clip.end_sec * info.fps)), lo + 1), info.num_frames)
    return lo, hi, info.fps, info.num_frames


def eval_frame_ids(clip: FtClip, n: int, num_clips: int = 1) -> list[np.ndarray]:
    """The protocols' frame ids (EGTEA: segment midpoints of the file; EK-100: EgoHOD's
    ``get_frame_ids``); with ``num_clips`` > 1 the range is cut into equal windows, one clip each."""
    lo, hi, fps, total = _frame_range(clip)
    if num_clips == 1:
        if clip.start_sec is None:
            return [fr.egtea_frame_ids(0, total, n)]
        return [fr.time_window_frame_ids(clip.start_sec, clip.end_sec, fps, total, n)]
    edges = np.linspace(lo, hi, num_clips + 1)
    return [np.clip(fr.egohod_frame_ids(int(a), max(int(b), int(a) + 1), n), 0, total - 1)
            for a, b in zip(edges[:-1], edges[1:])]


class TrainClips(torch.utils.data.Dataset):
    """Training items keyed ``(epoch, index)`` (:class:`egohod.data.datasets.ResumableSampler`):
    ``{"video": [3, T, S, S], "index", "labels"?: [K], "tokens"?: [L], "weight"?: float}``."""

    def __init__(self, clips: list[FtClip], transform: VideoTransform, num_frames: int, seed: int,
                 captions: list[str] | None = None, positives: list[np.ndarray] | None = None, tokenizer=None):
        self.clips, self.transform, self.num_frames, self.seed = clips, transform, num_frames, seed
        self.captions, self.positives, self.tokenizer = captions, positives, tokenizer

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key) -> dict:
        epoch, i = key
        rng = np.random.default_rng([self.seed, epoch, i])
        clip = self.clips[i]
        lo, hi, _, _ = _frame_range(clip)
        frames = read_frames(clip.path, sample_segment_indices(lo, hi, self.num_frames, "random", rng))
        g = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
        item = {"video": self.transform(frames, generator=g), "index": torch.tensor(i)}
        if clip.labels:
            item["labels"] = torch.tensor(clip.labels)
        if self.positives is not None:
            ids, rel = self.positives[i]
            j = int(rng.integers(len(ids)))
            item["tokens"] = self.tokenizer([self.captions[int(ids[j])]])[0]
            item["weight"] = torch.tensor(float(rel[j]))
        return item


def _three_crops(x: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Left/centre/right (or top/centre/bottom) ``size`` crops of ``[T, 3, H, W]`` along the long side."""
    h, w = x.shape[-2:]
    if w >= h:
        top = (h - size) // 2
        return [x[..., top:top + size, s:s + size] for s in (0, (w - size) // 2, w - size)]
    left = (w - size) // 2
    return [x[..., s:s + size, left:left + size] for s in (0, (h - size) // 2, h - size)]


class EvalClips(torch.utils.data.Dataset):
    """Test items: ``{"video": [V, 3, T, S, S]`` (V = clips x crops views), ``"labels": [K]}``."""

    def __init__(self, clips: list[FtClip], spec, num_frames: int, num_clips: int = 1, num_crops: int = 1):
        self.clips, self.spec, self.num_frames = clips, spec, num_frames
        self.num_clips, self.num_crops = num_clips, num_crops
        self.centre = VideoTransform(spec.image_size, spec.mean, spec.std, resize=spec.eval_resize, train=False)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, i: int) -> dict:
        clip = self.clips[i]
        views = []
        for ids in eval_frame_ids(clip, self.num_frames, self.num_clips):
            frames = read_frames(clip.path, ids)
            if self.num_crops == 1:
                views.append(self.centre(frames))
                continue
            x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 255.0
            x = resize_short_side(x, max(self.spec.eval_resize, self.spec.image_size))
            views += [normalize(c, self.spec.mean, self.spec.std).permute(1, 0, 2, 3).contiguous()
                      for c in _three_crops(x, self.spec.image_size)]
        return {"video": torch.stack(views), "labels": torch.tensor(clip.labels), "index": torch.tensor(i)}
