"""Zero-shot retrieval on the held-out videos of the training metadata.

Every rank embeds its share of the held-out clips; the features are gathered and rank 0's
numbers (identical on all ranks) are returned. A retrieval counts as correct when the retrieved
item carries the same caption as the query's ground truth (several held-out clips may share one
caption, e.g. "#C C opens the drawer"), so duplicates are not counted as misses; mAP ranks every
held-out item for each query, the items with the query's caption being the relevant ones.
"""
from __future__ import annotations

import contextlib
from typing import Callable, ContextManager

import torch
import torch.distributed as dist
import torch.nn.functional as F

__all__ = ["retrieval_map", "retrieval_metrics", "validate_ek100_mir", "validate_retrieval"]


def retrieval_metrics(video: torch.Tensor, text: torch.Tensor, captions: list[str], ks=(1, 5)) -> dict:
    """Recall@k (percent) for video->text and text->video with caption-equality matching."""
    video, text = F.normalize(video.float(), dim=-1), F.normalize(text.float(), dim=-1)
    sim = video @ text.t()
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    cap = torch.tensor([ids[c] for c in captions])
    same = cap[:, None] == cap[None, :]  # [N, N]: same caption
    out = {"num_clips": len(captions), "num_captions": len(ids)}
    for k in ks:
        k_ = min(k, sim.shape[0])
        top_t = sim.topk(k_, dim=1).indices  # texts for each video
        top_v = sim.topk(k_, dim=0).indices.t()  # videos for each text
        out[f"v2t_r{k}"] = 100.0 * same.gather(1, top_t).any(1).float().mean().item()
        out[f"t2v_r{k}"] = 100.0 * same.gather(1, top_v).any(1).float().mean().item()
    return out


def retrieval_map(video: torch.Tensor, text: torch.Tensor, captions: list[str]) -> dict:
    """Mean average precision (percent) for text->video and video->text: each clip's caption (or
    video) is a query over all held-out videos (or captions); relevant = same caption. Ties keep
    the items' order."""
    video, text = F.normalize(video.float(), dim=-1), F.normalize(text.float(), dim=-1)
    sim = video @ text.t()
    ids = {c: i for i, c in enumerate(dict.fromkeys(captions))}
    cap = torch.tensor([ids[c] for c in captions])
    same = cap[:, None] == cap[None, :]

    def mean_ap(scores: torch.Tensor) -> float:  # rows: queries, columns: items
        order = scores.argsort(dim=1, descending=True, stable=True)
        rel = same.gather(1, order).float()
        precision = rel.cumsum(1) / torch.arange(1, rel.shape[1] + 1)
        return 100.0 * ((precision * rel).sum(1) / rel.sum(1)).mean().item()

    return {"t2v_map": mean_ap(sim.t()), "v2t_map": mean_ap(sim)}


def _gather_cat(x: torch.Tensor) -> torch.Tensor:
    if not (dist.is_available() and dist.is_initialized()):
        return x
    parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, x.contiguous())
    # rank r holds samples r, r+W, r+2W, ... : interleave back into sampler order
    return torch.stack(parts, dim=1).reshape(-1, *x.shape[1:])


@torch.no_grad()
def validate_retrieval(model, loader, device: torch.device, dual: bool,
                       autocast: Callable[[], ContextManager] = contextlib.nullcontext, max_clips: int = 0) -> dict:
    """Embed the held-out loader's clips and captions and score retrieval (see module docstring).

    ``model`` is the unwrapped :class:`EgoVideo`; ``dual`` uses the dual-path video embedding.
    """
    was_training = model.training
    model.eval()
    vids, txts, idx = [], [], []
    seen = 0
    for batch in loader:
        v = batch["video"].to(device)
        with autocast():
            ve = model.encode_video_dual(v, batch["video_slow"].to(device)) if dual else model.encode_video(v)
            te = model.encode_text(batch["tokens"].to(device))
        vids.append(ve.float())
        txts.append(te.float())
        idx.append(batch["index"].to(device))
        seen += len(v)
        if max_clips and seen * (dist.get_world_size() if dist.is_initialized() else 1) >= max_clips:
            break
    model.train(was_training)
    v, t, i = _gather_cat(torch.cat(vids)), _gather_cat(torch.cat(txts)), _gather_cat(torch.cat(idx))
    records = loader.dataset.records
    captions = [records[int(k)].texts[0] for k in i.tolist()]
    return {**retrieval_metrics(v.cpu(), t.cpu(), captions), **retrieval_map(v.cpu(), t.cpu(), captions)}


def validate_ek100_mir(checkpoint: str, model_name: str, *, data: str, videos: str, num_frames: int,
                       slow_frames: int, batch: int, limit: int | None, dual: bool, device: torch.device) -> dict:
    """Zero-shot EK-100 multi-instance retrieval of a saved checkpoint with the benchmark suite's
    protocol (:func:`egohod.benchmarks.protocols.run_ek100_mir`): mAP / nDCG in percent. ``data``
    and ``videos``: the annotation and video folders; ``limit``: the first N test clips only."""
    from egohod.benchmarks.config import load_eval_config
    from egohod.benchmarks.protocols import ZeroShotModel, run_ek100_mir

    argv = [f"data={data}", f"videos={videos}", f"encoder={model_name}", f"checkpoint={checkpoint}",
            f"device={device}", f"num_frames={num_frames}", f"dual={str(dual).lower()}",
            f"slow_frames={max(1, slow_frames)}", f"batch={batch}"]
    if limit is not None:
        argv.append(f"limit={limit}")
    cfg = load_eval_config("ek100-mir", argv)
    # the protocol seeds the global RNG; keep the training process's RNG streams untouched
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        metrics, info = run_ek100_mir(cfg, ZeroShotModel(cfg))
    return {f"ek100_mir_{k}": v for k, v in {**metrics, **info}.items()}
