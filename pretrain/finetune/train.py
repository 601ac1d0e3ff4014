"""Fine-tuning entry point: ``egohod-finetune <ek100-mir|ek100-cls|egtea> encoder=... checkpoint=... data=DIR out=DIR``.

Hydra (``configs/finetune/<task>.yaml``; any ``key=value`` override), launchable as one process
or under torchrun (``torchrun --nproc_per_node=8 -m pretrain.finetune egtea ...``; DDP, NCCL on
GPU, gloo on CPU). Short aliases: ``encoder=`` (model.name), ``checkpoint=`` (model.checkpoint),
``data=`` (data.root), ``videos=`` (data.videos), ``out=`` (train.out).

Everything around the step is pretraining's: the run folder lock and overwrite/resume rules
(:func:`pretrain.train.claim_out_dir`), ``checkpoints/<step>/`` + ``last`` written by
:func:`pretrain.checkpointing.save_checkpoint` (the encoder in the EgoVideo layout via
:func:`egohod.models.checkpoint_io.checkpoint_payload`, so ``egohod.load_encoder`` reads it; the
heads ride along as the file's ``finetune`` entry), exact resume (optimizer, RNG of every rank,
data position), ``metrics.jsonl`` + offline wandb + tqdm (:class:`pretrain.runlog.RunLogger`),
SIGTERM/SIGUSR1 = checkpoint and stop. Each epoch ends with the evaluation, then a checkpoint;
the best evaluation's weights are also written to ``checkpoints/best/model.pt`` (+ ``best.json``).
Classification evaluation is shared over the ranks; EK-100 MIR's runs on rank 0 while the others wait.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from egohod.config import config_root
from egohod.fileio import FolderLockedError, atomic_write_text
from egohod.models.checkpoint_io import checkpoint_payload, split_checkpoint, write_checkpoint
from pretrain.checkpointing import (CHECKPOINT_FORMAT, capture_rng, find_last, load_latest, load_train_state,
                                    restore_rng, save_checkpoint)
from pretrain.config import rename_arguments
from pretrain.distributed import (DistInfo, all_gather_objects, any_rank, barrier, cleanup, init_distributed,
                                  reduce_scalar)
from pretrain.optim import lr_at, set_lr
from pretrain.runlog import RunLogger, read_metrics, trim_jsonl
from pretrain.step import batch_to_device, train_step
from pretrain.train import (_STOP_SIGNAL, OutputFolderError, Position, RankZeroFailed, claim_out_dir,
                            install_stop_handlers, main_decides, precision_setup)

from .config import TASKS, FinetuneConfig, register_configs, validate
from .tasks import DEFAULT_METRIC, FinetuneModel, classifier_outputs, make_loss_fn, param_groups, score_classifier

register_configs()

CONFIG_DIR = config_root() / "finetune"
REDUCTIONS = {
    "loss": "rank 0's micro-batch mean (MIR: max-margin over the gathered global batch, identical on all ranks)",
    "acc_*": "rank 0's top-1 training accuracy on its local batch (before mixup)",
    "lr": "base lr (layer-wise decay scales it per group)",
    "grad_norm": "global norm after the cross-rank reduction, before clipping",
    "clips_per_s": "sum over ranks", "data_wait_s": "max over ranks", "step_time_s": "max over ranks",
}


class _Run:
    """What the loop needs, built by :func:`setup`."""


def build_model(cfg: FinetuneConfig, info: DistInfo, num_classes: tuple[int, ...]):
    """(FinetuneModel, what the forward goes through (DDP or the model), no_sync factory)."""
    import contextlib

    import egohod

    torch.manual_seed(cfg.train.seed)
    encoder = egohod.create_model(cfg.model.name, checkpoint=cfg.model.checkpoint, num_frames=cfg.data.num_frames,
                                  seed=cfg.train.seed)
    with torch.random.fork_rng():
        torch.manual_seed(cfg.train.seed)  # heads: a function of the seed too
        model = FinetuneModel(encoder, num_classes, cfg.model.head_dropout)
    if cfg.model.grad_checkpointing:
        encoder.set_grad_checkpointing(True)
    model.to(info.device)
    if not info.distributed:
        return model, model, contextlib.nullcontext
    from torch.nn.parallel import DistributedDataParallel as DDP

    ddp = DDP(model, device_ids=[info.device] if info.device.type == "cuda" else None)
    return model, ddp, ddp.no_sync


def setup(cfg: FinetuneConfig, cfg_dict: dict, info: DistInfo) -> _Run:
    import egohod
    from egohod.data.datasets import ResumableSampler
    from egohod.data.transforms import VideoTransform

    from .data import EvalClips, TrainClips, load_task_data

    r = _Run()
    r.cfg, r.cfg_dict, r.info = cfg, cfg_dict, info
    d = cfg.data
    r.data = load_task_data(cfg.task, d.root, d.videos, d.split, d.relevancy_threshold)
    r.model, r.wrapped, r.no_sync = build_model(cfg, info, r.data.num_classes)
    spec = r.model.encoder.input_spec
    r.optimizer = torch.optim.AdamW(param_groups(r.model, cfg.optim.weight_decay, cfg.optim.layer_decay),
                                    lr=cfg.optim.lr, betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
    r.autocast, r.scaler, r.precision = precision_setup(cfg.train.precision, info.device)
    tf = VideoTransform(spec.image_size, spec.mean, spec.std, resize=spec.eval_resize, train=True,
                        train_short_side=d.resize_short, scale=(d.scale_min, 1.0), flip=d.flip)
    mir = cfg.task == "ek100-mir"
    ds = TrainClips(r.data.train, tf, d.num_frames, cfg.train.seed, r.data.captions if mir else None,
                    r.data.positives if mir else None, egohod.get_tokenizer(cfg.model.name) if mir else None)
    r.sampler = ResumableSampler(len(ds), info.world_size, info.rank, cfg.train.seed)
    workers = d.num_workers
    r.loader = torch.utils.data.DataLoader(ds, batch_size=d.batch_size, sampler=r.sampler, drop_last=True,
                                           num_workers=workers, pin_memory=d.pin_memory and info.device.type == "cuda",
                                           persistent_workers=workers > 0)
    r.eval_loader = None
    if r.data.test:
        test = r.data.test[:cfg.eval.limit] if cfg.eval.limit else r.data.test
        share = torch.utils.data.Subset(EvalClips(test, spec, d.num_frames, cfg.eval.num_clips, cfg.eval.num_crops),
                                        range(info.rank, len(test), info.world_size))  # every clip once over the ranks
        r.eval_loader = torch.utils.data.DataLoader(share, batch_size=cfg.eval.batch_size, num_workers=workers,
                                                    shuffle=False)
    r.steps_per_epoch = r.sampler.per_rank // d.batch_size // cfg.optim.accum_steps
    if r.steps_per_epoch == 0:
        raise ValueError(f"{len(ds)} training clips are too few for {info.world_size} ranks x "
                         f"data.batch_size={d.batch_size} x optim.accum_steps={cfg.optim.accum_steps}")
    r.total_steps = cfg.train.max_steps or cfg.train.epochs * r.steps_per_epoch
    cfg.optim.warmup_steps = cfg.optim.warmup_steps or int(round(cfg.optim.warmup_epochs * r.steps_per_epoch))
    r.geometry = {"world_size": info.world_size, "batch_size": d.batch_size, "accum_steps": cfg.optim.accum_steps,
                  "num_clips": len(ds), "seed": cfg.train.seed, "task": cfg.task}
    r.loss_fn = make_loss_fn(cfg.task, cfg.loss)
    r.metric = cfg.eval.metric or DEFAULT_METRIC[cfg.task]
    r.best = None  # {"value", "step", "epoch"}
    r.pos = Position()
    r.saved_step = -1
    if cfg.train.resume:
        resume(r)
    return r


# ----------------------------------------------------------------------------- checkpoints


def model_file(r: _Run, pos: Position) -> tuple[dict, dict]:
    """(encoder state dict, meta) of the current weights: the EgoVideo layout + the heads."""
    enc = r.model.encoder
    sd = {k: v.detach().cpu() for k, v in enc.state_dict().items()}
    meta = {"epoch": pos.epoch, "step": pos.step, "format": CHECKPOINT_FORMAT, "model_name": r.cfg.model.name,
            "input_spec": enc.input_spec.to_dict(), "model_config": enc.cfg.to_dict(), "config": r.cfg_dict,
            "finetune": {"task": r.cfg.task, "num_classes": list(r.data.num_classes),
                         "heads": {k: v.detach().cpu() for k, v in r.model.heads.state_dict().items()}}}
    return sd, meta


def save(r: _Run) -> None:
    """Checkpoint ``r.pos`` (every rank calls it; rank 0 writes)."""
    rngs = all_gather_objects(capture_rng(), r.info)
    if r.info.is_main:
        sd, meta = model_file(r, r.pos)
        state = {"format": CHECKPOINT_FORMAT, "position": vars(r.pos).copy(), "optimizer": r.optimizer.state_dict(),
                 "scaler": r.scaler.state_dict() if r.scaler is not None else None, "rng": rngs,
                 "geometry": r.geometry, "best": r.best}
        save_checkpoint(r.cfg.train.out, r.pos.step, checkpoint_payload(sd, meta), state,
                        OmegaConf.to_yaml(r.cfg_dict), keep_last=r.cfg.train.keep_last)
    r.saved_step = r.pos.step
    barrier(r.info)


def resume(r: _Run) -> None:
    loaded = {}

    def choose():
        try:
            ckpt, loaded["model"], loaded["state"] = load_latest(r.cfg.train.out)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"train.resume=true but {e}") from None
        return str(ckpt)

    ckpt = Path(main_decides(choose, r.info))
    mfile, state = (loaded["model"], loaded["state"]) if r.info.is_main else load_train_state(ckpt)
    if state.get("geometry") != r.geometry:
        raise ValueError(f"{ckpt}: exact resume needs the same task, world size, batch and data as the saved run; "
                         f"saved {state.get('geometry')}, now {r.geometry}")
    sd, meta = split_checkpoint(mfile, ckpt / "model.pt")
    r.model.encoder.load_state_dict(sd)
    r.model.heads.load_state_dict(meta["finetune"]["heads"])
    r.optimizer.load_state_dict(state["optimizer"])
    if r.scaler is not None and state["scaler"] is not None:
        r.scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"][r.info.rank])
    r.best = state.get("best")
    r.pos = Position(**state["position"])


def write_best(r: _Run, metrics: dict, epoch: int) -> None:
    """Rank 0: ``checkpoints/best/model.pt`` (+ ``best.json``) when ``metrics[r.metric]`` beats the best so far."""
    value = metrics.get(r.metric)
    if value is None:
        raise KeyError(f"eval.metric={r.metric!r} is not among the evaluation's metrics {sorted(metrics)}")
    if r.best is not None and value <= r.best["value"]:
        return
    r.best = {"value": float(value), "metric": r.metric, "step": r.pos.step, "epoch": epoch}
    if r.info.is_main:
        folder = Path(r.cfg.train.out) / "checkpoints" / "best"
        sd, meta = model_file(r, r.pos)
        write_checkpoint(folder / "model.pt", sd, {**meta, "best": r.best})
        atomic_write_text(folder / "best.json", json.dumps({**r.best, "metrics": metrics}, indent=1))


# ----------------------------------------------------------------------------- loop


def evaluate(r: _Run) -> dict:
    """The task's evaluation; its metrics on every rank. Classification: each rank scores its share
    of the test clips, rank 0 gathers the logits and runs the scorer. MIR: the protocol on rank 0."""
    cfg, info = r.cfg, r.info
    if cfg.task != "ek100-mir":
        mine = classifier_outputs(r.model, r.eval_loader, info.device, r.autocast, f"eval {cfg.task}",
                                  cfg.log.progress and info.is_main)
        parts = all_gather_objects(mine, info)

        def score():
            order = np.argsort(np.concatenate([p[2] for p in parts]), kind="stable")
            scores = [np.concatenate([p[0][k] for p in parts])[order] for k in range(len(mine[0]))]
            return score_classifier(cfg.task, scores, np.concatenate([p[1] for p in parts])[order])

        return main_decides(score, info)

    def run_eval():
        from pretrain.validate import validate_ek100_mir

        tmp = Path(cfg.train.out) / "checkpoints" / f".eval_model.{info.rank}.pt"
        write_checkpoint(tmp, *model_file(r, r.pos))
        try:
            return validate_ek100_mir(str(tmp), cfg.model.name, data=cfg.data.root, videos=cfg.data.videos,
                                      num_frames=cfg.data.num_frames, slow_frames=0, batch=cfg.eval.batch_size,
                                      limit=cfg.eval.limit, dual=False, device=info.device)
        finally:
            tmp.unlink(missing_ok=True)

    return main_decides(run_eval, info)


def run_epoch(r: _Run, log: RunLogger) -> None:
    cfg, info, accum, bs = r.cfg, r.info, r.cfg.optim.accum_steps, r.cfg.data.batch_size
    r.sampler.set_epoch(r.pos.epoch, start=r.pos.micro * bs)
    batches = iter(r.loader)
    while r.pos.micro // accum < r.steps_per_epoch and r.pos.step < r.total_steps:
        t0 = time.perf_counter()
        micro = [next(batches) for _ in range(accum)]
        wait = time.perf_counter() - t0
        lr = lr_at(r.pos.step, cfg.optim, r.total_steps)
        set_lr(r.optimizer, lr)
        res = train_step(r.wrapped, [batch_to_device(b, info.device) for b in micro], r.optimizer,
                         autocast=r.autocast, scaler=r.scaler, no_sync=r.no_sync, grad_clip=cfg.optim.grad_clip,
                         loss_fn=r.loss_fn)
        dt = time.perf_counter() - t0
        r.pos.step += 1
        r.pos.micro += accum
        if r.pos.step % cfg.train.log_every_steps == 0 or r.pos.step == r.total_steps:
            log.log_step(r.pos.step, {
                "epoch": r.pos.epoch, "loss": res.loss, **res.metrics, "lr": lr, "grad_norm": res.grad_norm,
                "skipped": res.skipped, "clips_per_s": reduce_scalar(accum * bs / dt, info, "sum"),
                "data_wait_s": reduce_scalar(wait, info, "max"), "step_time_s": reduce_scalar(dt, info, "max")})
        log.advance()
        if r.pos.step % cfg.train.save_every_steps == 0:
            save(r)
        if any_rank([bool(_STOP_SIGNAL)], info)[0]:
            if r.pos.step % cfg.train.save_every_steps != 0:
                save(r)
            log.write({"event": "stopped", "step": r.pos.step, "signal": str(_STOP_SIGNAL[0] if _STOP_SIGNAL else "other rank")})
            raise SystemExit(f"stopped at step {r.pos.step}; checkpoint saved, resume with train.resume=true")


def results_table(out: str, metric: str, best: dict | None) -> str:
    """Per-epoch evaluation metrics from ``metrics.jsonl``, the best row marked."""
    rows = [v for _, v in sorted(read_metrics(Path(out) / "metrics.jsonl", "val").items())]
    if not rows:
        return "no evaluation was run"
    keys = [k for k in rows[-1] if k not in ("event", "time", "step", "epoch") and isinstance(rows[-1][k], (int, float))]
    head = ["epoch", "step"] + keys
    lines = [head] + [[str(v.get("epoch")), str(v["step"])] + [f"{v[k]:.2f}" if isinstance(v.get(k), float) else str(v.get(k))
                                                               for k in keys] for v in rows]
    width = [max(len(line[i]) for line in lines) for i in range(len(head))]
    text = ["  ".join(c.rjust(w) for c, w in zip(line, width)) for line in lines]
    if best is not None:
        text.append(f"best {metric} = {best['value']:.2f} at epoch {best['epoch']} (step {best['step']}): "
                    f"{Path(out) / 'checkpoints' / 'best' / 'model.pt'}")
    return "\n".join(text)


def run(cfg: FinetuneConfig, cfg_dict: dict, info: DistInfo) -> _Run:
    with claim_out_dir(cfg, info):
        return _run_locked(cfg, cfg_dict, info)


def _run_locked(cfg: FinetuneConfig, cfg_dict: dict, info: DistInfo) -> _Run:
    out = Path(cfg.train.out)
    r = setup(cfg, cfg_dict, info)
    if cfg.train.resume and info.is_main:
        trim_jsonl(out / "metrics.jsonl", r.pos.step)
    if info.is_main:
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg_dict))
    log = RunLogger(out, info.is_main, cfg_dict, cfg.log, cfg.log.progress, r.total_steps, r.pos.step,
                    desc=f"finetune {cfg.task}", reductions=REDUCTIONS)
    log.write({"event": "resume" if cfg.train.resume else "start", "step": r.pos.step, "epoch": r.pos.epoch,
               "world_size": info.world_size, "device": str(info.device), "precision": r.precision,
               "steps_per_epoch": r.steps_per_epoch, "total_steps": r.total_steps,
               "train_clips": len(r.data.train), "test_clips": len(r.data.test),
               "trainable_params": sum(p.numel() for p in r.model.parameters() if p.requires_grad)})
    try:
        while r.pos.step < r.total_steps:
            run_epoch(r, log)
            if r.pos.micro // cfg.optim.accum_steps >= r.steps_per_epoch:
                finished = r.pos.epoch
                r.pos.epoch, r.pos.micro = r.pos.epoch + 1, 0
                if cfg.eval.every_epochs > 0 and ((finished + 1) % cfg.eval.every_epochs == 0
                                                  or r.pos.step >= r.total_steps):
                    metrics = evaluate(r)
                    log.log_val(r.pos.step, {"epoch": finished, **metrics})
                    write_best(r, metrics, finished)
                save(r)
        if r.saved_step != r.pos.step:
            save(r)
        log.write({"event": "end", "step": r.pos.step})
        if info.is_main:
            last = find_last(out)
            print("\n" + log.summary(str(last / "model.pt") if last else None), flush=True)
            print("\n" + results_table(cfg.train.out, r.metric, r.best), flush=True)
    finally:
        log.close()
    return r


# ----------------------------------------------------------------------------- command line

ALIASES = {"encoder": "model.name", "checkpoint": "model.checkpoint", "data": "data.root", "videos": "data.videos",
           "out": "train.out"}


def translate_argv(argv: list[str]) -> list[str]:
    """``<task> key=value ...`` -> Hydra arguments (``--config-name <task>`` + aliases expanded)."""
    if not argv or argv[0] not in TASKS:
        raise SystemExit(f"usage: egohod-finetune <{'|'.join(TASKS)}> encoder=NAME checkpoint=FILE data=DIR out=DIR "
                         "[key=value ...]; see docs/finetune.md")
    out = ["--config-name", argv[0].replace("-", "_")]
    for a in rename_arguments(argv[1:], "egohod-finetune"):
        key, sep, value = a.partition("=")
        out.append(f"{ALIASES[key]}={value}" if sep and key in ALIASES else a)
    return out


@hydra.main(config_path=str(CONFIG_DIR), config_name="egtea", version_base=None)
def hydra_main(dcfg: DictConfig) -> None:
    cfg: FinetuneConfig = OmegaConf.to_object(dcfg)
    try:
        validate(cfg)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    cfg_dict = OmegaConf.to_container(dcfg, resolve=True)
    info = init_distributed(cfg.train.device)
    install_stop_handlers()
    from egohod.benchmarks.readers import BenchmarkDataError

    try:
        torch.manual_seed(cfg.train.seed + info.rank)
        run(cfg, cfg_dict, info)
    except (FolderLockedError, OutputFolderError, BenchmarkDataError) as e:
        raise SystemExit(f"error: {e}") from None
    except RankZeroFailed:
        raise SystemExit(1) from None
    finally:
        cleanup()


def main() -> None:
    sys.argv = [sys.argv[0]] + translate_argv(sys.argv[1:])
    hydra_main()


if __name__ == "__main__":
    main()
