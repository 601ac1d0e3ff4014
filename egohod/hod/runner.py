"""Sharded, resumable execution of the HOD pipeline and the merge step.

Layout of ``out/``::

    config.yaml                               resolved config of the first run
    shards/<i>-of-<n>/part-000000.jsonl ...   records of finished clips, each part written atomically
    shards/<i>-of-<n>/done.json               written when the shard finished (counts)
    shards/<i>-of-<n>/.lock                   held by the run (or renarrate) working on the shard
    shards/<i>-of-<n>/renarrate.tmp/          a re-narration being staged (swapped in when complete)
    hod.csv                                   merge: what the pretraining loader reads (ok clips)
    hod_records.jsonl                         merge: every clip (detections, dynamics, status, reason)
    failures.csv                              merge: key, video, stage, reason of failed clips
    summary.json                              merge: counts per status / stage

Shard ``i`` of ``n`` owns the clips whose row index ``% n == i`` (deterministic, balanced). With no
``shard`` set, ``$SLURM_ARRAY_TASK_ID - $SLURM_ARRAY_TASK_MIN`` and ``$SLURM_ARRAY_TASK_COUNT`` are
used. A rerun skips clips already in a part file and shards with ``done.json``; a killed run
loses at most the clips of the part being filled, which the rerun redoes (nothing duplicated).

Failed clips keep their record (stage + reason) and are reported with the command that retries
them: ``retry=failed`` re-runs only those; each new record carries ``attempt`` n + 1 and
supersedes the failed one, and the successful records stay byte for byte. When the narrator
cannot be reached for ``max_transport_failures`` clips in a row the shard stops unfinished
without recording those clips (:class:`NarratorUnavailableError`); a rerun picks them up.
Settings marked transport-only in :mod:`egohod.hod.config` may change between runs; any other
change is refused (:class:`IncompatibleOutputError`).
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shlex
import time
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from omegaconf import DictConfig, OmegaConf

from ..fileio import FolderLock, atomic_write_text
from .clips import load_clips
from .types import Clip, jsonable


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


def part_files(sdir: Path) -> list[Path]:
    return sorted(Path(sdir).glob("part-*.jsonl"))


def _attempt(r: dict) -> int:
    return int(r.get("attempt", 1))


def latest_records(paths: Iterable[Path]) -> dict[str, dict]:
    """The newest record of every clip in ``paths``: a retried clip's record (``attempt`` n + 1)
    supersedes the failed one it replaces; two records of one clip with the same attempt are an
    error (the part files were mixed up)."""
    out: dict[str, dict] = {}
    where: dict[str, Path] = {}
    for p in paths:
        for r in read_jsonl(p):
            k, old = r["key"], out.get(r["key"])
            if old is None or _attempt(r) > _attempt(old):
                out[k], where[k] = r, p
            elif _attempt(r) == _attempt(old):
                raise RuntimeError(f"clip {k!r} has two records of attempt {_attempt(r)} ({where[k]} and {p}); "
                                   f"the part files of this folder were mixed up")
    return out


def compact_parts(sdir: Path) -> int:
    """Drop superseded records (failed attempts a retry replaced) from the part files; other lines
    are kept byte for byte. A killed retry leaves both versions, which :func:`latest_records` reads
    correctly; this only tidies. Returns the number of lines dropped."""
    paths = part_files(sdir)
    latest = {k: _attempt(r) for k, r in latest_records(paths).items()}
    dropped = 0
    for p in paths:
        lines = p.read_text(encoding="utf-8").splitlines(keepends=True)
        keep = [ln for ln in lines if not ln.strip() or _attempt(r := json.loads(ln)) >= latest[r["key"]]]
        if len(keep) == len(lines):
            continue
        dropped += len(lines) - len(keep)
        if any(ln.strip() for ln in keep):
            atomic_write_text(p, "".join(keep))
        else:
            p.unlink()
    return dropped


class PartWriter:
    """Buffers records and writes them as numbered part files, each atomically."""

    def __init__(self, sdir: Path, flush_every: int):
        self.sdir = sdir
        self.flush_every = max(1, int(flush_every))
        self.buf: list[dict] = []
        nums = [int(p.stem.split("-")[1]) for p in part_files(sdir)]
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
class IncompatibleOutputError(ValueError):
    """An output folder was written with settings that change the records."""


class NarratorUnavailableError(RuntimeError):
    """The narrator could not be reached for many clips in a row; the shard was left unfinished."""


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def _is_transport(key: str, transport: set[str]) -> bool:
    return any(key == t or key.startswith(t + ".") for t in transport)


def check_resumable(sdir: Path, cfg: DictConfig) -> None:
    """Refuse to resume a shard written with settings that change the records. Transport-only
    settings (fields marked ``transport`` in :mod:`egohod.hod.config`: timeouts, retries,
    concurrency, batching, progress, ...) may change."""
    from .config import transport_keys, upgrade_recorded

    old_path = sdir / "config.yaml"
    if not old_path.exists():
        return
    old = upgrade_recorded(OmegaConf.to_container(OmegaConf.load(old_path), resolve=True))
    new = OmegaConf.to_container(cfg, resolve=True)
    skip = transport_keys(old) | transport_keys(new)
    a = {k: v for k, v in _flat(old).items() if not _is_transport(k, skip)}
    b = {k: v for k, v in _flat(new).items() if not _is_transport(k, skip)}
    diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    if diff:
        shown = ", ".join(f"{k}: {a.get(k)!r} -> {b.get(k)!r}" for k in diff[:5])
        raise IncompatibleOutputError(
            f"{sdir} was written with different settings ({shown}); resuming would mix records. Use a new out= "
            f"folder, rerun with the original settings, or (narrator settings only) `egohod hod renarrate`")


class TransportGuard:
    """Sits between the executor and the part writer. A record whose narrator failed for transport
    reasons (server unreachable, timeouts, 5xx after all retries) is held back; when the next clip
    gets an answer the held ones are written as failed clips (``retry=failed`` redoes them). After
    ``limit`` such clips in a row the narrator is taken to be down: the held records are dropped
    (so a rerun does them again) and :class:`NarratorUnavailableError` stops the shard unfinished."""

    def __init__(self, writer: "PartWriter", limit: int, attempts: dict[str, int] | None = None):
        self.writer, self.limit = writer, max(1, int(limit))
        self.attempts = attempts or {}
        self.held: list[dict] = []

    def add(self, records: Iterable[dict]) -> None:
        for r in records:
            if r["key"] in self.attempts:
                r["attempt"] = self.attempts[r["key"]]
            if r.get("transport_error"):
                self.held.append(r)
                if len(self.held) >= self.limit:
                    last = self.held[-1]["reason"]
                    n = len(self.held)
                    self.held = []
                    raise NarratorUnavailableError(
                        f"the narrator failed {n} clips in a row for transport reasons (last: {last}); stopped "
                        f"the shard unfinished and did not record those {n} clips. Check the server "
                        f"(narrator.base_url) and rerun the same command: finished clips are kept")
                continue
            self.writer.add(self.held + [r])
            self.held = []

    def flush(self) -> None:
        self.writer.add(self.held)
        self.held = []
        self.writer.flush()


def retry_command(argv: list[str] | None, cfg: DictConfig, shard: int, n: int) -> str:
    """The command that re-runs the failed clips of this shard."""
    if argv is None:  # not started from the command line: the settings that name the work
        argv = [f"clips={cfg.clips}", f"out={cfg.out}"] + ([f"videos={cfg.videos}"] if cfg.videos else [])
        argv += [f"detector={cfg.detector.name}", f"narrator={cfg.narrator.name}"]
        argv += [f"shard={shard}", f"num_shards={n}"] if n > 1 else []
    args = [a for a in argv if not a.startswith("retry=")] + ["retry=failed"]
    return "egohod hod run " + " ".join(shlex.quote(a) for a in args)


def run_shard(cfg: DictConfig, argv: list[str] | None = None) -> dict:
    """Process this process's shard; returns its counts (also in ``done.json``).

    Clips without a record are processed; with ``retry=failed`` also the clips whose record failed
    (their new record supersedes the old one, the successful records are left as they are). Raises
    :class:`NarratorUnavailableError` (shard left unfinished) when the narrator is down."""
    if cfg.retry not in ("none", "failed"):
        raise ValueError(f"retry must be 'none' or 'failed', got {cfg.retry!r}")
    out = Path(cfg.out)
    shard, n = resolve_shard(cfg.shard, cfg.num_shards)
    clips = load_clips(cfg.clips, cfg.clips_format, cfg.ego4d_window, cfg.limit)
    sdir = shard_dir(out, shard, n)
    with FolderLock(sdir, what=f"egohod hod run shard {shard}/{n}"):
        return _run_shard_locked(cfg, argv, out, sdir, shard, n, clips)


def _run_shard_locked(cfg, argv, out: Path, sdir: Path, shard: int, n: int, clips: list[Clip]) -> dict:
    _check_no_pending_swap(sdir)
    check_resumable(sdir, cfg)
    resolved = OmegaConf.to_yaml(cfg, resolve=True)
    if not (out / "config.yaml").exists():
        atomic_write_text(out / "config.yaml", resolved)
    atomic_write_text(sdir / "config.yaml", resolved)
    compact_parts(sdir)
    done = sdir / "done.json"
    mine = shard_clips(clips, shard, n)
    clip_set = hashlib.sha1("\n".join(sorted(c.key for c in mine)).encode()).hexdigest()
    retry = cfg.retry == "failed"
    if done.exists():
        counts = json.loads(done.read_text())
        if counts.get("clip_set") == clip_set and not (retry and counts.get("failed", 0)):
            print(f"shard {shard}/{n}: already done ({counts.get('clips', '?')} clips, {counts.get('ok', '?')} ok, "
                  f"{counts.get('failed', '?')} failed); nothing to do")
            if counts.get("failed", 0):
                print(f"  to retry the {counts['failed']} failed clip(s): {retry_command(argv, cfg, shard, n)}")
            return counts
        if counts.get("clip_set") != clip_set:
            print(f"shard {shard}/{n}: the clip list changed since this shard finished; processing the new clips")
        done.unlink()
    have = latest_records(part_files(sdir))
    failed = {k: r for k, r in have.items() if r["status"] != "ok"}
    todo = [c for c in mine if c.key not in have or (retry and c.key in failed)]
    attempts = {c.key: _attempt(failed[c.key]) + 1 for c in todo if c.key in failed}
    print(f"shard {shard}/{n}: {len(mine)} clips, {len(have) - len(failed)} finished, {len(failed)} failed"
          f"{' (retrying them)' if retry and failed else ''}, {len(todo)} to do")
    writer = PartWriter(sdir, cfg.flush_every)
    guard = TransportGuard(writer, cfg.max_transport_failures, attempts)
    t0 = time.perf_counter()
    try:
        if cfg.executor == "local":
            _run_local(todo, cfg, guard)
        elif cfg.executor == "ray":
            from .ray_executor import run_ray

            run_ray(todo, cfg, guard)
        else:
            raise ValueError(f"executor must be 'local' or 'ray', got {cfg.executor!r}")
        guard.flush()
    except NarratorUnavailableError as e:
        writer.flush()
        raise NarratorUnavailableError(f"shard {shard}/{n}: {e}") from None
    except BaseException:
        writer.flush()  # keep what finished (held transport failures are redone by the rerun)
        raise
    compact_parts(sdir)
    records = list(latest_records(part_files(sdir)).values())
    keys = {r["key"] for r in records}
    if keys != {c.key for c in mine}:
        raise RuntimeError(f"shard {shard}/{n}: part files hold records of {len(keys)} clips, the shard has "
                           f"{len(mine)}; refusing to mark it done")
    counts = count_records(records)
    counts.update(shard=shard, num_shards=n, seconds=round(time.perf_counter() - t0, 3), clip_set=clip_set)
    atomic_write_text(done, json.dumps(counts, indent=1))
    print(format_counts(counts, f"shard {shard}/{n}"))
    if counts["failed"]:
        print(f"  to retry the {counts['failed']} failed clip(s): {retry_command(argv, cfg, shard, n)}")
    return counts


def _run_local(todo: list[Clip], cfg: DictConfig, writer) -> None:
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


# ----------------------------------------------------------------------------- renarrate
STAGING = "renarrate.tmp"


def _check_no_pending_swap(sdir: Path) -> None:
    if (sdir / STAGING / "complete.json").exists():
        raise RuntimeError(f"{sdir}: an interrupted `egohod hod renarrate` left its new records half swapped in; "
                           f"rerun `egohod hod renarrate out=... narrator=...` with the same settings to finish it")


def _finish_swap(sdir: Path) -> None:
    """Move a staged, complete re-narration into place (idempotent: a killed swap is redone)."""
    import shutil

    stage = sdir / STAGING
    plan = json.loads((stage / "complete.json").read_text())
    for name in plan["new_parts"]:
        if (stage / name).exists():
            os.replace(stage / name, sdir / name)
    for name in plan["old_parts"]:
        (sdir / name).unlink(missing_ok=True)
    for name in ("config.yaml", "done.json"):
        if (stage / name).exists():
            os.replace(stage / name, sdir / name)
    shutil.rmtree(stage)


def renarrate(cfg: DictConfig) -> dict:
    """New narrations for the stored dynamics of an output folder, in place, with ``cfg.narrator``
    (no decoding, no detector). Records that failed before the narrate stage stay as they are.
    Each shard is staged in ``renarrate.tmp/`` and swapped in once complete, so a killed run leaves
    every shard either old or new; rerunning finishes the job (a shard already narrated with these
    settings only redoes its clips whose narration failed). Re-merges when every shard is done."""
    from .config import component_kwargs, validate_component
    from .narrators import Validation, create_narrator

    out = Path(cfg.out)
    dirs = sorted((out / "shards").glob("*-of-*"))
    if not (out / "config.yaml").exists() or not dirs:
        raise FileNotFoundError(f"{out}: no `egohod hod run` output here (config.yaml and shards/ are missing)")
    narrator_cfg = OmegaConf.to_container(validate_component("narrator", cfg.narrator), resolve=True)
    name, kw = component_kwargs(OmegaConf.create(narrator_cfg))
    base = OmegaConf.to_container(OmegaConf.load(out / "config.yaml"), resolve=True)
    narrator = create_narrator(name, validation=Validation(**base["validation"]), **kw)
    totals: Counter = Counter()
    try:
        for sdir in dirs:
            with FolderLock(sdir, what="egohod hod renarrate"):
                totals.update(_renarrate_shard(sdir, narrator_cfg, narrator, cfg))
    finally:
        narrator.close()
    base["narrator"] = narrator_cfg
    atomic_write_text(out / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(base)))
    print(f"renarrated {out}: {totals['renarrated']} clips narrated anew ({totals['ok']} ok, "
          f"{totals['renarrated'] - totals['ok']} failed), {totals['kept']} kept as they were")
    n = int(dirs[0].name.split("-of-")[1])
    if all((shard_dir(out, i, n) / "done.json").exists() for i in range(n)):
        merge(out)
    else:
        print(f"some shards of {out} are not finished; run them, then `egohod hod merge out={out}`")
    return dict(totals)


def _renarrate_shard(sdir: Path, narrator_cfg: dict, narrator, cfg: DictConfig) -> Counter:
    import shutil

    from tqdm import tqdm

    from .pipeline import narrate_records

    stage = sdir / STAGING
    if (stage / "complete.json").exists():
        _finish_swap(sdir)
    elif stage.exists():
        shutil.rmtree(stage)  # a killed renarrate of this shard: start it over
    shard_cfg = OmegaConf.to_container(OmegaConf.load(sdir / "config.yaml"), resolve=True)
    same = shard_cfg.get("narrator") == narrator_cfg
    old_parts = part_files(sdir)
    records = list(latest_records(old_parts).values())
    records.sort(key=lambda r: r["row"])
    todo = [r for r in records if r.get("dynamics") is not None and not (same and r["status"] == "ok")]
    print(f"{sdir.name}: {len(records)} clips, {len(todo)} to narrate"
          f"{' (narrated with these settings already; redoing the failed ones)' if same else ''}")
    stage.mkdir()
    nums = [int(p.stem.split("-")[1]) for p in old_parts]
    writer = PartWriter(stage, shard_cfg.get("flush_every", 32))
    writer.next = max(nums) + 1 if nums else 0  # names never collide with the parts they replace
    guard = TransportGuard(writer, cfg.max_transport_failures)
    redo = {r["key"] for r in todo}
    try:
        writer.add([r for r in records if r["key"] not in redo])  # kept byte-equal in content
        with tqdm(total=len(todo), desc="renarrate", unit="clip", disable=not cfg.progress) as bar:
            for batch in batches(todo, cfg.batch_size):
                narrate_records(batch, narrator)
                guard.add([jsonable(r) for r in batch])
                bar.update(len(batch))
        guard.flush()
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)  # the shard keeps its old records
        raise
    new_parts = [p.name for p in part_files(stage)]
    shard_cfg["narrator"] = narrator_cfg
    atomic_write_text(stage / "config.yaml", OmegaConf.to_yaml(OmegaConf.create(shard_cfg)))
    if (sdir / "done.json").exists():
        counts = json.loads((sdir / "done.json").read_text())
        counts.update(count_records(records))
        atomic_write_text(stage / "done.json", json.dumps(counts, indent=1))
    atomic_write_text(stage / "complete.json", json.dumps({"new_parts": new_parts,
                                                           "old_parts": [p.name for p in old_parts]}))
    _finish_swap(sdir)
    return Counter(renarrated=len(todo), ok=sum(r["status"] == "ok" for r in todo), kept=len(records) - len(todo))


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
    for d in dirs:
        _check_no_pending_swap(d)
    if unfinished and not allow_incomplete:
        raise RuntimeError(f"{out}: shard(s) {unfinished} of {n} are not done; rerun them or pass allow_incomplete=true")
    records = [r for d in dirs for r in latest_records(part_files(d)).values()]
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
