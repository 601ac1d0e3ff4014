"""``egohod score | eval | extract``: thin layers over the scorers, protocols and extractor.

    egohod score ek100-mir --sim SIM.npy --relevancy REL.pkl [--trust-pickle]
    egohod score classification --scores S.npy --labels L.npy
    egohod score egomcq --scores S.npy --answers A.npy --types T.npy
    egohod score ek100-action --verb-scores V.npy --noun-scores N.npy --verb-labels VL.npy --noun-labels NL.npy
    egohod score nlq --predictions PRED.json --ground-truth nlq_val.json
    egohod score mq --predictions PRED.json --ground-truth GT.json [--subset val]
    egohod score segmentation --predictions DIR --ground-truth DIR [--background background]
    egohod eval <ek100-mir|ek100-cls|egtea|egomcq> encoder=... checkpoint=... data=DIR [batch=..] [device=..]
    egohod extract encoder=... videos=DIR stride=SEC out=DIR

``score`` prints a JSON object of metrics (percent; NaN printed as null).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..safe_load import UnsafeFileError
from .readers import BenchmarkDataError, read_json, read_relevancy
from .results import encoder_label, is_random_weights, json_safe, markdown_table, write_results

__all__ = ["score_main", "eval_main", "extract_main"]


def _load_npy(path: str, what: str) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise BenchmarkDataError(f"{what} file not found: {p}")
    try:
        return np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - report any unreadable file the same way
        raise BenchmarkDataError(f"{p}: cannot read {what} as .npy ({type(e).__name__}: {e})") from None


def _read_labels_file(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    if text.startswith("###"):  # MS-TCN recognition file: header line, then the labels on one line
        text = "\n".join(text.splitlines()[1:])
    labels = text.split()
    if not labels:
        raise BenchmarkDataError(f"{path}: no frame labels")
    return labels


def _score_segmentation(pred_dir: str, gt_dir: str, background: list[str]):
    from .scorers import segmentation_scores

    gt_root, pred_root = Path(gt_dir), Path(pred_dir)
    gts = sorted(p for p in gt_root.glob("*.txt")) if gt_root.is_dir() else []
    if not gts:
        raise BenchmarkDataError(f"no ground-truth .txt files in {gt_root}")
    preds, labels = [], []
    for g in gts:
        cands = [pred_root / g.name, pred_root / g.stem]
        p = next((c for c in cands if c.is_file()), None)
        if p is None:
            raise BenchmarkDataError(f"no prediction for {g.name}; tried {', '.join(map(str, cands))}")
        preds.append(_read_labels_file(p))
        labels.append(_read_labels_file(g))
    return segmentation_scores(preds, labels, background=background)


def _score_mq(pred_path: str, gt_path: str, subset: str | None):
    from .scorers import mq_scores

    gt_json = read_json(gt_path, "MQ ground truth")
    gt_json = gt_json.get("database", gt_json)
    pred_json = read_json(pred_path, "MQ predictions")
    if "results" not in pred_json:
        raise BenchmarkDataError(f"{pred_path}: MQ predictions need a 'results' object {{video: [{{label, segment, score}}]}}")
    try:
        gt = {v: [(a["label"], float(a["start_time"]), float(a["end_time"])) for a in d["annotations"]]
              for v, d in gt_json.items() if subset is None or d.get("subset") == subset}
        preds = {v: [(r["label"], float(r["segment"][0]), float(r["segment"][1]), float(r["score"])) for r in rows]
                 for v, rows in pred_json["results"].items()}
    except (KeyError, TypeError, IndexError) as e:
        raise BenchmarkDataError(f"MQ files {gt_path} / {pred_path}: malformed entry ({type(e).__name__}: {e})") from None
    return mq_scores(gt, preds)


def _score_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="egohod score", description="score saved outputs with the official metrics")
    sub = ap.add_subparsers(dest="task", required=True)
    p = sub.add_parser("ek100-mir", help="EK-100 MIR mAP / nDCG")
    p.add_argument("--sim", required=True, help=".npy [clips, captions] similarity")
    p.add_argument("--relevancy", required=True, help="relevancy pickle [clips, captions]")
    p.add_argument("--trust-pickle", action="store_true",
                   help="unpickle the relevancy file without egohod's allowlist (only for files you trust)")
    p = sub.add_parser("classification", help="top-1 / top-5 / mean class accuracy")
    p.add_argument("--scores", required=True, help=".npy [N, C]")
    p.add_argument("--labels", required=True, help=".npy [N] int")
    p.add_argument("--over", default="labels", choices=["labels", "labels_and_predictions"],
                   help="classes averaged in mean_class_acc")
    p = sub.add_parser("egomcq", help="EgoMCQ inter / intra accuracy")
    p.add_argument("--scores", required=True, help=".npy [N, 5]")
    p.add_argument("--answers", required=True, help=".npy [N] int")
    p.add_argument("--types", required=True, help=".npy [N], 1 = inter-video, 2 = intra-video")
    p = sub.add_parser("ek100-action", help="EK-100 verb / noun / action accuracy (official C1 scorer)")
    for a in ("--verb-scores", "--noun-scores", "--verb-labels", "--noun-labels"):
        p.add_argument(a, required=True)
    p = sub.add_parser("nlq", help="Ego4D NLQ Recall@{1,5} at IoU {0.3,0.5} and mIoU")
    p.add_argument("--predictions", required=True, help="challenge-format JSON with 'results'")
    p.add_argument("--ground-truth", required=True, help="official nlq_val.json")
    p = sub.add_parser("mq", help="Ego4D MQ mAP over tIoU 0.1..0.5 and Recall@1x at tIoU 0.5")
    p.add_argument("--predictions", required=True, help="JSON {'results': {video: [{label, segment, score}]}}")
    p.add_argument("--ground-truth", required=True, help="JSON {video: {subset, annotations: [{label, start_time, end_time}]}}")
    p.add_argument("--subset", default=None, help="only ground-truth videos of this subset")
    p = sub.add_parser("segmentation", help="frame Acc, Edit, F1@{10,25,50} (MS-TCN)")
    p.add_argument("--predictions", required=True, help="folder: one file per video (labels per line or MS-TCN format)")
    p.add_argument("--ground-truth", required=True, help="groundTruth/ folder of <video>.txt")
    p.add_argument("--background", nargs="*", default=["background"], help="labels excluded from Edit and F1")
    return ap


def score_main(argv: list[str]) -> int:
    from . import scorers as S

    args = _score_parser().parse_args(argv)
    try:
        if args.task == "ek100-mir":
            sim = _load_npy(args.sim, "similarity")
            metrics = S.ek100_mir_scores(sim, read_relevancy(args.relevancy, shape=sim.shape if sim.ndim == 2 else None,
                                                          trust_pickle=args.trust_pickle))
        elif args.task == "classification":
            metrics = S.classification_scores(_load_npy(args.scores, "scores"), _load_npy(args.labels, "labels"), over=args.over)
        elif args.task == "egomcq":
            metrics = S.egomcq_scores(_load_npy(args.scores, "scores"), _load_npy(args.answers, "answers"),
                                      _load_npy(args.types, "types"))
        elif args.task == "ek100-action":
            metrics = S.ek100_action_scores(*(_load_npy(getattr(args, a), a.replace("_", " ")) for a in
                                              ("verb_scores", "noun_scores", "verb_labels", "noun_labels")))
        elif args.task == "nlq":
            metrics = S.nlq_scores_from_json(read_json(args.predictions, "NLQ predictions"),
                                             read_json(args.ground_truth, "NLQ ground truth"))
        elif args.task == "mq":
            metrics = _score_mq(args.predictions, args.ground_truth, args.subset)
        else:
            metrics = _score_segmentation(args.predictions, args.ground_truth, args.background)
    except (BenchmarkDataError, ValueError, KeyError) as e:
        print(f"egohod score {args.task}: {e}", file=sys.stderr)
        if isinstance(e, UnsafeFileError):
            print("  (on this command: add --trust-pickle)", file=sys.stderr)
        return 2
    print(json.dumps(json_safe(metrics)))
    return 0


def eval_main(argv: list[str]) -> int:
    from ..data.video import VideoReadError
    from ..safe_load import CorruptFileError
    from ..config import exit_on_config_error
    from .config import BENCHMARKS, load_eval_config
    from .protocols import run_benchmark

    if not argv or argv[0].startswith("-") or "=" in argv[0]:
        print(f"usage: egohod eval <{'|'.join(BENCHMARKS)}> encoder=NAME checkpoint=PATH data=DIR [key=value ...]",
              file=sys.stderr)
        return 2
    with exit_on_config_error("egohod eval"):
        cfg = load_eval_config(argv[0], argv[1:])
    t0 = time.time()
    try:
        metrics, info = run_benchmark(cfg)
    except (BenchmarkDataError, VideoReadError, UnsafeFileError, CorruptFileError) as e:
        print(f"egohod eval {cfg.benchmark}: {e}", file=sys.stderr)
        return 2
    record = {"benchmark": cfg.benchmark, "encoder": cfg.encoder, "checkpoint": cfg.checkpoint,
              "metrics": metrics, **info, "elapsed_s": round(time.time() - t0, 3),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": asdict(cfg)}
    js, md = write_results(cfg.out, cfg.benchmark, record)
    if is_random_weights(info["weights"]):
        print(f"encoder {cfg.encoder}: RANDOM WEIGHTS (no checkpoint given; seed={cfg.seed}): "
              "these numbers say nothing about a trained model")
    print(markdown_table([{"benchmark": cfg.benchmark, "encoder": encoder_label(cfg.encoder, info["weights"]),
                           **metrics}]), end="")
    print(f"results: {js}\ntable:   {md}")
    return 0


def extract_main(argv: list[str]) -> int:
    from ..fileio import FolderLockedError
    from ..config import exit_on_config_error
    from .config import load_extract_config
    from .extract import FAILURES_FILE, run_extract

    try:
        with exit_on_config_error("egohod extract"):
            cfg = load_extract_config(argv)
            index = run_extract(cfg)
    except FolderLockedError as e:
        print(f"egohod extract: {e}", file=sys.stderr)
        return 2
    out = Path(cfg.out)
    if index["random_weights"]:
        print(f"encoder {cfg.encoder}: RANDOM WEIGHTS (no checkpoint given; seed={cfg.seed})")
    n_ok = len(index["videos"])
    print(f"{n_ok} videos ({index['extracted']} extracted, {index['skipped']} already done) -> {out / 'index.json'}")
    failures = index["failures"]
    if failures:
        print(f"egohod extract: {len(failures)} of {n_ok + len(failures)} videos failed; listed with their errors in "
              f"{out / FAILURES_FILE}:", file=sys.stderr)
        for f in failures[:10]:
            print(f"  {f['video']}: {f['error']}", file=sys.stderr)
        if len(failures) > 10:
            print(f"  ... ({len(failures) - 10} more)", file=sys.stderr)
        print("re-run the same command to retry them (videos already done are skipped)", file=sys.stderr)
        return 1
    return 0
