"""egohod head nlq: VSLNet on generated clip features in the official NLQ JSON layout.

The generated set: every clip holds three objects, each visible (its feature signature added to
noisy features) during one window; a query asks "where is the <object>?". Only a head that reads
the query and matches it to the video can answer, so a trained head must beat the untrained
(seeded) one on held-out clips by a wide margin.
"""
import json
import math

import numpy as np
import pytest
import torch

from egohod.benchmarks.heads.common import HeadConfigError, HeadDataError
from egohod.benchmarks.heads.nlq import (NlqConfig, load_nlq_config, pool_features, run_nlq, span_to_window,
                                         window_to_span)
from egohod.benchmarks.heads.vslnet import top_spans

OBJECTS = ["knife", "cup", "phone", "keys", "bowl", "towel"]
FPS = 30 / 16
TINY_HEAD = {"name": "vslnet", "dim": 32, "num_heads": 4, "dropout": 0.1, "max_pos_len": 64, "predictor": "rnn",
             "conv_layers": 1, "kernel_size": 3}


def make_nlq(root, n_train=24, n_val=10, dim=16, duration=20.0, seed=1):
    rng = np.random.default_rng(seed)
    sig = rng.normal(size=(len(OBJECTS), dim))
    sig /= np.linalg.norm(sig, axis=1, keepdims=True)
    feats = root / "features"
    feats.mkdir(parents=True, exist_ok=True)

    def split(n, tag):
        videos = []
        for c in range(n):
            uid = f"{tag}clip{c:03d}"
            x = rng.normal(scale=0.5, size=(math.ceil(duration * FPS), dim)).astype(np.float32)
            queries = []
            for j, o in enumerate(rng.choice(len(OBJECTS), size=3, replace=False)):
                length = rng.uniform(2.0, 5.0)
                s = rng.uniform(j * duration / 3, (j + 1) * duration / 3 - length)
                x[int(s * FPS):math.ceil((s + length) * FPS)] += 2.0 * sig[o]
                queries.append({"clip_start_sec": s, "clip_end_sec": s + length, "query": f"Where is the {OBJECTS[o]}?"})
            np.save(feats / f"{uid}.npy", x)
            videos.append({"video_uid": f"v{uid}", "clips": [{
                "clip_uid": uid, "video_start_sec": 100.0, "video_end_sec": 100.0 + duration, "clip_start_sec": 0.0,
                "clip_end_sec": duration, "annotations": [{"annotation_uid": f"a{uid}", "language_queries": queries}]}]})
        return {"version": "v1", "videos": videos}

    (root / "nlq_train.json").write_text(json.dumps(split(n_train, "tr")))
    (root / "nlq_val.json").write_text(json.dumps(split(n_val, "va")))
    return root


def _cfg(root, out, **kw):
    base = dict(data=str(root), features=str(root / "features"), out=str(out), text_encoder="egovideo_tiny",
                head=dict(TINY_HEAD), epochs=15, batch=8, progress=False, device="cpu")
    return NlqConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def nlq_data(tmp_path_factory):
    return make_nlq(tmp_path_factory.mktemp("nlq"))


def test_trained_vslnet_beats_the_untrained_head_and_the_scorer_reads_its_predictions(nlq_data, tmp_path, one_thread,
                                                                                     capsys):
    from egohod.benchmarks.cli import score_main

    untrained = run_nlq(_cfg(nlq_data, tmp_path / "untrained", epochs=0))
    trained = run_nlq(_cfg(nlq_data, tmp_path / "trained"))
    assert trained["val_queries"] == untrained["val_queries"] == 30
    assert trained["metrics"]["r1_iou0.3"] >= untrained["metrics"]["r1_iou0.3"] + 35, (trained["metrics"],
                                                                                       untrained["metrics"])
    assert trained["metrics"]["miou"] >= untrained["metrics"]["miou"] + 25
    assert trained["train_losses"][-1] < trained["train_losses"][0]

    pred = json.loads((tmp_path / "trained" / "predictions.json").read_text())
    assert pred["challenge"] == "ego4d_nlq_challenge" and len(pred["results"]) == 30
    assert all(1 <= len(r["predicted_times"]) <= 5 and all(s <= e for s, e in r["predicted_times"])
               for r in pred["results"])
    capsys.readouterr()
    assert score_main(["nlq", "--predictions", str(tmp_path / "trained" / "predictions.json"),
                       "--ground-truth", str(nlq_data / "nlq_val.json")]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(trained["metrics"])
    table = (tmp_path / "trained" / "nlq.md").read_text()
    assert "RANDOM WEIGHTS" in table  # the text tower of egovideo_tiny has no checkpoint here
    assert json.loads((tmp_path / "trained" / "nlq.json").read_text())["text_random_weights"] is True


def test_an_interrupted_run_resumes_to_the_same_predictions(nlq_data, tmp_path, one_thread, monkeypatch):
    import egohod.benchmarks.heads.nlq as nlq

    cfg = dict(epochs=3, head={**TINY_HEAD, "dim": 16})
    straight = run_nlq(_cfg(nlq_data, tmp_path / "straight", **cfg))

    real_step, calls = nlq.train_step, []

    def dies_in_epoch_two(*a, **k):
        calls.append(1)
        if len(calls) > 12:  # 9 batches per epoch: the second epoch never finishes
            raise KeyboardInterrupt
        return real_step(*a, **k)

    monkeypatch.setattr(nlq, "train_step", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_nlq(_cfg(nlq_data, tmp_path / "resumed", **cfg))
    monkeypatch.setattr(nlq, "train_step", real_step)
    resumed = run_nlq(_cfg(nlq_data, tmp_path / "resumed", **cfg))
    assert resumed["train_losses"] == straight["train_losses"]
    assert (json.loads((tmp_path / "resumed" / "predictions.json").read_text())
            == json.loads((tmp_path / "straight" / "predictions.json").read_text()))


def test_missing_misaligned_and_short_features_are_named(tmp_path, one_thread):
    root = make_nlq(tmp_path / "d", n_train=3, n_val=2)
    feats = root / "features"

    (feats / "trclip001.npy").unlink()
    with pytest.raises(HeadDataError, match=r"1 of 3 clips of nlq_train.json have no features.*trclip001"):
        run_nlq(_cfg(root, tmp_path / "o1"))
    skipped = run_nlq(_cfg(root, tmp_path / "o2", epochs=0, missing_features="skip"))
    assert skipped["train_queries"] == 6 and {s["clip_uid"] for s in skipped["skipped"]} == {"trclip001"}

    np.save(feats / "trclip001.npy", np.zeros((38, 12), np.float32))
    with pytest.raises(HeadDataError, match=r"trclip001.npy: features are 12-d, expected 16-d"):
        run_nlq(_cfg(root, tmp_path / "o3"))

    np.save(feats / "trclip001.npy", np.zeros((10, 16), np.float32))  # 5.3 s of features for a 20 s clip
    with pytest.raises(HeadDataError, match=r"trclip001: its 10 features cover 5.33 s .* shorter than the annotated"):
        run_nlq(_cfg(root, tmp_path / "o4"))

    np.save(feats / "trclip001.npy", np.zeros((600, 16), np.float32))  # 30 features/s
    with pytest.raises(HeadDataError, match=r"trclip001: 600 features for a 20.00 s clip"):
        run_nlq(_cfg(root, tmp_path / "o5"))

    (feats / "settings.json").write_text(json.dumps({"stride": 1.0}))
    with pytest.raises(HeadDataError, match=r"every 1.0000 s .* re-extract with stride=0.5333"):
        run_nlq(_cfg(root, tmp_path / "o6"))


def test_pt_features_load_through_the_safe_loader(tmp_path, one_thread):
    root = make_nlq(tmp_path / "d", n_train=2, n_val=1)
    for p in (root / "features").glob("*.npy"):
        torch.save(torch.from_numpy(np.load(p)), p.with_suffix(".pt"))
        p.unlink()
    rec = run_nlq(_cfg(root, tmp_path / "o", epochs=1))
    assert rec["val_queries"] == 3 and rec["epochs_trained"] == 1


def test_config_composes_the_paper_defaults_and_refuses_unknown_head_keys():
    cfg = load_nlq_config(["data=a", "features=b", "out=c"])
    assert (cfg.epochs, cfg.lr, cfg.batch, cfg.topk) == (50, 3e-3, 32, 5)
    assert cfg.head["name"] == "vslnet" and cfg.head["dropout"] == 0.3 and cfg.head["max_pos_len"] == 128
    assert load_nlq_config(["data=a", "features=b", "out=c", "head.predictor=transformer"]).head["predictor"] == \
        "transformer"
    with pytest.raises(HeadConfigError, match="bogus"):
        load_nlq_config(["data=a", "features=b", "out=c", "head.bogus=1"])
    with pytest.raises(HeadConfigError, match="missing_features"):
        load_nlq_config(["data=a", "features=b", "out=c", "missing_features=maybe"])


def test_pooling_follows_the_ego4d_rule():
    x = np.arange(10, dtype=np.float32)[:, None]
    # bounds round([0, 2.5, 5, 7.5, 10]) = [0, 2, 5, 8, 10] -> last clipped to 9
    assert pool_features(x, 4)[:, 0].tolist() == [0.5, 3.0, 6.0, 8.0]
    assert pool_features(x, 16) is x


def test_windows_map_to_spans_and_back():
    n, duration = 38, 38 / FPS
    s, e = window_to_span(4 / FPS, 9 / FPS, n, duration, FPS)
    assert (s, e) == (4, 8)
    assert span_to_window(s, e, n, duration) == pytest.approx((4 / FPS, 9 / FPS))
    assert window_to_span(2.0, 2.0, n, duration, FPS) == (3, 3)  # a 0-s query inside position 3
    starts, ends = top_spans(torch.randn(3, 7), torch.randn(3, 7), k=5)
    assert starts.shape == (3, 5) and bool((ends >= starts).all())


@pytest.mark.gpu
def test_runs_on_the_gpu(nlq_data, tmp_path):
    rec = run_nlq(_cfg(nlq_data, tmp_path / "gpu", epochs=2, device="cuda"))
    assert rec["epochs_trained"] == 2 and rec["val_queries"] == 30


def test_the_command_exits_2_naming_what_to_fix(tmp_path, capsys):
    from egohod.benchmarks.heads.cli import main

    assert main(["nlq", f"data={tmp_path}", f"features={tmp_path}", f"out={tmp_path / 'o'}"]) == 2
    assert f"egohod head nlq: NLQ annotation file not found: {tmp_path / 'nlq_train.json'}" in capsys.readouterr().err
    assert main(["nlq", f"data={tmp_path}", "epochs=3"]) == 2
    assert "missing" in capsys.readouterr().err
