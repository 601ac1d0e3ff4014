"""Ego-style filter: train on labelled clip features (held-out accuracy and AUC), apply with a
threshold, features from an egohod encoder, AUC against a direct pair count."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from egohod.hod.cli import main
from egohod.hod.style_filter import roc_auc, stratified_split


def test_auc_matches_pair_counting():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.normal(size=200) + y, 1)  # rounding creates ties
    pos, neg = s[y == 1], s[y == 0]
    pairs = (pos[:, None] > neg[None]).mean() + 0.5 * (pos[:, None] == neg[None]).mean()
    assert roc_auc(y, s) == pytest.approx(pairs)
    assert np.isnan(roc_auc(np.ones(3), np.arange(3)))
    tr, ho = stratified_split(np.array([0] * 10 + [1] * 30), 0.2, 0)
    assert len(ho) == 8 and sorted(np.r_[tr, ho].tolist()) == list(range(40))


def _write(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_train_and_apply_on_feature_file(tmp_path, capsys):
    rng = np.random.default_rng(1)
    n, d = 160, 24
    y = (np.arange(n) % 2).astype(int)
    centre = rng.normal(size=d)
    x = rng.normal(size=(n, d)) + np.outer(2 * y - 1, centre)
    keys = [f"v{i // 4}:{(i % 4) * 2:.3f}:{(i % 4) * 2 + 1.5:.3f}" for i in range(n)]
    np.savez(tmp_path / "feats.npz", keys=np.array(keys), features=x.astype(np.float32))
    _write(tmp_path / "labels.csv", ["video_id", "start_second", "end_second", "label"],
           [[k.split(":")[0], k.split(":")[1], k.split(":")[2], y[i]] for i, k in enumerate(keys)])
    model = tmp_path / "style.pt"
    assert main(["style-train", f"labels={tmp_path / 'labels.csv'}", f"features={tmp_path / 'feats.npz'}",
                 f"out={model}", "epochs=30", "hidden=32"]) == 0
    m = json.loads((tmp_path / "style.pt.metrics.json").read_text())
    assert m["heldout"]["n"] == 32 and m["heldout"]["positives"] == 16
    assert m["heldout"]["accuracy"] >= 0.9 and m["heldout"]["auc"] >= 0.95
    assert m["train"]["accuracy"] >= m["heldout"]["accuracy"] - 0.05
    assert "held-out accuracy" in capsys.readouterr().out

    # apply: the clips to filter, one without features
    clip_rows = [[k.split(":")[0], k.split(":")[1], k.split(":")[2], f"text {i}"] for i, k in enumerate(keys[:40])]
    clip_rows.append(["unknown", "0.0", "1.0", "no features"])
    _write(tmp_path / "web.csv", ["video_id", "start_second", "end_second", "text"], clip_rows)
    out = tmp_path / "applied"
    assert main(["style-apply", f"model={model}", f"clips={tmp_path / 'web.csv'}", f"features={tmp_path / 'feats.npz'}",
                 f"out={out}", "threshold=0.5"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary == {"clips": 41, "scored": 40, "kept": summary["kept"], "failed": 1, "threshold": 0.5}
    with open(out / "kept.csv") as f:
        kept = list(csv.DictReader(f))
    kept_idx = [int(r["text"].split()[1]) for r in kept]
    assert len(kept) == summary["kept"] and sum(y[i] for i in kept_idx) >= 0.9 * len(kept) and len(kept) >= 15
    assert list(kept[0]) == ["video_id", "start_second", "end_second", "text"]  # original columns only
    with open(out / "failures.csv") as f:
        assert next(csv.DictReader(f))["key"] == "unknown:0.000:1.000"
    # a stricter threshold keeps fewer clips
    assert main(["style-apply", f"model={model}", f"clips={tmp_path / 'web.csv'}", f"features={tmp_path / 'feats.npz'}",
                 f"out={tmp_path / 'strict'}", "threshold=0.99"]) == 0
    assert json.loads((tmp_path / "strict" / "summary.json").read_text())["kept"] <= summary["kept"]


def test_features_from_an_egohod_encoder(hod_corpus, tmp_path):
    feats = tmp_path / "f.npz"
    torch.manual_seed(0)  # egovideo_tiny without a checkpoint has random weights
    assert main(["features", f"clips={hod_corpus['clips']}", "encoder=egovideo_tiny", f"videos={hod_corpus['videos']}",
                 f"out={feats}", "chunk_seconds=2.0"]) == 0
    z = np.load(feats)
    assert z["features"].shape == (4, 32) and sorted(z["keys"].tolist()) == ["a0", "a1", "b0", "b1"]
    with open(tmp_path / "f.failures.csv") as f:
        failed = {r["key"]: r["reason"] for r in csv.DictReader(f)}
    assert set(failed) == {"a2", "a3", "c0", "d0"} and "vidD" in failed["d0"]
    # same frames -> same features as calling the encoder directly
    import egohod
    from egohod.hod.clips import VideoSource
    from egohod.hod.types import Clip

    torch.manual_seed(0)
    enc = egohod.load_encoder("egovideo_tiny")
    frames, _ = VideoSource(str(hod_corpus["videos"]), chunk_seconds=2.0).read(Clip("a0", 0, "vidA", 0.2, 1.8, ""), 4)
    with torch.no_grad():
        ref = enc(torch.from_numpy(frames[None])).numpy()[0]
    np.testing.assert_allclose(z["features"][z["keys"].tolist().index("a0")], ref, rtol=1e-4, atol=1e-5)


def test_bad_labels_are_clear_errors(tmp_path):
    _write(tmp_path / "l.csv", ["video_id", "start_second", "end_second", "label"], [["v", 0, 1, "yes"]])
    np.savez(tmp_path / "f.npz", keys=np.array(["v:0.000:1.000"]), features=np.zeros((1, 4), np.float32))
    with pytest.raises(ValueError, match=r"l.csv:2: label must be 0 or 1"):
        main(["style-train", f"labels={tmp_path / 'l.csv'}", f"features={tmp_path / 'f.npz'}", f"out={tmp_path / 'm.pt'}"])
