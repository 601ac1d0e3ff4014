"""Datasets and loaders of a pretraining run, built from the ``data`` config."""
from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from egohod.data.datasets import ResumableSampler, VideoTextDataset, collate_video_text
from egohod.data.metadata import ClipRecord, read_ego4d_narrations, read_hod_csv, split_holdout
from egohod.data.transforms import VideoTransform

from .config import DataConfig

__all__ = ["build_dataset", "build_loader", "load_records"]


def load_records(cfg: DataConfig, seed: int) -> tuple[list[ClipRecord], list[ClipRecord]]:
    """(train, held-out) records; held-out videos are chosen by ``data.holdout_fraction``."""
    records = read_hod_csv(cfg.csv) if cfg.csv is not None else read_ego4d_narrations(cfg.ego4d_json)
    return split_holdout(records, cfg.holdout_fraction, seed) if cfg.holdout_fraction > 0 else (records, [])


def build_dataset(records, cfg: DataConfig, spec, tokenizer, train: bool, seed: int) -> VideoTextDataset:
    """Dataset whose transform follows the model's input spec; in training frames are decoded at
    short side ``data.resize_short`` and cropped with one RandomResizedCrop (+ flip unless
    ``data.flip=false``) per sample."""
    transform = VideoTransform(spec.image_size, spec.mean, spec.std, resize=spec.eval_resize, train=train,
                               train_short_side=cfg.resize_short, flip=cfg.flip)
    return VideoTextDataset(
        records, cfg.video_root, layout=cfg.layout, chunk_seconds=cfg.chunk_seconds, ext=cfg.ext,
        num_frames=cfg.num_frames, slow_frames=cfg.slow_frames, train=train, transform=transform,
        tokenizer=tokenizer, resize_short=cfg.resize_short if train else max(spec.eval_resize, spec.image_size),
        seed=seed, max_retries=cfg.max_retries, backend=cfg.backend)


def build_loader(dataset: VideoTextDataset, sampler: ResumableSampler, cfg: DataConfig, batch_size: int,
                 device: torch.device) -> DataLoader:
    workers = cfg.num_workers
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, drop_last=True, num_workers=workers,
                      collate_fn=collate_video_text, pin_memory=cfg.pin_memory and device.type == "cuda",
                      persistent_workers=workers > 0, prefetch_factor=cfg.prefetch_factor if workers > 0 else None)
