"""EgoVideo pretraining: dual-path video-text contrastive training (Hydra entry point).

Launch with any number of processes, on CPU (gloo) or GPU (NCCL)::

    python pretrain/train.py data.csv=hod.csv data.video_root=videos/            # one process
    torchrun --nproc_per_node=8 pretrain/train.py data.csv=... train.strategy=fsdp
    srun python pretrain/train.py ...                                              # Slurm tasks
    torchrun ... pretrain/train.py --config-name tiny data.csv=... train.resume=true

Outputs in ``train.out``: ``metrics.jsonl`` (see :mod:`pretrain.runlog`),
``checkpoints/<step>/`` + ``checkpoints/last`` (see :mod:`pretrain.checkpointing`),
``bad_samples_rank<r>.jsonl``, ``config.yaml`` and an offline wandb run. ``train.resume=true``
continues from the newest loadable checkpoint with the same step, data order, optimizer and RNG
state.

A run owns its folder: rank 0 holds :class:`egohod.fileio.FolderLock` on ``train.out`` from
before anything is written until the end, so a second run exits at once naming the holder; a
folder with checkpoints is refused unless ``train.resume=true`` or ``train.overwrite=true``;
``train.keep_last`` checkpoints are kept; under torchrun a worker whose agent died stops.
"""
from __future__ import annotations

import contextlib
import json
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from egohod.config import config_root
from egohod.data.datasets import TooManyBadSamples
from egohod.fileio import FolderLock, FolderLockedError, atomic_write_text
from egohod.models.checkpoint_io import checkpoint_payload, split_checkpoint
from pretrain.checkpointing import (CHECKPOINT_FORMAT, capture_rng, checkpoint_steps, find_last, load_latest,
                                    load_train_state, remove_partial, restore_rng, save_checkpoint)
from pretrain.config import PretrainConfig, TrainConfig, register_configs, rename_arguments, validate
from pretrain.distributed import (DistInfo, all_gather_objects, any_rank, barrier, broadcast_object, cleanup,
                                  init_distributed, reduce_scalar, parent_gone, start_parent_watchdog, under_torchrun_agent)
from pretrain.optim import build_optimizer, lr_at, set_lr
from pretrain.runlog import RunLogger, trim_jsonl
from pretrain.step import batch_to_device, train_step
from pretrain.validate import validate_ek100_mir, validate_retrieval

register_configs()

CONFIG_DIR = config_root() / "pretrain"  # the packaged configs (absolute: also `python -m`, egohod-pretrain)


@dataclass
class Position:
    """Where training stands: optimizer steps done, epoch, micro-batches consumed in the epoch."""

    step: int = 0
    epoch: int = 0
    micro: int = 0


# ----------------------------------------------------------------------------- precision


def precision_setup(precision: str, device: torch.device):
    """(autocast factory, GradScaler or None, resolved precision name)."""
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext, None, precision
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    autocast = lambda: torch.autocast(device.type, dtype=dtype)  # noqa: E731
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return autocast, scaler, precision


# ----------------------------------------------------------------------------- model


def build_model(cfg: PretrainConfig, info: DistInfo):
    """(EgoVideo, wrapped module for the forward, no_sync context factory)."""
    import egohod

    torch.manual_seed(cfg.train.seed)  # identical initialisation on every rank
    # the dual path (cotrain/adapter stages) runs with the model's slow_grad, also when DDP/FSDP call forward
    kw = {"adapter": True, "slow_grad": cfg.model.slow_grad} if cfg.model.stage != "contrastive" else {}
    model = egohod.create_model(cfg.model.name, checkpoint=cfg.model.checkpoint, num_frames=cfg.data.num_frames,
                                seed=cfg.train.seed, **kw)
    model.set_trainable(cfg.model.stage)
    if cfg.model.grad_checkpointing:
        model.set_grad_checkpointing(True)
    model.to(info.device)
    if cfg.model.compile:
        model.compile()
    if cfg.train.strategy == "fsdp":
        return model, *_wrap_fsdp(model, info)
    if not info.distributed:
        return model, model, contextlib.nullcontext
    from torch.nn.parallel import DistributedDataParallel as DDP

    # upstream's slow path (slow_grad=no_grad) leaves the adapters outside the autograd graph
    unused = cfg.model.stage != "contrastive" and cfg.model.slow_grad == "no_grad"
    ddp = DDP(model, device_ids=[info.device] if info.device.type == "cuda" else None, find_unused_parameters=unused)
    return model, ddp, ddp.no_sync


def _wrap_fsdp(model, info: DistInfo):
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(info.device.type, (info.world_size,))
    for tower in (model.visual, model.textual):
        for blk in tower.transformer.resblocks:
            if getattr(blk, "adapter", None) is not None:
                fully_shard(blk.adapter, mesh=mesh)  # the slow path calls it outside the block's forward
            fully_shard(blk, mesh=mesh)
    # the frozen scalar temperature cannot be sharded; it stays a plain replicated tensor
    fully_shard(model, mesh=mesh, ignored_params={model.logit_scale})

    @contextlib.contextmanager
    def no_sync():
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)

    return model, no_sync


# ----------------------------------------------------------------------------- checkpoints


def _state_options():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def save(cfg, cfg_dict, info, model, wrapped, optimizer, scaler, pos: Position, monitor, geometry: dict) -> None:
    """Checkpoint ``pos`` (collective: every rank calls it; rank 0 writes)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    sd = get_model_state_dict(wrapped, options=_state_options())
    osd = get_optimizer_state_dict(wrapped, optimizer, options=_state_options())
    rngs = all_gather_objects(capture_rng(), info)
    monitors = all_gather_objects(monitor.state_dict(), info)
    if info.is_main:
        model_file = checkpoint_payload(sd, {
            "epoch": pos.epoch, "step": pos.step, "format": CHECKPOINT_FORMAT,
            "model_name": cfg.model.name, "input_spec": model.input_spec.to_dict(),
            "model_config": model.cfg.to_dict(), "config": cfg_dict,
        })
        train_state = {"format": CHECKPOINT_FORMAT, "position": vars(pos).copy(), "optimizer": osd,
                       "scaler": scaler.state_dict() if scaler is not None else None, "rng": rngs,
                       "bad_samples": monitors, "geometry": geometry}
        save_checkpoint(cfg.train.out, pos.step, model_file, train_state, OmegaConf.to_yaml(cfg_dict),
                        keep_last=cfg.train.keep_last)
    barrier(info)


def resume(cfg, info, wrapped, optimizer, scaler, monitor, geometry: dict) -> Position:
    """Restore the newest loadable checkpoint of ``train.out``; returns its position.

    Rank 0 chooses (a damaged checkpoint is skipped with a warning naming the file, see
    :func:`pretrain.checkpointing.load_latest`); every rank restores that one.
    """
    from torch.distributed.checkpoint.state_dict import set_model_state_dict, set_optimizer_state_dict

    loaded = {}

    def choose():
        try:
            ckpt, loaded["model"], loaded["state"] = load_latest(cfg.train.out)
        except FileNotFoundError as e:
            raise FileNotFoundError(f"train.resume=true but {e}") from None
        return str(ckpt)

    ckpt = Path(main_decides(choose, info))
    model_file, state = (loaded["model"], loaded["state"]) if info.is_main else load_train_state(ckpt)
    if state["geometry"] != geometry:
        raise ValueError(f"{ckpt}: exact resume needs the same world size, batch and data as the saved run; "
                         f"saved {state['geometry']}, now {geometry}")
    sd, _ = split_checkpoint(model_file, ckpt / "model.pt")
    set_model_state_dict(wrapped, sd, options=_state_options())
    set_optimizer_state_dict(wrapped, optimizer, state["optimizer"], options=_state_options())
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    restore_rng(state["rng"][info.rank])
    monitor.load_state_dict(state["bad_samples"][info.rank])
    return Position(**state["position"])


# ----------------------------------------------------------------------------- the run folder


class OutputFolderError(RuntimeError):
    """``train.out`` holds an earlier run that this one would overwrite."""


class RankZeroFailed(RuntimeError):
    """Rank 0 failed a step every rank waits for (its own output has the reason)."""


def main_decides(fn, info: DistInfo):
    """``fn()`` on rank 0, its (small, picklable) result on every rank. An exception on rank 0 is
    raised there and as :class:`RankZeroFailed` on the other ranks, so no rank waits forever."""
    result, error = None, None
    if info.is_main:
        try:
            result = fn()
        except Exception as e:  # noqa: BLE001 - re-raised below, on every rank
            error = e
    shared = broadcast_object((result, None if error is None else f"{type(error).__name__}: {error}"), info)
    if error is not None:
        raise error
    if shared[1] is not None:
        raise RankZeroFailed(f"rank 0 stopped the run ({shared[1]})")
    return shared[0]


# files of a run besides checkpoints/ (deleted by train.overwrite=true)
RUN_FILES = ("metrics.jsonl", "config.yaml", "wandb_run_id", "bad_samples_rank*.jsonl", "grad_checksums_rank*.jsonl")


def prepare_out_dir(out: Path, t: TrainConfig) -> list[str]:
    """Check that this run may use ``out`` (call while holding its lock); returns notes to print.

    Removes temporary checkpoint folders a killed run left. Without ``train.resume``, a folder with
    checkpoints is refused unless ``train.overwrite=true``, which deletes them and the run's logs;
    logs of an earlier run that saved no checkpoint are replaced (so no step is logged twice).
    """
    import shutil

    steps = checkpoint_steps(out)
    if steps and not t.resume and not t.overwrite:
        raise OutputFolderError(
            f"train.out={out} already holds checkpoints (steps {', '.join(map(str, steps))}) of an earlier run: "
            "pass train.resume=true to continue it, or train.overwrite=true to delete it and start again, "
            "or choose another train.out")
    notes = [f"removed temporary checkpoint folder {out / 'checkpoints' / n} left by a killed run"
             for n in remove_partial(out)]
    if t.resume:
        return notes
    old = [p for pattern in RUN_FILES for p in sorted(out.glob(pattern))]
    if t.overwrite and (out / "checkpoints").exists():
        shutil.rmtree(out / "checkpoints")
        notes.append(f"train.overwrite=true: deleted {out / 'checkpoints'} (steps {steps or 'none complete'})")
    for p in old:
        p.unlink()
    if old:
        why = "train.overwrite=true" if t.overwrite else "no checkpoint of the earlier run to resume"
        notes.append(f"{why}: replaced the earlier run's {', '.join(p.name for p in old)} in {out}")
    return notes


@contextlib.contextmanager
def claim_out_dir(cfg: PretrainConfig, info: DistInfo):
    """``with claim_out_dir(cfg, info):`` rank 0 locks ``train.out`` and prepares it
    (:func:`prepare_out_dir`) before any rank writes there, and releases the lock on exit. Raises
    :class:`FolderLockedError` naming the holder's PID and host when another run owns the folder."""
    out = Path(cfg.train.out)
    held: list[FolderLock] = []

    def claim():
        lock = FolderLock(out, what="pretrain/train.py")
        try:
            lock.acquire()
        except FolderLockedError as e:
            raise FolderLockedError(f"train.out: {e}") from None
        try:
            for note in prepare_out_dir(out, cfg.train):
                print(f"note: {note}", file=sys.stderr, flush=True)
        except BaseException:
            lock.release()
            raise
        held.append(lock)

    main_decides(claim, info)
    try:
        yield
    finally:
        for lock in held:
            lock.release()


# ----------------------------------------------------------------------------- loop helpers

_STOP_SIGNAL: list = []  # set by SIGUSR1/SIGTERM (Slurm preemption warning) or the launcher watchdog


def install_stop_handlers() -> None:
    """On SIGUSR1/SIGTERM finish the current step, checkpoint and exit (resume with train.resume=true)."""
    def handler(signum, frame):
        _STOP_SIGNAL.append(signum)

    for sig in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(sig, handler)




def grad_checksum(model) -> dict:
    s = sq = 0.0
    for p in model.parameters():
        if p.grad is not None:
            g = p.grad.detach().double()
            s += float(g.sum())
            sq += float((g * g).sum())
    return {"sum": s, "sumsq": sq}


class _Run:
    """What the loop needs, built once by :func:`setup`."""

    cfg: PretrainConfig
    cfg_dict: dict
    info: DistInfo
    model: torch.nn.Module  # the EgoVideo module (unwrapped)
    wrapped: torch.nn.Module  # what the forward goes through: DDP, FSDP-sharded model, or the model
    no_sync: object  # context factory suspending the gradient reduction
    optimizer: torch.optim.Optimizer
    autocast: object
    scaler: object  # torch.amp.GradScaler or None
    precision: str
    dataset: object
    sampler: object
    loader: object
    val_loader: object
    steps_per_epoch: int
    total_steps: int
    geometry: dict  # what an exact resume needs unchanged
    monitor: object
    bad_log: object  # this rank's bad_samples_rank<r>.jsonl
    pos: Position
    val_done: set  # steps whose validation metrics.jsonl already holds (after a resume)


def setup(cfg: PretrainConfig, cfg_dict: dict, info: DistInfo) -> _Run:
    import egohod
    from egohod.data.datasets import BadSampleMonitor, ResumableSampler

    from pretrain.data import build_dataset, build_loader, load_records

    r = _Run()
    r.cfg, r.cfg_dict, r.info = cfg, cfg_dict, info
    out = Path(cfg.train.out)
    out.mkdir(parents=True, exist_ok=True)
    r.model, r.wrapped, r.no_sync = build_model(cfg, info)
    r.optimizer = build_optimizer(r.model, cfg.optim)
    r.autocast, r.scaler, r.precision = precision_setup(cfg.train.precision, info.device)
    tok = egohod.get_tokenizer(cfg.model.name)
    train_recs, val_recs = load_records(cfg.data, cfg.train.seed)
    r.dataset = build_dataset(train_recs, cfg.data, r.model.input_spec, tok, True, cfg.train.seed)
    r.sampler = ResumableSampler(len(r.dataset), info.world_size, info.rank, cfg.train.seed)
    r.loader = build_loader(r.dataset, r.sampler, cfg.data, cfg.data.batch_size, info.device)
    r.val_loader = None
    if val_recs and cfg.val.every_epochs > 0:
        vds = build_dataset(val_recs, cfg.data, r.model.input_spec, tok, False, cfg.train.seed)
        vs = ResumableSampler(len(vds), info.world_size, info.rank, cfg.train.seed, shuffle=False)
        r.val_loader = build_loader(vds, vs, cfg.data, min(cfg.val.batch_size, vs.per_rank), info.device)
    r.steps_per_epoch = r.sampler.per_rank // cfg.data.batch_size // cfg.optim.accum_steps
    if r.steps_per_epoch == 0:
        raise ValueError(f"{len(r.dataset)} training clips are too few for {info.world_size} ranks x "
                         f"data.batch_size={cfg.data.batch_size} x optim.accum_steps={cfg.optim.accum_steps}")
    r.total_steps = cfg.train.max_steps or cfg.train.epochs * r.steps_per_epoch
    r.geometry = {"world_size": info.world_size, "batch_size": cfg.data.batch_size,
                  "accum_steps": cfg.optim.accum_steps, "num_clips": len(r.dataset), "seed": cfg.train.seed}
    r.bad_log = bad_log = (out / f"bad_samples_rank{info.rank}.jsonl").open("a", buffering=1)
    r.monitor = BadSampleMonitor(cfg.data.max_bad_fraction, cfg.data.bad_min_attempts,
                                 log=lambda f: _report_bad(bad_log, f, info.rank), raise_on_exceed=False)
    r.pos = Position()
    r.val_done = set()
    if cfg.train.resume:
        r.pos = resume(cfg, info, r.wrapped, r.optimizer, r.scaler, r.monitor, r.geometry)
    return r


def _report_bad(f, failure, rank: int) -> None:
    f.write(json.dumps({"rank": rank, **failure.to_dict()}) + "\n")
    print(f"[rank {rank}] bad sample replaced: {failure.path}: {failure.reason} ({failure.source})",
          file=sys.stderr, flush=True)


def run_epoch(r: _Run, log: RunLogger) -> None:
    """Train from ``r.pos`` to the end of its epoch (or ``total_steps``)."""
    cfg, info, accum, bs = r.cfg, r.info, r.cfg.optim.accum_steps, r.cfg.data.batch_size
    r.sampler.set_epoch(r.pos.epoch, start=r.pos.micro * bs)
    batches = iter(r.loader)
    gsum = open(Path(cfg.train.out) / f"grad_checksums_rank{info.rank}.jsonl", "a") if cfg.train.grad_checksum else None
    while r.pos.micro // accum < r.steps_per_epoch and r.pos.step < r.total_steps:
        t0 = time.perf_counter()
        micro = [next(batches) for _ in range(accum)]
        wait = time.perf_counter() - t0
        for b in micro:
            r.monitor.update(len(b["index"]), b["failures"])
        too_many = r.monitor.exceeded()
        lr = lr_at(r.pos.step, cfg.optim, r.total_steps)
        set_lr(r.optimizer, lr)
        res = train_step(r.wrapped, [batch_to_device(b, info.device) for b in micro], r.optimizer,
                         autocast=r.autocast, scaler=r.scaler, no_sync=r.no_sync, grad_clip=cfg.optim.grad_clip)
        if gsum is not None:
            gsum.write(json.dumps({"step": r.pos.step + 1, **grad_checksum(r.model)}) + "\n")
            gsum.flush()
        dt = time.perf_counter() - t0
        r.pos.step += 1
        r.pos.micro += accum
        if r.pos.step % cfg.train.log_every_steps == 0 or r.pos.step == r.total_steps:
            log.log_step(r.pos.step, {
                "epoch": r.pos.epoch, "loss": res.loss, "acc_v2t": res.acc_v2t, "acc_t2v": res.acc_t2v, "lr": lr,
                "grad_norm": res.grad_norm, "skipped": res.skipped,
                "clips_per_s": reduce_scalar(accum * bs / dt, info, "sum"),
                "data_wait_s": reduce_scalar(wait, info, "max"), "step_time_s": reduce_scalar(dt, info, "max"),
                "bad_samples": int(reduce_scalar(r.monitor.failed, info, "sum")),
                "bad_fraction": reduce_scalar(r.monitor.failed, info, "sum") / max(1.0, reduce_scalar(r.monitor.attempts, info, "sum")),
            })
        log.advance()
        if r.pos.step % cfg.train.save_every_steps == 0:
            save(cfg, r.cfg_dict, info, r.model, r.wrapped, r.optimizer, r.scaler, r.pos, r.monitor, r.geometry)
        # one all-reduce: every rank stops together (bad data on any rank, or a stop signal)
        any_bad, any_signal = any_rank([too_many is not None, bool(_STOP_SIGNAL)], info)
        if any_bad:
            raise TooManyBadSamples(too_many or "another rank exceeded data.max_bad_fraction (its log has the failures)")
        if any_signal:
            if r.pos.step % cfg.train.save_every_steps != 0:
                save(cfg, r.cfg_dict, info, r.model, r.wrapped, r.optimizer, r.scaler, r.pos, r.monitor, r.geometry)
            why = _STOP_SIGNAL[0] if _STOP_SIGNAL else ("launcher died" if parent_gone() else "other rank")
            log.write({"event": "stopped", "step": r.pos.step, "signal": why})
            raise SystemExit(f"stopped ({why}) at step {r.pos.step}; checkpoint saved, resume with train.resume=true")
    if gsum is not None:
        gsum.close()


def validate_epoch(r: _Run, log: RunLogger, epoch: int) -> None:
    """Held-out retrieval (all ranks) and, when configured, EK-100 MIR of a checkpoint (rank 0)."""
    cfg, info = r.cfg, r.info
    if r.pos.step in r.val_done:  # logged before the interruption this run resumed from
        if info.is_main:
            print(f"validation at step {r.pos.step} is already in metrics.jsonl: not repeated", file=sys.stderr)
        return
    dual = cfg.model.stage != "contrastive"
    metrics = {}
    if r.val_loader is not None:
        metrics.update(validate_retrieval(r.model, r.val_loader, info.device, dual, r.autocast, cfg.val.max_clips))
    if cfg.val.ek100_mir_dir:
        if r.pos.step % cfg.train.save_every_steps != 0:  # MIR reads the weights from a checkpoint
            save(cfg, r.cfg_dict, info, r.model, r.wrapped, r.optimizer, r.scaler, r.pos, r.monitor, r.geometry)
        if info.is_main:
            ckpt = Path(cfg.train.out) / "checkpoints" / str(r.pos.step) / "model.pt"
            metrics.update(validate_ek100_mir(
                str(ckpt), cfg.model.name, data=cfg.val.ek100_mir_dir, videos=cfg.val.ek100_mir_videos,
                num_frames=cfg.data.num_frames, slow_frames=cfg.data.slow_frames, batch=cfg.val.batch_size,
                limit=cfg.val.ek100_mir_limit, dual=dual, device=info.device))
        barrier(info)
    if metrics:
        log.log_val(r.pos.step, {"epoch": epoch, **metrics})


def run(cfg: PretrainConfig, cfg_dict: dict, info: DistInfo) -> Position:
    with claim_out_dir(cfg, info):
        return _run_locked(cfg, cfg_dict, info)


def _run_locked(cfg: PretrainConfig, cfg_dict: dict, info: DistInfo) -> Position:
    out = Path(cfg.train.out)
    r = setup(cfg, cfg_dict, info)
    if cfg.train.resume:  # what the interrupted run logged past the checkpoint is trained again
        if info.is_main:
            trim_jsonl(out / "metrics.jsonl", r.pos.step)
        trim_jsonl(out / f"grad_checksums_rank{info.rank}.jsonl", r.pos.step)
    if info.is_main:
        atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(cfg_dict))
    log = RunLogger(cfg.train.out, info.is_main, cfg_dict, cfg.log, cfg.log.progress, r.total_steps, r.pos.step)
    r.val_done = set(broadcast_object(sorted(log.logged["val"]), info))
    if cfg.train.resume:
        log.write({"event": "resume", "step": r.pos.step, "epoch": r.pos.epoch, "micro": r.pos.micro})
    log.write({"event": "start", "world_size": info.world_size, "launcher": info.launcher, "device": str(info.device),
               "precision": r.precision, "strategy": cfg.train.strategy if info.distributed else "single",
               "steps_per_epoch": r.steps_per_epoch, "total_steps": r.total_steps,
               "trainable_params": sum(p.numel() for p in r.model.parameters() if p.requires_grad)})
    try:
        while r.pos.step < r.total_steps:
            run_epoch(r, log)
            if r.pos.micro // cfg.optim.accum_steps >= r.steps_per_epoch:
                finished = r.pos.epoch
                r.pos.epoch, r.pos.micro = r.pos.epoch + 1, 0
                if cfg.val.every_epochs > 0 and (finished + 1) % cfg.val.every_epochs == 0:
                    validate_epoch(r, log, finished)
        if cfg.train.save_at_end and r.pos.step % cfg.train.save_every_steps != 0:
            save(cfg, r.cfg_dict, info, r.model, r.wrapped, r.optimizer, r.scaler, r.pos, r.monitor, r.geometry)
        log.write({"event": "end", "step": r.pos.step, "bad_samples": r.monitor.failed})
        if info.is_main:
            last = find_last(cfg.train.out)
            print("\n" + log.summary(str(last / "model.pt") if last else None), flush=True)
    finally:
        log.close()
        r.bad_log.close()
    return r.pos


@hydra.main(config_path=str(CONFIG_DIR), config_name="default", version_base=None)
def hydra_main(dcfg: DictConfig) -> None:
    cfg: PretrainConfig = OmegaConf.to_object(dcfg)
    validate(cfg)
    cfg_dict = OmegaConf.to_container(dcfg, resolve=True)
    if cfg.train.orphan_timeout_s > 0 and under_torchrun_agent():
        start_parent_watchdog(lambda: _STOP_SIGNAL.append("launcher died"), exit_after_s=cfg.train.orphan_timeout_s)
    info = init_distributed(cfg.train.device)
    install_stop_handlers()
    try:
        torch.manual_seed(cfg.train.seed + info.rank)
        run(cfg, cfg_dict, info)
    except (FolderLockedError, OutputFolderError) as e:
        raise SystemExit(f"error: {e}") from None
    except RankZeroFailed:
        raise SystemExit(1) from None  # rank 0 reports the reason
    finally:
        cleanup()


def main() -> None:
    """``egohod-pretrain`` / ``python pretrain/train.py``: Hydra, after the old key names
    (``train.out_dir=``) are rewritten (:func:`pretrain.config.rename_arguments`)."""
    sys.argv[1:] = rename_arguments(sys.argv[1:], "pretrain/train.py")
    hydra_main()


if __name__ == "__main__":
    main()
