"""Zero-shot evaluation protocols: EK-100 MIR, EK-100 CLS, EGTEA, EgoMCQ.

They follow EgoHOD's evaluation scripts (which reuse LaViLa's protocol and metric code); every
choice is listed in ``docs/benchmarks.md``. In short:

* frames: EK-100 MIR 4, EK-100 CLS / EGTEA / EgoMCQ 16 per clip (``num_frames``), picked by
  :mod:`egohod.benchmarks.frames`; each frame's short side is resized to the model's crop size
  (bicubic) and centre-cropped; CLIP mean/std (the model's input spec). One clip, one crop.
* video embedding: the backbone (``encode_video``), L2-normalised, as EgoHOD's zero-shot
  scripts; ``dual=true`` uses the motion-adapter dual path instead
  (``encode_video_dual(num_frames clip, slow_frames clip)``). Text embedding: ``encode_text``
  of the CLIP-tokenised text, L2-normalised.
* EK-100 MIR: similarity ``(v . t + 1) / 2`` between the 9,668 test clips and the 3,842
  captions; ``mir_text="narration"`` (LaViLa / EgoHOD) embeds each caption as the narration of
  the test clip whose ``narration_id`` the sentence file lists, ``"sentence"`` embeds the
  sentence file's own text. Scored with :func:`~egohod.benchmarks.scorers.ek100_mir_scores`.
* EK-100 CLS: classes are the ``verb:noun`` pairs of train + validation (3,806 in the release),
  sorted as strings; a class's text embedding is the renormalised mean of the normalised
  embeddings of its unique narrations (x templates); clips are the retrieval-test clips
  (EgoHOD; ``cls_clips="validation"`` for LaViLa's choice); cosine scores.
* EGTEA: 106 classes named by ``action_idx.txt``; ``test_split1`` clips; cosine scores.
* EgoMCQ: the query text against each of the 5 choice clips.

Each ``run_*`` function returns ``(metrics, info)``; the CLI writes them with
:mod:`egohod.benchmarks.results`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import frames as fr
from .config import EvalConfig
from .readers import (
    BenchmarkDataError,
    ek100_action_classes,
    read_egomcq,
    read_egtea_classes,
    read_egtea_split,
    read_ek100_clips,
    read_ek100_sentences,
    read_relevancy,
)
from .scorers import classification_scores, ek100_mir_scores, egomcq_scores

__all__ = ["ZeroShotModel", "find_annotation", "run_benchmark", "run_ek100_mir", "run_ek100_cls",
           "run_egtea", "run_egomcq"]

EK100_SUBDIRS = ("", "retrieval_annotations", "epic-kitchens-100-annotations",
                 "epic-kitchens-100-annotations/retrieval_annotations")


def find_annotation(data: str | Path, name: str, subdirs: Sequence[str] = ("",)) -> Path:
    """``data/<subdir>/<name>`` for the first subdir holding it; the error lists where it looked."""
    tried = [Path(data) / s / name for s in subdirs]
    for p in tried:
        if p.is_file():
            return p
    raise BenchmarkDataError(f"{name} not found; looked in " + ", ".join(str(p.parent) for p in tried))


class _ClipDataset:
    """Map-style dataset: item ``i`` = ``transform(clip_fns[i](n))`` for each ``n`` in ``frames``
    (``[3, T, S, S]`` float; a tuple of them when two clip lengths are asked for)."""

    def __init__(self, clip_fns: Sequence[Callable[[int], np.ndarray]], transform, frames: Sequence[int]):
        self.clip_fns, self.transform, self.frames = list(clip_fns), transform, tuple(frames)

    def __len__(self) -> int:
        return len(self.clip_fns)

    def __getitem__(self, i: int):
        clips = tuple(self.transform(self.clip_fns[i](n)) for n in self.frames)
        return clips if len(clips) > 1 else clips[0]


@dataclass
class ZeroShotModel:
    """A video-language model with its tokenizer and eval transform, on one device."""

    cfg: EvalConfig

    def __post_init__(self):
        import torch

        from .. import create_transforms, get_tokenizer
        from ..device import resolve_device
        from ..models import create_model

        self.device = resolve_device(self.cfg.device)
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.cfg.precision]
        torch.manual_seed(self.cfg.seed)  # reproducible random weights when no checkpoint is given
        model = create_model(self.cfg.encoder, checkpoint=self.cfg.checkpoint, num_frames=self.cfg.num_frames,
                             trust_pickle=self.cfg.trust_pickle, seed=self.cfg.seed)
        if self.cfg.dual and getattr(model, "slowfast_projection", None) is None:
            raise BenchmarkDataError(f"dual=true needs a model with motion adapters; {self.cfg.checkpoint} has none "
                                     "(evaluate it with dual=false)")
        self.model = model.eval().to(self.device, self.dtype)
        self.weights = getattr(model, "weights", "unknown")
        self.tokenizer = get_tokenizer(self.cfg.encoder)
        self.transform = create_transforms(self.cfg.encoder, train=False)

    def embed_texts(self, texts: Sequence[str], desc: str = "text") -> np.ndarray:
        """L2-normalised ``[N, E]`` float32 text embeddings."""
        import torch
        from tqdm import tqdm

        out = []
        with torch.no_grad():
            for lo in tqdm(range(0, len(texts), self.cfg.text_batch), desc=f"encode {desc}", unit="batch"):
                tokens = self.tokenizer(list(texts[lo:lo + self.cfg.text_batch])).to(self.device)
                out.append(self.model.encode_text(tokens, normalize=True).float().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.model.embed_dim), np.float32)

    def embed_clips(self, clip_fns: Sequence[Callable[[int], np.ndarray]], desc: str = "clips") -> np.ndarray:
        """L2-normalised ``[N, E]`` float32 video embeddings; ``clip_fns[i](n)`` returns clip ``i``
        as uint8 ``[n, H, W, 3]`` frames. With ``dual``, each clip is read at ``num_frames`` (fast,
        backbone) and ``slow_frames`` (slow, motion adapters) and embedded by ``encode_video_dual``."""
        import torch
        from tqdm import tqdm

        frames = (self.cfg.num_frames, self.cfg.slow_frames) if self.cfg.dual else (self.cfg.num_frames,)
        loader = torch.utils.data.DataLoader(_ClipDataset(clip_fns, self.transform, frames), batch_size=self.cfg.batch,
                                             shuffle=False, num_workers=self.cfg.workers,
                                             pin_memory=self.device.type == "cuda")
        out = []
        with torch.no_grad():
            for video in tqdm(loader, desc=f"encode {desc}", unit="batch"):
                if self.cfg.dual:
                    fast, slow = (v.to(self.device, self.dtype, non_blocking=True) for v in video)
                    z = self.model.encode_video_dual(fast, slow, normalize=True)
                else:
                    z = self.model.encode_video(video.to(self.device, self.dtype, non_blocking=True), normalize=True)
                out.append(z.float().cpu().numpy())
        return np.concatenate(out)


def _limit(items: list, cfg: EvalConfig) -> list:
    return items[:cfg.limit] if cfg.limit is not None else items


def _videos_root(cfg: EvalConfig) -> Path:
    root = Path(cfg.videos)
    return root if root.is_absolute() else Path(cfg.data) / root


def _ek100_reader(root: Path, clip):
    path = fr.find_video(root, [f"{clip.participant_id}/{clip.video_id}.MP4", f"{clip.participant_id}/{clip.video_id}.mp4",
                                f"{clip.video_id}.MP4", f"{clip.video_id}.mp4"], f"EK-100 clip {clip.narration_id}")
    return functools.partial(fr.read_time_window, path, clip.start_sec, clip.end_sec)


# ---- EK-100 MIR -------------------------------------------------------------------------------

def run_ek100_mir(cfg: EvalConfig, model: ZeroShotModel) -> tuple[dict, dict]:
    clips = read_ek100_clips(find_annotation(cfg.data, "EPIC_100_retrieval_test.csv", EK100_SUBDIRS))
    sent_path = find_annotation(cfg.data, "EPIC_100_retrieval_test_sentence.csv", EK100_SUBDIRS)
    sentences = read_ek100_sentences(sent_path)
    rel = read_relevancy(find_annotation(cfg.data, "caption_relevancy_EPIC_100_retrieval_test.pkl",
                                         [f"{s}/relevancy".strip("/") for s in EK100_SUBDIRS] + list(EK100_SUBDIRS)),
                         shape=(len(clips), len(sentences)), trust_pickle=cfg.trust_pickle)
    if cfg.mir_text == "narration":
        first_row = {}
        for i, c in enumerate(clips):
            first_row.setdefault(c.narration_id, i)
        missing = [nid for nid, _ in sentences if nid not in first_row]
        if missing:
            raise BenchmarkDataError(f"{sent_path}: narration ids {missing[:5]} are not in EPIC_100_retrieval_test.csv")
        texts = [clips[first_row[nid]].narration for nid, _ in sentences]
    else:
        texts = [t for _, t in sentences]
    eval_clips = _limit(clips, cfg)
    rel = rel[:len(eval_clips)]
    keep = np.nonzero((rel == 1).any(axis=0))[0] if cfg.limit is not None else np.arange(len(sentences))
    rel, texts = rel[:, keep], [texts[j] for j in keep]
    root = _videos_root(cfg)
    readers = [_ek100_reader(root, c) for c in eval_clips]
    v = model.embed_clips(readers, "EK-100 test clips")
    t = model.embed_texts(texts, "EK-100 captions")
    sim = (v @ t.T + 1) / 2  # float32, as the official pipeline
    metrics = ek100_mir_scores(sim, rel)
    return metrics, {"num_clips": len(eval_clips), "num_captions": len(texts)}


# ---- EK-100 CLS -------------------------------------------------------------------------------

def class_embeddings(model: ZeroShotModel, class_texts: Sequence[Sequence[str]], templates: Sequence[str]) -> np.ndarray:
    """Per class: renormalised mean of the normalised embeddings of ``template.format(text)``."""
    prompts = [[tmpl.format(t) for tmpl in templates for t in texts] for texts in class_texts]
    unique = list(dict.fromkeys(p for ps in prompts for p in ps))
    emb = model.embed_texts(unique, "class texts")
    row = {p: i for i, p in enumerate(unique)}
    out = np.stack([emb[[row[p] for p in ps]].mean(axis=0) for ps in prompts])
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def run_ek100_cls(cfg: EvalConfig, model: ZeroShotModel) -> tuple[dict, dict]:
    ann = ("", "epic-kitchens-100-annotations")
    keys, narrations = ek100_action_classes(find_annotation(cfg.data, "EPIC_100_train.csv", ann),
                                            find_annotation(cfg.data, "EPIC_100_validation.csv", ann))
    name = "EPIC_100_retrieval_test.csv" if cfg.cls_clips == "retrieval_test" else "EPIC_100_validation.csv"
    clip_path = find_annotation(cfg.data, name, EK100_SUBDIRS)
    clips = _limit(read_ek100_clips(clip_path), cfg)
    index = {k: i for i, k in enumerate(keys)}
    unknown = sorted({c.action_key for c in clips if c.action_key not in index})
    if unknown:
        raise BenchmarkDataError(f"{clip_path}: verb:noun pairs {unknown[:5]} are not seen in train + validation")
    labels = np.array([index[c.action_key] for c in clips])
    text_emb = class_embeddings(model, narrations, cfg.templates)
    root = _videos_root(cfg)
    v = model.embed_clips([_ek100_reader(root, c) for c in clips], "EK-100 clips")
    metrics = classification_scores(v @ text_emb.T, labels)
    return metrics, {"num_clips": len(clips), "num_classes": len(keys)}


# ---- EGTEA ------------------------------------------------------------------------------------

def _egtea_clip(path: Path, n: int) -> np.ndarray:
    from ..data.video import probe_video, read_frames

    return read_frames(path, fr.egtea_frame_ids(0, probe_video(path).num_frames, n))


def run_egtea(cfg: EvalConfig, model: ZeroShotModel) -> tuple[dict, dict]:
    classes = read_egtea_classes(find_annotation(cfg.data, "action_idx.txt"))
    samples = _limit(read_egtea_split(find_annotation(cfg.data, "test_split1.txt"), len(classes)), cfg)
    root = _videos_root(cfg)
    readers = [functools.partial(_egtea_clip, fr.find_video(root, [f"{s.video_id}/{s.clip_id}.mp4", f"{s.clip_id}.mp4"],
                                                               f"EGTEA clip {s.clip_id}"))
               for s in samples]
    text_emb = class_embeddings(model, [[c] for c in classes], cfg.templates)
    v = model.embed_clips(readers, "EGTEA clips")
    metrics = classification_scores(v @ text_emb.T, np.array([s.label for s in samples]))
    return metrics, {"num_clips": len(samples), "num_classes": len(classes)}


# ---- EgoMCQ -----------------------------------------------------------------------------------

def _mcq_reader(root: Path, choice, chunk_seconds: float):
    if (root / choice.video_uid).is_dir():
        return functools.partial(fr.read_chunked_window, root, choice.video_uid, choice.start_sec, choice.end_sec,
                                 chunk_seconds=chunk_seconds)
    path = fr.find_video(root, [f"{choice.video_uid}.mp4", f"{choice.video_uid}.MP4"], f"EgoMCQ video {choice.video_uid}")
    return functools.partial(fr.read_time_window, path, choice.start_sec, choice.end_sec)


def run_egomcq(cfg: EvalConfig, model: ZeroShotModel) -> tuple[dict, dict]:
    questions = _limit(read_egomcq(find_annotation(cfg.data, "egomcq.json")), cfg)
    n_choices = {len(q.choices) for q in questions}
    if len(n_choices) != 1:
        raise BenchmarkDataError(f"EgoMCQ questions have different numbers of choices: {sorted(n_choices)}")
    k = n_choices.pop()
    root = _videos_root(cfg)
    readers = [_mcq_reader(root, c, cfg.chunk_seconds) for q in questions for c in q.choices]
    v = model.embed_clips(readers, "EgoMCQ choice clips").reshape(len(questions), k, -1)
    t = model.embed_texts([q.query for q in questions], "EgoMCQ queries")
    scores = np.einsum("qd,qkd->qk", t, v)
    metrics = egomcq_scores(scores, np.array([q.answer for q in questions]), np.array([q.type for q in questions]))
    info = {"num_questions": len(questions), "num_inter": sum(q.type == 1 for q in questions),
            "num_intra": sum(q.type == 2 for q in questions)}
    return metrics, info


RUNNERS = {"ek100-mir": run_ek100_mir, "ek100-cls": run_ek100_cls, "egtea": run_egtea, "egomcq": run_egomcq}


REQUIRED_FILES = {
    "ek100-mir": [("EPIC_100_retrieval_test.csv", EK100_SUBDIRS), ("EPIC_100_retrieval_test_sentence.csv", EK100_SUBDIRS)],
    "ek100-cls": [("EPIC_100_train.csv", ("", "epic-kitchens-100-annotations")),
                  ("EPIC_100_validation.csv", ("", "epic-kitchens-100-annotations"))],
    "egtea": [("action_idx.txt", ("",)), ("test_split1.txt", ("",))],
    "egomcq": [("egomcq.json", ("",))],
}


def check_data(cfg: EvalConfig) -> None:
    """Fail before building the model when an annotation file or the video folder is missing."""
    for name, subdirs in REQUIRED_FILES[cfg.benchmark]:
        find_annotation(cfg.data, name, subdirs)
    if not _videos_root(cfg).is_dir():
        raise BenchmarkDataError(f"video folder {_videos_root(cfg)} does not exist (set videos=DIR)")


def run_benchmark(cfg: EvalConfig) -> tuple[dict, dict]:
    """Build the model and run ``cfg.benchmark``; returns ``(metrics, info)``."""
    check_data(cfg)
    model = ZeroShotModel(cfg)
    metrics, info = RUNNERS[cfg.benchmark](cfg, model)
    info.update({"weights": model.weights, "device": str(model.device)})
    return metrics, info
