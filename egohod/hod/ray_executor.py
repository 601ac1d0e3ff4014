"""Ray Data executor: the same per-batch function (:func:`egohod.hod.pipeline.process_batch`) run by
a pool of Ray actors, each holding its own detector and narrator (``executor=ray``).

Records stream back to the driver, which writes them into the shard's part files exactly as the
local executor does, so sharding, resume and merge are unchanged. ``ray.address=null`` starts a
local Ray; ``ray.address=auto`` joins a running cluster (e.g. one started inside a Slurm
allocation). ``ray.concurrency`` actors run at once; ``ray.num_gpus_per_actor`` reserves GPUs for
the ``100doh`` detector.
"""
from __future__ import annotations

import json

import numpy as np
from omegaconf import DictConfig, OmegaConf

from .types import Clip


class HodBatchWorker:
    """A Ray Data callable class: clips (JSON strings) in, records (JSON strings) out."""

    def __init__(self, cfg: dict):
        from .pipeline import PipelineContext

        self.ctx = PipelineContext.from_config(OmegaConf.create(cfg))

    def __call__(self, batch: dict) -> dict:
        from .pipeline import process_batch

        clips = [Clip.from_dict(json.loads(s)) for s in batch["clip"]]
        recs = process_batch(clips, self.ctx)
        return {"record": np.array([json.dumps(r, ensure_ascii=False) for r in recs], dtype=object)}


def run_ray(todo: list[Clip], cfg: DictConfig, writer) -> None:
    import ray
    from tqdm import tqdm

    if not todo:
        return
    started = False
    if not ray.is_initialized():
        kw = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
        if cfg.ray.address:
            kw["address"] = cfg.ray.address
        elif cfg.ray.num_cpus:
            kw["num_cpus"] = int(cfg.ray.num_cpus)
        ray.init(**kw)
        started = True
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        ds = ray.data.from_items([{"clip": json.dumps(c.to_dict())} for c in todo])
        ds = ds.map_batches(HodBatchWorker, fn_constructor_kwargs={"cfg": OmegaConf.to_container(cfg, resolve=True)},
                            batch_size=int(cfg.batch_size), concurrency=int(cfg.ray.concurrency),
                            num_gpus=float(cfg.ray.num_gpus_per_actor) or None, batch_format="numpy")
        with tqdm(total=len(todo), desc="hod[ray]", unit="clip", disable=not cfg.progress) as bar:
            for batch in ds.iter_batches(batch_size=int(cfg.flush_every), batch_format="numpy"):
                recs = [json.loads(s) for s in batch["record"]]
                writer.add(recs)
                bar.update(len(recs))
    finally:
        writer.flush()
        if started:
            ray.shutdown()
