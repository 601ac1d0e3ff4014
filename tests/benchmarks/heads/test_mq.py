"""egohod head mq: the ActionFormer-style detector on generated clip features in the official
moments JSON layout.

The generated set: every clip holds three moments of four action classes, each the class's
feature signature added to noisy features; a trained detector must find them on held-out clips
far better than the untrained (seeded) one.
"""
import json
import math

import numpy as np
import pytest
import torch

from egohod.benchmarks.heads.common import HeadConfigError, HeadDataError
from egohod.benchmarks.heads.mq import MqConfig, load_mq_config, read_moments, run_mq
from egohod.benchmarks.heads.mq_head import ActionFormerHead, assign_targets, decode, soft_nms_1d

ACTIONS = ["cut_vegetables", "wash_dishes", "use_phone", "fold_clothes"]
FPS = 30 / 16
TINY_HEAD = {"name": "actionformer", "dim": 32, "num_heads": 4, "embed_layers": 1, "stem_layers": 1, "levels": 3,
             "window": 0, "regression_range": [[0, 4], [4, 8], [8, 10000]], "head_layers": 2, "head_kernel": 3,
             "dropout": 0.0, "abs_pe": True, "cls_prior": 0.01, "center_radius": 1.5, "max_seq_len": 128}


def make_mq(root, n_train=24, n_val=8, dim=16, duration=40.0, seed=0):
    rng = np.random.default_rng(seed)
    sig = rng.normal(size=(len(ACTIONS), dim))
    sig /= np.linalg.norm(sig, axis=1, keepdims=True)
    feats = root / "features"
    feats.mkdir(parents=True, exist_ok=True)

    def split(n, tag):
        clips = []
        for c in range(n):
            uid = f"{tag}clip{c:03d}"
            x = rng.normal(scale=0.5, size=(math.ceil(duration * FPS), dim)).astype(np.float32)
            labels = []
            for j in range(3):
                a, length = int(rng.integers(len(ACTIONS))), rng.uniform(3.0, 10.0)
                s = rng.uniform(j * duration / 3, (j + 1) * duration / 3 - length)
                x[int(round(s * FPS)):int(round((s + length) * FPS))] += 2.0 * sig[a]
                labels.append({"start_time": s, "end_time": s + length, "label": ACTIONS[a], "primary": True,
                               "video_start_time": 500 + s, "video_end_time": 500 + s + length})
            labels.append({"start_time": 1.0, "end_time": 2.0, "label": "not_primary", "primary": False})
            np.save(feats / f"{uid}.npy", x)
            clips.append({"clip_uid": uid, "video_start_sec": 500.0, "video_end_sec": 500.0 + duration,
                          "annotations": [{"annotator_uid": "a1", "labels": labels}]})
        return {"version": "v1", "videos": [{"video_uid": f"v{tag}", "split": tag, "clips": clips}]}

    (root / "moments_train.json").write_text(json.dumps(split(n_train, "train")))
    (root / "moments_val.json").write_text(json.dumps(split(n_val, "val")))
    return root


def _cfg(root, out, **kw):
    base = dict(data=str(root), features=str(root / "features"), out=str(out), head=dict(TINY_HEAD), epochs=10,
                warmup_epochs=1, batch=4, lr=1e-3, max_segments=100, progress=False, device="cpu")
    return MqConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def mq_data(tmp_path_factory):
    return make_mq(tmp_path_factory.mktemp("mq"))


def test_trained_detector_beats_the_untrained_one_and_egohod_score_reads_its_files(mq_data, tmp_path, one_thread,
                                                                                  capsys):
    from egohod.benchmarks.cli import score_main

    untrained = run_mq(_cfg(mq_data, tmp_path / "untrained", epochs=0))
    trained = run_mq(_cfg(mq_data, tmp_path / "trained"))
    assert trained["val_clips"] == 8 and trained["classes"] == len(set(ACTIONS) & _train_labels(mq_data))
    assert trained["metrics"]["map_avg"] >= untrained["metrics"]["map_avg"] + 40, (trained["metrics"],
                                                                                   untrained["metrics"])
    assert trained["metrics"]["recall1x_tiou0.5"] >= untrained["metrics"]["recall1x_tiou0.5"] + 40

    out = tmp_path / "trained"
    results = json.loads((out / "predictions.json").read_text())["results"]
    for rows in results.values():
        scores = [r["score"] for r in rows]
        assert scores == sorted(scores, reverse=True)  # the recall reads them in file order
        assert all(0 <= r["segment"][0] <= r["segment"][1] <= 40.0 and r["label"] in ACTIONS for r in rows)
    gt = json.loads((out / "ground_truth_val.json").read_text())
    assert all(len(d["annotations"]) == 3 for d in gt.values())  # the non-primary label is not a moment
    capsys.readouterr()
    assert score_main(["mq", "--predictions", str(out / "predictions.json"), "--ground-truth",
                       str(out / "ground_truth_val.json"), "--subset", "val"]) == 0
    assert json.loads(capsys.readouterr().out) == pytest.approx(trained["metrics"])
    assert "actionformer" in (out / "mq.md").read_text()


def _train_labels(root):
    return {m[0] for c in read_moments(root / "moments_train.json") for m in c.moments}


def test_an_interrupted_run_resumes_to_the_same_predictions(mq_data, tmp_path, one_thread, monkeypatch):
    import egohod.benchmarks.heads.mq as mq

    straight = run_mq(_cfg(mq_data, tmp_path / "straight", epochs=2))
    real_step, calls = mq._Trainer.step, []

    def dies_in_epoch_two(self, batch):
        calls.append(1)
        if len(calls) > 8:  # 6 batches per epoch
            raise KeyboardInterrupt
        return real_step(self, batch)

    monkeypatch.setattr(mq._Trainer, "step", dies_in_epoch_two)
    with pytest.raises(KeyboardInterrupt):
        run_mq(_cfg(mq_data, tmp_path / "resumed", epochs=2))
    monkeypatch.setattr(mq._Trainer, "step", real_step)
    resumed = run_mq(_cfg(mq_data, tmp_path / "resumed", epochs=2))
    assert resumed["train_losses"] == straight["train_losses"]
    assert (json.loads((tmp_path / "resumed" / "predictions.json").read_text())
            == json.loads((tmp_path / "straight" / "predictions.json").read_text()))


def test_missing_misaligned_and_short_features_are_named(tmp_path, one_thread):
    root = make_mq(tmp_path / "d", n_train=3, n_val=2)
    feats = root / "features"
    (feats / "valclip001.npy").unlink()
    with pytest.raises(HeadDataError, match=r"1 of 2 clips of moments_val.json have no features.*valclip001"):
        run_mq(_cfg(root, tmp_path / "o1"))
    rec = run_mq(_cfg(root, tmp_path / "o2", epochs=0, missing_features="skip"))
    assert rec["skipped_clips"] == ["valclip001"] and rec["val_clips"] == 1

    np.save(feats / "valclip001.npy", np.zeros((75, 8), np.float32))
    with pytest.raises(HeadDataError, match=r"valclip001.npy: features are 8-d, expected 16-d"):
        run_mq(_cfg(root, tmp_path / "o3"))
    np.save(feats / "valclip001.npy", np.zeros((20, 16), np.float32))
    with pytest.raises(HeadDataError, match=r"valclip001: its 20 features cover 10.67 s but a moment ends"):
        run_mq(_cfg(root, tmp_path / "o4"))


def test_config_composes_actionformer_defaults_and_refuses_unknown_keys():
    cfg = load_mq_config(["data=a", "features=b", "out=c"])
    assert (cfg.epochs, cfg.batch, cfg.lr, cfg.nms_sigma) == (15, 2, 1e-4, 0.9)
    assert cfg.head["name"] == "actionformer" and cfg.head["levels"] == len(cfg.head["regression_range"]) == 8
    with pytest.raises(HeadConfigError, match="bogus"):
        load_mq_config(["data=a", "features=b", "out=c", "head.bogus=1"])
    with pytest.raises(HeadConfigError, match="vslnet"):
        load_mq_config(["data=a", "features=b", "out=c", "head=vslnet"])


def test_target_assignment_picks_centre_points_of_the_right_level():
    head = ActionFormerHead(4, 2, ActionFormerHead.Options(**{k: v for k, v in TINY_HEAD.items() if k != "name"}))
    points = head.points([16, 8, 4], "cpu")
    cls, reg = assign_targets(points, torch.tensor([[4.0, 9.0]]), torch.tensor([1]), 2, radius=1.5)
    positive = torch.nonzero(cls[:, 1]).squeeze(1).tolist()
    # moment 4..9, centre 6.5: level 0 (stride 1, reach <= 4) takes grid 6 and 7 (inside 6.5 +- 1.5);
    # level 1 (stride 2, reach 4..8) takes grid 8 (reach 4; grid 6 reaches only 3); level 2 none
    assert [float(points[i, 0]) for i in positive] == [6.0, 7.0, 8.0]
    assert cls[:, 0].sum() == 0
    assert reg[positive[0]].tolist() == [2.0, 3.0] and reg[positive[2]].tolist() == [2.0, 0.5]


def test_soft_nms_decays_overlaps_and_decode_returns_sorted_detections():
    segs = np.array([[0.0, 10.0], [1.0, 10.0], [20.0, 30.0]])
    kept, scores = soft_nms_1d(segs, np.array([0.9, 0.8, 0.5]), sigma=0.5, min_score=0.001, max_keep=10)
    assert kept[0].tolist() == [0.0, 10.0] and kept[1].tolist() == [20.0, 30.0]
    assert scores[2] == pytest.approx(0.8 * np.exp(-0.9 ** 2 / 0.5))
    head = ActionFormerHead(4, 3, ActionFormerHead.Options(**{k: v for k, v in TINY_HEAD.items() if k != "name"}))
    head.eval()
    with torch.no_grad():
        out = head(torch.randn(1, 16, 4), torch.ones(1, 16, dtype=torch.bool))
    dets = decode(out, 0, pre_nms_thresh=0.001, pre_nms_topk=50, min_duration=0.05, nms_sigma=0.9, min_score=0.001,
                  max_segments=20)
    assert 0 < len(dets) <= 20 and [d[3] for d in dets] == sorted((d[3] for d in dets), reverse=True)


@pytest.mark.parametrize("layout", ["TD", "DT"])
def test_features_from_egohod_extract_feed_the_head_and_say_random_weights(tmp_path, one_thread, layout):
    from egohod.benchmarks.cli import extract_main
    from tests.benchmarks import fixtures

    clips = {"train": ["c0", "c1"], "val": ["c2"]}
    for i, uid in enumerate(clips["train"] + clips["val"]):
        fixtures.make_video(tmp_path / "videos" / f"{uid}.mp4", 8.0, fps=15, seed=i)
    stride = str(16 / 30)
    assert extract_main(["encoder=egovideo_tiny", f"videos={tmp_path / 'videos'}", f"out={tmp_path / 'feats'}",
                         f"stride={stride}", f"window={stride}", f"feature_layout={layout}", "device=cpu"]) == 0
    data = tmp_path / "data"
    data.mkdir()
    for split, uids in clips.items():
        moments = [{"start_time": 1.0, "end_time": 4.0, "label": "open_drawer", "primary": True}]
        (data / f"moments_{split}.json").write_text(json.dumps({"videos": [{"video_uid": "v", "clips": [
            {"clip_uid": u, "video_start_sec": 0.0, "video_end_sec": 8.0,
             "annotations": [{"labels": moments}]} for u in uids]}]}))
    rec = run_mq(MqConfig(data=str(data), features=str(tmp_path / "feats"), out=str(tmp_path / "run"),
                          head=dict(TINY_HEAD), epochs=1, warmup_epochs=0, batch=2, progress=False, device="cpu"))
    assert rec["features_per_second"] == pytest.approx(1.875) and rec["encoder"] == "egovideo_tiny"
    assert rec["random_weights"] is True and "RANDOM WEIGHTS" in (tmp_path / "run" / "mq.md").read_text()
    assert rec["val_clips"] == 1 and set(rec["metrics"]) >= {"map_avg", "recall1x_tiou0.5"}


@pytest.mark.gpu
def test_runs_on_the_gpu(mq_data, tmp_path):
    rec = run_mq(_cfg(mq_data, tmp_path / "gpu", epochs=2, device="cuda"))
    assert rec["epochs_trained"] == 2 and rec["val_clips"] == 8


def test_the_command_exits_2_naming_what_to_fix(tmp_path, capsys):
    from egohod.benchmarks.heads.cli import main

    assert main(["mq", f"data={tmp_path}", f"features={tmp_path}", f"out={tmp_path / 'o'}"]) == 2
    assert f"egohod head mq: MQ annotation file not found: {tmp_path / 'moments_train.json'}" in capsys.readouterr().err
