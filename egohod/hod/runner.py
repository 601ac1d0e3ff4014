"""Sharded, resumable execution of the HOD pipeline and the merge step.

Layout of ``out/``::

    config.yaml                               resolved config of the first run
    shards/<i>-of-<n>/part-000000.jsonl ...   records of finished clips, each part written atomically
    shards/<i>-of-<n>/done.json               written when the shard finished (counts)
    hod.csv                                   merge: what the pretraining loader reads (ok clips)
    hod_records.jsonl                         merge: every clip (detections, dynamics, status, reason)
    failures.csv                              merge: key, video, stage, reason of failed clips
    summary.json                              merge: counts per status / stage

Shard ``i`` of ``n`` owns the clips whose row index ``% n == i`` (deterministic, balanced). With no
``shard`` set, ``$SLURM_ARRAY_TASK_ID - $SLURM_ARRAY_TASK_MIN`` and ``$SLURM_ARRAY_TASK_COUNT`` are
used. A rerun skips clips already in a part file and shards with ``done.json``; a killed run
loses at most the clips of the part being filled, which the rerun redoes (nothing duplicated).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from omegaconf import DictConfig, OmegaConf

from ..fileio import atomic_write_text
from .clips import load_clips
from .types import Clip


# ----------------------------------------------------------------------------- io helpers
def read_jsonl(path: Path) -> list[dict]:
    out = []
    with Path(path).open(encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{n}: not valid JSON ({e})") from None
    return out


# ----------------------------------------------------------------------------- shards
def resolve_shard(shard: int | None, num_shards: int | None, env=os.environ) -> tuple[int, int]:
    if shard is None and env.get("SLURM_ARRAY_TASK_ID") not in (None, ""):
        shard = int(env["SLURM_ARRAY_TASK_ID"]) - int(env.get("SLURM_ARRAY_TASK_MIN") or 0)
        if num_shards is None and env.get("SLURM_ARRAY_TASK_COUNT"):
            num_shards = int(env["SLURM_ARRAY_TASK_COUNT"])
    shard = 0 if shard is None else int(shard)
    num_shards = 1 if num_shards is None else int(num_shards)
    if num_shards < 1 or not 0 <= shard < num_shards:
        raise ValueError(f"need 0 <= shard < num_shards, got shard={shard} num_shards={num_shards}")
    return shard, num_shards


def shard_clips(clips: list[Clip], shard: int, num_shards: int) -> list[Clip]:
    return [c for c in clips if c.row % num_shards == shard]


def shard_dir(out: Path, shard: int, num_shards: int) -> Path:
    return Path(out) / "shards" / f"{shard:05d}-of-{num_shards:05d}"


def finished_keys(sdir: Path) -> set[str]:
    keys: set[str] = set()
    for p in sorted(sdir.glob("part-*.jsonl")):
        for r in read_jsonl(p):
            keys.add(r["key"])
    return keys


class PartWriter:
    """Buffers records and writes them as numbered part files, each atomically."""

    def __init__(self, sdir: Path, flush_every: int):
        self.sdir = sdir
        self.flush_every = max(1, int(flush_every))
        self.buf: list[dict] = []
        nums = [int(p.stem.split("-")[1]) for p in sdir.glob("part-*.jsonl")]
        self.next = max(nums) + 1 if nums else 0
        self.written = 0

    def add(self, records: Iterable[dict]) -> None:
        self.buf.extend(records)
        if len(self.buf) >= self.flush_every:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.buf)
        atomic_write_text(self.sdir / f"part-{self.next:06d}.jsonl", text)
        self.next += 1
        self.written += len(self.buf)
        self.buf = []


def batches(items: list, n: int) -> Iterator[list]:
    for i in range(0, len(items), max(1, n)):
        yield items[i: i + n]


# ----------------------------------------------------------------------------- run
# settings that may change between a run and its resumption without changing any record
VOLATILE = {"progress", "executor", "batch_size", "flush_every", "ray", "shard", "num_shards", "out", "limit"}


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def check_resumable(sdir: Path, cfg: DictConfig) -> None:
    """Refuse to resume a shard written with settings that change the records."""
    old_path = sdir / "config.yaml"
    if not old_path.exists():
        return
    old = OmegaConf.to_container(OmegaConf.load(old_path), resolve=True)
    new = OmegaConf.to_container(cfg, resolve=True)
    a = {k: v for k, v in _flat(old).items() if k.split(".")[0] not in VOLATILE}
    b = {k: v for k, v in _flat(new).items() if k.split(".")[0] not in VOLATILE}
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff[:5])
        raise ValueError(f"{sdir} was written with different settings ({shown}); resuming would mix records. "
                         f"Use a new out= folder, or rerun with the original settings")


def run_shard(cfg: DictConfig) -> dict:
    """Process this process's shard; returns its counts (also in ``done.json``)."""
    out = Path(cfg.out)
    shard, n = resolve_shard(cfg.shard, cfg.num_shards)
    clips = load_clips(cfg.clips, cfg.clips_format, cfg.ego4d_window, cfg.limit)
    sdir = shard_dir(out, shard, n)
    sdir.mkdir(parents=True, exist_ok=True)
    check_resumable(sdir, cfg)
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    if not (out / "config.yaml").exists():
        atomic_write_text(out / "config.yaml", resolved)
    atomic_write_text(sdir / "config.yaml", resolved)
    done = sdir / "done.json"
    mine = shard_clips(clips, shard, n)
    clip_set = hashlib.sha1("\n".join(sorted(c.key for c in mine)).encode()).hexdigest()
    if done.exists():
        counts = json.loads(done.read_text())
        if counts.get("clip_set") == clip_set:
            print(f"shard {shard}/{n}: already done ({counts.get('clips', '?')} clips); nothing to do")
            return counts
        print(f"shard {shard}/{n}: the clip list changed since this shard finished; processing the new clips")
        done.unlink()
    have = finished_keys(sdir)
    todo = [c for c in mine if c.key not in have]
    print(f"shard {shard}/{n}: {len(mine)} clips, {len(have)} already finished, {len(todo)} to do")
    writer = PartWriter(sdir, cfg.flush_every)
    t0 = time.perf_counter()
    if cfg.executor == "local":
        _run_local(todo, cfg, writer)
    elif cfg.executor == "ray":
        from .ray_executor import run_ray

        run_ray(todo, cfg, writer)
    else:
        raise ValueError(f"executor must be 'local' or 'ray', got {cfg.executor!r}")
    writer.flush()
    records = [r for p in sorted(sdir.glob("part-*.jsonl")) for r in read_jsonl(p)]
    keys = [r["key"] for r in records]
    if len(set(keys)) != len(keys) or set(keys) != {c.key for c in mine}:
        raise RuntimeError(f"shard {shard}/{n}: part files hold {len(set(keys))} distinct of {len(keys)} records "
                           f"for {len(mine)} clips; refusing to mark it done")
    counts = count_records(records)
    counts.update(shard=shard, num_shards=n, seconds=round(time.perf_counter() - t0, 3), clip_set=clip_set)
    atomic_write_text(done, json.dumps(counts, indent=1))
    print(format_counts(counts, f"shard {shard}/{n}"))
    return counts


def _run_local(todo: list[Clip], cfg: DictConfig, writer: PartWriter) -> None:
    from tqdm import tqdm

    from .pipeline import PipelineContext, process_batch

    if not todo:
        return
    ctx = PipelineContext.from_config(cfg)
    try:
        with tqdm(total=len(todo), desc="hod", unit="clip", disable=not cfg.progress) as bar:
            for batch in batches(todo, cfg.batch_size):
                recs = process_batch(batch, ctx)
                writer.add(recs)
                bar.update(len(batch))
                bar.set_postfix(failed=sum(r["status"] != "ok" for r in recs))
    finally:
        writer.flush()
        ctx.narrator.close()


def count_records(records: list[dict]) -> dict:
    status = Counter(r["status"] for r in records)
    stages = Counter(r["stage"] for r in records if r["status"] != "ok")
    return {"clips": len(records), "ok": status.get("ok", 0), "failed": len(records) - status.get("ok", 0),
            "failed_by_stage": dict(sorted(stages.items()))}


def format_counts(c: dict, title: str) -> str:
    lines = [f"{title}: {c['clips']} clips, {c['ok']} ok, {c['failed']} failed"]
    lines += [f"  failed at {k:9s} {v}" for k, v in c.get("failed_by_stage", {}).items()]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- merge
def merge(out: str | Path, allow_incomplete: bool = False) -> dict:
    """Join all shards into ``hod.csv`` (with the original ``narration`` column), ``hod_records.jsonl``,
    ``failures.csv`` and ``summary.json``. Refuses unfinished shards unless ``allow_incomplete``."""
    out = Path(out)
    dirs = sorted((out / "shards").glob("*-of-*"))
    if not dirs:
        raise FileNotFoundError(f"{out / 'shards'}: no shard folders; run `egohod hod run out={out}` first")
    ns = {int(d.name.split("-of-")[1]) for d in dirs}
    if len(ns) != 1:
        raise ValueError(f"{out}: shard folders from different num_shards {sorted(ns)}; use one output folder per layout")
    n = ns.pop()
    present = {int(d.name.split("-of-")[0]) for d in dirs}
    unfinished = sorted(set(range(n)) - {i for i in present if (shard_dir(out, i, n) / "done.json").exists()})
    if unfinished and not allow_incomplete:
        raise RuntimeError(f"{out}: shard(s) {unfinished} of {n} are not done; rerun them or pass allow_incomplete=true")
    records = [r for d in dirs for p in sorted(d.glob("part-*.jsonl")) for r in read_jsonl(p)]
    keys = Counter(r["key"] for r in records)
    dup = [k for k, v in keys.items() if v > 1]
    if dup:
        raise RuntimeError(f"{out}: clip key(s) {dup[:5]} appear in more than one record")
    records.sort(key=lambda r: r["row"])
    cfg = OmegaConf.load(out / "config.yaml") if (out / "config.yaml").exists() else None
    with_orig = bool(cfg.get("text_includes_original", False)) if cfg is not None else False

    ok = [r for r in records if r["status"] == "ok"]
    atomic_write_text(out / "hod.csv", _csv(ok, with_orig))
    atomic_write_text(out / "hod_records.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["key", "video_id", "start_second", "end_second", "stage", "reason"])
    for r in records:
        if r["status"] != "ok":
            w.writerow([r["key"], r["video_id"], r["start_second"], r["end_second"], r["stage"], r["reason"]])
    atomic_write_text(out / "failures.csv", buf.getvalue())
    summary = count_records(records)
    summary.update(num_shards=n, unfinished_shards=unfinished,
                   top_reasons=Counter((r["reason"] or "")[:120] for r in records if r["status"] != "ok").most_common(10))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    print(format_counts(summary, f"merged {out}"))
    return summary


def _csv(records: list[dict], text_includes_original: bool) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = ["video_id", "start_second", "end_second", "text", "dataset", "uid", "narration"]
    w.writerow(cols)
    for r in records:
        texts = list(r["narrations"])
        if text_includes_original and r["narration"] and r["narration"] not in texts:
            texts.append(r["narration"])
        row = [r["video_id"], f"{r['start_second']:.3f}", f"{r['end_second']:.3f}", repr(texts), r["dataset"],
               r["uid"] or r["key"]]
        w.writerow(row + [r["narration"]])
    return buf.getvalue()
