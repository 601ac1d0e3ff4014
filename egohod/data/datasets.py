"""Video-text datasets for EgoVideo pretraining.

:class:`VideoTextDataset` turns :class:`~egohod.data.metadata.ClipRecord` rows into training
samples: a ``num_frames`` clip (the trainable fast path), optionally a ``slow_frames`` clip of the
same segment (the adapter's slow path), and the tokens of one caption. Both clips are decoded in
one pass and go through the transform together, so they share one crop and one flip.

Randomness is a pure function of ``(seed, epoch, index)``: the sampler hands the dataset
``(epoch, index)`` keys (a plain ``int`` key means epoch 0), so a sample is identical whichever
worker loads it and a resumed run sees exactly the same data.

Bad samples (missing or corrupt video, clip outside the video, no caption) are not skipped
silently: the sample is replaced by another drawn from the same seeded stream and the failure
(path, reason) travels with the batch, where :class:`BadSampleMonitor` counts it and stops the
run when failures exceed a configured fraction.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from .metadata import ClipRecord
from .video import VideoReadError, read_chunked_clips, read_clips

__all__ = [
    "BadSampleMonitor",
    "ResumableSampler",
    "SampleFailure",
    "TooManyBadSamples",
    "VideoTextDataset",
    "collate_video_text",
    "concat_clips",
]


def concat_clips(clips: Sequence[np.ndarray]) -> np.ndarray:
    """The clips joined along time; a view without copying when they lie one after the other in
    one array (as the video readers return them), else ``np.concatenate``."""
    first = clips[0]
    if len(clips) == 1:
        return first
    tail, owner = first.shape[1:], first.base
    if owner is not None and len(first) and all(
            c.base is owner and c.dtype == first.dtype and c.shape[1:] == tail and len(c) and c.flags.c_contiguous
            for c in clips):
        addr = [c.__array_interface__["data"][0] for c in clips]
        if all(addr[i] + clips[i].nbytes == addr[i + 1] for i in range(len(clips) - 1)):
            row = first[0]
            return np.lib.stride_tricks.as_strided(first, shape=(sum(len(c) for c in clips),) + tail,
                                                   strides=(row.nbytes,) + row.strides)
    return np.concatenate(clips, axis=0)


@dataclass(frozen=True)
class SampleFailure:
    index: int
    source: str  # where the record came from ("file.csv:17")
    path: str  # the video file (or folder) involved
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


class _BadSample(Exception):
    def __init__(self, path: str, reason: str):
        super().__init__(reason)
        self.path, self.reason = path, reason


class TooManyBadSamples(RuntimeError):
    """Raised when the share of failed samples exceeds the configured maximum."""


class VideoTextDataset(Dataset):
    """Clips + captions from a list of :class:`ClipRecord`.

    Args:
        records: the clips.
        video_root: folder holding the videos.
        layout: ``"chunked"`` (``{root}/{video_id}/{chunk:04d}.{ext}``) or ``"file"``
            (``{root}/{video_id}.{ext}``; ``"plain"`` is its old name), as in every egohod command.
        num_frames: frames of the fast clip (``"video"``).
        slow_frames: frames of the slow clip (``"video_slow"``); 0 for none.
        train: random frame per segment and random caption (else segment middles, first caption).
        transform: ``f(uint8 [T, H, W, 3], generator=...) -> float [3, T, S, S]``.
        tokenizer: ``f(list[str]) -> LongTensor [N, L]``; None keeps raw text only.
        resize_short: short side at decode time (None: as stored).
        max_retries: replacement attempts for one sample before giving up with an error.
    """

    def __init__(
        self,
        records: Sequence[ClipRecord],
        video_root: str | os.PathLike,
        *,
        layout: str = "chunked",
        chunk_seconds: float = 15.0,
        ext: str = "mp4",
        num_frames: int = 4,
        slow_frames: int = 16,
        train: bool = True,
        transform: Callable | None = None,
        tokenizer: Callable | None = None,
        resize_short: int | None = 320,
        seed: int = 0,
        max_retries: int = 10,
        backend: str = "auto",
        decode_threads: int = 1,
    ):
        if layout == "plain":
            import warnings

            warnings.warn("layout='plain' is deprecated; use layout='file' (one file per video)", FutureWarning,
                          stacklevel=2)
            layout = "file"
        if layout not in ("chunked", "file"):
            raise ValueError(f"layout must be 'chunked' or 'file', got {layout!r}")
        if not records:
            raise ValueError("VideoTextDataset needs at least one record")
        if num_frames <= 0 or slow_frames < 0:
            raise ValueError(f"num_frames must be > 0 and slow_frames >= 0, got {num_frames}, {slow_frames}")
        self.records = list(records)
        self.video_root = Path(video_root)
        self.layout, self.chunk_seconds, self.ext = layout, float(chunk_seconds), ext
        self.num_frames, self.slow_frames, self.train = int(num_frames), int(slow_frames), bool(train)
        self.transform, self.tokenizer = transform, tokenizer
        self.resize_short, self.seed, self.max_retries = resize_short, int(seed), int(max_retries)
        self.backend, self.decode_threads = backend, int(decode_threads)

    def __len__(self) -> int:
        return len(self.records)

    def video_path(self, rec: ClipRecord) -> Path:
        if self.layout == "chunked":
            return self.video_root / rec.video_id
        return self.video_root / f"{rec.video_id}.{self.ext}"

    # -- loading one record -------------------------------------------------------------
    def _frames(self, rec: ClipRecord, rng: np.random.Generator) -> list[np.ndarray]:
        counts = [self.num_frames] + ([self.slow_frames] if self.slow_frames else [])
        mode = "random" if self.train else "middle"
        if self.layout == "chunked":
            return read_chunked_clips(self.video_root, rec.video_id, rec.start, rec.end, counts, self.chunk_seconds,
                                      mode, self.resize_short, rng, self.backend, self.decode_threads, self.ext)
        return read_clips(self.video_path(rec), rec.start, rec.end, counts, mode, self.resize_short, rng,
                          self.backend, self.decode_threads)

    def load(self, index: int, rng: np.random.Generator) -> dict:
        """One sample or :class:`_BadSample`; all randomness from ``rng``."""
        rec = self.records[index]
        if not rec.texts:
            raise _BadSample(str(self.video_path(rec)), "empty caption")
        text = rec.texts[int(rng.integers(len(rec.texts)))] if self.train else rec.texts[0]
        try:
            clips = self._frames(rec, rng)
        except VideoReadError as e:
            raise _BadSample(e.path, e.reason) from None
        out = {"index": index, "text": text}
        if self.transform is not None:
            g = torch.Generator().manual_seed(int(rng.integers(2 ** 62)))
            both = self.transform(concat_clips(clips), generator=g)  # one crop/flip for both
            out["video"] = both[:, : self.num_frames]
            if self.slow_frames:
                out["video_slow"] = both[:, self.num_frames:]
        else:
            out["video"] = torch.from_numpy(clips[0])
            if self.slow_frames:
                out["video_slow"] = torch.from_numpy(clips[1])
        if self.tokenizer is not None:
            out["tokens"] = torch.as_tensor(self.tokenizer([text]))[0]
        return out

    def __getitem__(self, key) -> dict:
        epoch, index = key if isinstance(key, tuple) else (0, key)
        index = int(index)
        if not 0 <= index < len(self.records):
            raise IndexError(f"sample index {index} out of range for {len(self.records)} records")
        failures: list[SampleFailure] = []
        current = index
        for attempt in range(self.max_retries + 1):
            rng = np.random.default_rng([self.seed, int(epoch), index, attempt])
            try:
                sample = self.load(current, rng)
            except _BadSample as e:
                failures.append(SampleFailure(current, self.records[current].source, e.path, e.reason))
                current = int(rng.integers(len(self.records)))  # seeded replacement
                continue
            sample["failures"] = failures
            return sample
        lines = "\n  ".join(f"{f.path}: {f.reason}" for f in failures)
        raise TooManyBadSamples(f"sample {index}: {len(failures)} consecutive replacements failed:\n  {lines}")


def collate_video_text(batch: list[dict]) -> dict:
    """Stack tensors; keep texts, indices and the failures of the whole batch."""
    out = {"index": torch.tensor([b["index"] for b in batch]), "text": [b["text"] for b in batch],
           "failures": [f for b in batch for f in b["failures"]]}
    for k in ("video", "video_slow", "tokens"):
        if k in batch[0]:
            out[k] = torch.stack([b[k] for b in batch])
    return out


class ResumableSampler(Sampler):
    """Distributed, seeded, resumable sampler yielding ``(epoch, index)`` keys.

    Each epoch draws one permutation from ``seed + epoch``; rank ``r`` of ``R`` takes every
    ``R``-th entry, all ranks the same count (the tail is dropped). ``set_epoch(e, start=k)``
    skips this rank's first ``k`` samples of epoch ``e`` without loading them (resume).
    """

    def __init__(self, num_samples: int, num_replicas: int = 1, rank: int = 0, seed: int = 0, shuffle: bool = True):
        if num_samples < num_replicas:
            raise ValueError(f"{num_samples} samples cannot be split over {num_replicas} ranks")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside [0, {num_replicas})")
        self.n, self.replicas, self.rank, self.seed, self.shuffle = num_samples, num_replicas, rank, seed, shuffle
        self.epoch, self.start = 0, 0

    @property
    def per_rank(self) -> int:
        return self.n // self.replicas

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        if not 0 <= start <= self.per_rank:
            raise ValueError(f"start {start} outside [0, {self.per_rank}]")
        self.epoch, self.start = int(epoch), int(start)

    def indices(self, epoch: int) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed + epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        return order[self.rank::self.replicas][: self.per_rank]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        for i in self.indices(self.epoch)[self.start:]:
            yield (self.epoch, i)

    def __len__(self) -> int:
        return self.per_rank - self.start


class BadSampleMonitor:
    """Counts loaded and failed samples; failures above ``max_fraction`` of all attempts (checked
    once at least ``min_attempts`` were made) raise :class:`TooManyBadSamples` from
    :meth:`update`, or with ``raise_on_exceed=False`` are only reported by :meth:`exceeded`
    (distributed training agrees across ranks before stopping)."""

    def __init__(self, max_fraction: float = 0.05, min_attempts: int = 64,
                 log: Callable[[SampleFailure], None] | None = None, raise_on_exceed: bool = True):
        if not 0 <= max_fraction <= 1:
            raise ValueError(f"max_fraction must be in [0, 1], got {max_fraction}")
        self.max_fraction, self.min_attempts, self.log = max_fraction, min_attempts, log
        self.raise_on_exceed = raise_on_exceed
        self.loaded = 0
        self.failed = 0
        self.recent: list[SampleFailure] = []

    @property
    def attempts(self) -> int:
        return self.loaded + self.failed

    @property
    def fraction(self) -> float:
        return self.failed / self.attempts if self.attempts else 0.0

    def state_dict(self) -> dict:
        return {"loaded": self.loaded, "failed": self.failed}

    def load_state_dict(self, d: dict) -> None:
        self.loaded, self.failed = int(d["loaded"]), int(d["failed"])

    def exceeded(self) -> str | None:
        """The stop message when failures exceed the allowed fraction, else None."""
        if self.attempts < self.min_attempts or self.fraction <= self.max_fraction:
            return None
        last = "\n  ".join(f"{f.path} ({f.source}): {f.reason}" for f in self.recent)
        return (f"{self.failed} of {self.attempts} samples failed ({100 * self.fraction:.1f}% > "
                f"data.max_bad_fraction={100 * self.max_fraction:.1f}%). Last failures:\n  {last}")

    def update(self, num_loaded: int, failures: Sequence[SampleFailure]) -> None:
        self.loaded += int(num_loaded)
        self.failed += len(failures)
        for f in failures:
            if self.log is not None:
                self.log(f)
        self.recent = (self.recent + list(failures))[-5:]
        msg = self.exceeded() if self.raise_on_exceed else None
        if msg:
            raise TooManyBadSamples(msg)
