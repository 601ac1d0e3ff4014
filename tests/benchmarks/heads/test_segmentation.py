"""egohod head segmentation on a generated set in the MS-TCN layout: temporal heads beat a
per-frame classifier, ASFormer learns, folds aggregate, runs resume and own their folder."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from egohod.benchmarks.heads.common import HeadConfigError, HeadRun, HeadRunError
from egohod.benchmarks.heads.segmentation import METRIC_KEYS, load_segmentation_config, run_segmentation
from egohod.benchmarks.heads.synthetic import write_segmentation_set

# tiny heads: they train in seconds on a CPU
TINY_MSTCN = ["head=mstcn", "head.num_stages=2", "head.num_layers=6", "head.num_f_maps=16", "head.lr=0.005"]
TINY_ASFORMER = ["head=asformer", "head.num_decoders=1", "head.num_layers=4", "head.num_f_maps=16", "head.lr=0.005",
                 "head.channel_masking_rate=0.1"]
LINEAR = ["head=linear", "head.lr=0.01"]


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    """tiny convolutions: more threads only add contention on a shared CPU"""


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return write_segmentation_set(tmp_path_factory.mktemp("seg"), num_videos=8, length=(140, 180))


def _run(data, feats, out, *extra):
    cfg = load_segmentation_config([f"data={data}", f"features={feats}", f"out={out}", "progress=false", *extra])
    return run_segmentation(cfg)


def test_mstcn_beats_a_per_frame_linear_classifier_on_the_test_fold(synth, tmp_path):
    data, feats = synth
    linear = _run(data, feats, tmp_path / "linear", *LINEAR, "head.epochs=15", "split=1")["metrics"]
    mstcn = _run(data, feats, tmp_path / "mstcn", *TINY_MSTCN, "head.epochs=15", "split=1")["metrics"]
    # per-frame features are noisy: frame accuracy alone is fair, but segments shatter
    assert mstcn["acc"] >= linear["acc"] + 5, (mstcn, linear)
    assert mstcn["f1@25"] >= linear["f1@25"] + 30, (mstcn, linear)
    assert mstcn["edit"] >= linear["edit"] + 30, (mstcn, linear)


def test_asformer_trains_and_its_loss_falls(synth, tmp_path):
    data, feats = synth
    _run(data, feats, tmp_path / "asf", *TINY_ASFORMER, "head.epochs=8", "split=2")
    history = json.loads((tmp_path / "asf" / "split2" / "training.json").read_text())["history"]
    losses = [h["loss"] for h in history]
    assert len(losses) == 8 and losses[-1] < 0.7 * losses[0], losses


def test_split_all_writes_each_fold_the_mean_and_the_std(synth, tmp_path):
    data, feats = synth
    res = _run(data, feats, tmp_path / "all", *LINEAR, "head.epochs=2", "split=all")
    metrics = json.loads((tmp_path / "all" / "metrics.json").read_text())
    assert sorted(metrics) == sorted(METRIC_KEYS)
    folds = [json.loads((tmp_path / "all" / f"split{k}" / "metrics.json").read_text()) for k in (1, 2, 3, 4)]
    for key in METRIC_KEYS:
        vals = [f[key] for f in folds]
        assert metrics[key] == pytest.approx(np.mean(vals))
        assert res["std"][key] == pytest.approx(np.std(vals, ddof=1))
    table = (tmp_path / "all" / "segmentation.md").read_text()
    assert "| mean |" in table and "| std |" in table and table.count("| linear |") == 6
    # every test video of every fold has a prediction; train videos have none
    assert sorted(p.name for p in (tmp_path / "all" / "split3" / "predictions").iterdir()) == ["video02", "video06"]


def test_predictions_score_the_same_with_egohod_score(synth, tmp_path, capsys):
    from egohod.benchmarks.cli import score_main

    data, feats = synth
    metrics = _run(data, feats, tmp_path / "o", *LINEAR, "head.epochs=3", "split=1")["metrics"]
    gt = tmp_path / "gt"
    gt.mkdir()
    for name in ("video00", "video04"):  # the test fold of split 1
        (gt / f"{name}.txt").write_text((data / "groundTruth" / f"{name}.txt").read_text())
    capsys.readouterr()
    assert score_main(["segmentation", "--predictions", str(tmp_path / "o" / "split1" / "predictions"),
                       "--ground-truth", str(gt)]) == 0
    scored = json.loads(capsys.readouterr().out)
    for key in METRIC_KEYS:
        assert scored[key] == pytest.approx(metrics[key])
    first = (tmp_path / "o" / "split1" / "predictions" / "video00").read_text().splitlines()
    assert first[0] == "### Frame level recognition: ###"
    assert len(first[1].split()) == len((data / "groundTruth" / "video00.txt").read_text().split())


def test_an_interrupted_run_resumes_to_the_same_model(synth, tmp_path, monkeypatch):
    data, feats = synth
    args = [*TINY_MSTCN, "head.epochs=4", "split=1"]
    straight = _run(data, feats, tmp_path / "a", *args)["metrics"]

    original = HeadRun.save_checkpoint

    def crash_after_epoch_2(self, rel, model, meta):
        path = original(self, rel, model, meta)
        if str(rel).endswith("last.pt") and meta.get("epoch") == 2:
            raise KeyboardInterrupt
        return path

    monkeypatch.setattr(HeadRun, "save_checkpoint", crash_after_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _run(data, feats, tmp_path / "b", *args)
    assert not (tmp_path / "b" / "split1" / "metrics.json").exists()
    monkeypatch.setattr(HeadRun, "save_checkpoint", original)
    resumed = _run(data, feats, tmp_path / "b", *args)["metrics"]
    history = json.loads((tmp_path / "b" / "split1" / "training.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4]
    from egohod.models.checkpoint_io import read_checkpoint

    a, b = (read_checkpoint(tmp_path / run / "split1" / "model.pt") for run in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed == straight


def test_a_folder_holds_one_configuration(synth, tmp_path):
    data, feats = synth
    _run(data, feats, tmp_path / "o", *LINEAR, "head.epochs=1", "split=1")
    before = (tmp_path / "o" / "split1" / "metrics.json").stat().st_mtime_ns
    # same settings (device/progress may differ): the finished fold is read back, not retrained
    _run(data, feats, tmp_path / "o", *LINEAR, "head.epochs=1", "split=1", "device=cpu")
    assert (tmp_path / "o" / "split1" / "metrics.json").stat().st_mtime_ns == before
    with pytest.raises(HeadRunError, match=r"head.epochs: folder has 1, this run has 2"):
        _run(data, feats, tmp_path / "o", *LINEAR, "head.epochs=2", "split=1")
    _run(data, feats, tmp_path / "o", *LINEAR, "head.epochs=2", "split=1", "overwrite=true")
    assert len(json.loads((tmp_path / "o" / "split1" / "training.json").read_text())["history"]) == 2


def test_the_old_name_layout_still_works_and_old_folders_resume(synth, tmp_path):
    """The feature orientation was `layout=` (a name the other commands use for the video folder
    layout); it is `feature_layout=` now. The old name is read with a FutureWarning, and a folder
    whose config.json says `layout` is the same run."""
    data, feats = synth
    with pytest.warns(FutureWarning, match="layout= is deprecated; use feature_layout="):
        cfg = load_segmentation_config([f"data={data}", f"features={feats}", "out=o", *LINEAR, "layout=DT"])
    assert cfg.feature_layout == "DT"
    _run(data, feats, tmp_path / "o", *LINEAR, "head.epochs=1", "split=1", "feature_layout=DT")
    saved = tmp_path / "o" / "config.json"
    recorded = json.loads(saved.read_text())
    recorded["layout"] = recorded.pop("feature_layout")  # as an older egohod wrote it
    saved.write_text(json.dumps(recorded))
    before = (tmp_path / "o" / "split1" / "metrics.json").stat().st_mtime_ns
    _run(data, feats, tmp_path / "o", *LINEAR, "head.epochs=1", "split=1", "feature_layout=DT")
    assert (tmp_path / "o" / "split1" / "metrics.json").stat().st_mtime_ns == before  # read back, not retrained
    with pytest.raises(HeadRunError, match=r"feature_layout: folder has 'DT', this run has 'TD'"):
        _run(data, feats, tmp_path / "o", *LINEAR, "head.epochs=1", "split=1", "feature_layout=TD")


def test_results_of_random_weight_features_say_so(synth, tmp_path):
    import shutil

    data, feats = synth
    rnd = tmp_path / "features"
    shutil.copytree(feats, rnd)
    (rnd / "index.json").write_text(json.dumps({"encoder": "egovideo_b", "weights": "random:seed=0",
                                                "random_weights": True, "embed_dim": 16, "layout": "[D, T] float32"}))
    res = _run(data, rnd, tmp_path / "o", *LINEAR, "head.epochs=1", "split=1")
    assert res["random_weights"] is True
    assert "egovideo_b (RANDOM WEIGHTS)" in (tmp_path / "o" / "segmentation.md").read_text()


@pytest.mark.parametrize("args, message", [
    (["head=mstcn", "head.num_stage=3"], r"head.num_stage(.|\n)*settings of head=mstcn: .*num_stages"),
    (["head=mstcnn"], r"mstcnn"),
    (["feature_layout=DTT"], r"feature_layout must be auto, DT or TD"),
    (["split=five"], r"split must be a fold number or 'all'"),
    (["select=best"], r"select must be last or holdout"),
    (["nosuchkey=1"], r"nosuchkey(.|\n)*known keys: data, features"),
])
def test_bad_settings_are_errors_that_say_what_to_change(args, message, tmp_path):
    with pytest.raises(HeadConfigError, match=message):
        load_segmentation_config([f"data={tmp_path}", f"features={tmp_path}", f"out={tmp_path / 'o'}", *args])


def test_presets_and_head_defaults_are_the_papers():
    cfg = load_segmentation_config(["data=d", "features=f", "out=o", "dataset=gtea"])
    assert cfg.head == {"name": "mstcn", "epochs": 50, "lr": 5e-4, "weight_decay": 0.0, "batch_size": 1,
                        "smooth_weight": 0.15, "smooth_clamp": 16.0, "plateau_patience": None,
                        "num_stages": 4, "num_layers": 10, "num_f_maps": 64, "dropout": 0.5}
    assert cfg.dataset.classes[-1] == "background" and len(cfg.dataset.classes) == 11
    assert cfg.dataset.folds == [1, 2, 3, 4]
    asf = load_segmentation_config(["data=d", "features=f", "out=o", "head=asformer"]).head
    assert (asf["epochs"], asf["num_decoders"], asf["num_layers"], asf["num_f_maps"]) == (120, 3, 10, 64)


def test_gtea_preset_refuses_another_class_list(synth, tmp_path):
    from egohod.benchmarks.heads.common import HeadDataError

    data, feats = synth
    with pytest.raises(HeadDataError, match="dataset=gtea expects"):
        _run(data, feats, tmp_path / "o", *LINEAR, "dataset=gtea")


def test_holdout_selection_chooses_the_epoch_on_training_videos_only(synth, tmp_path):
    data, feats = synth
    _run(data, feats, tmp_path / "o", *LINEAR, "head.epochs=4", "split=1", "select=holdout")
    rec = json.loads((tmp_path / "o" / "split1" / "training.json").read_text())
    assert len(rec["holdout_videos"]) == 1 and rec["selection"] == "holdout"
    assert not set(rec["holdout_videos"]) & (set(rec["test_videos"]) | set(rec["train_videos"]))
    scores = [np.mean([h["holdout"][k] for k in METRIC_KEYS]) for h in rec["history"]]
    assert rec["epoch_reported"] == int(np.argmax(scores)) + 1


def test_cli_exit_codes_and_messages(synth, tmp_path, capsys):
    from egohod.cli import main

    data, feats = synth
    assert main(["head"]) == 2 and "segmentation" in capsys.readouterr().out
    assert main(["head", "segmentaton"]) == 2 and "unknown task 'segmentaton'" in capsys.readouterr().err
    empty = tmp_path / "nofeatures"
    empty.mkdir()
    assert main(["head", "segmentation", f"data={data}", f"features={empty}", f"out={tmp_path / 'o'}", "split=1",
                 "progress=false"]) == 2
    err = capsys.readouterr().err
    assert "egohod head segmentation: video 'video01' is in the split but has no features" in err
    assert main(["head", "segmentation", f"data={data}", f"features={feats}", f"out={tmp_path / 'o'}",
                 "device=tpu"]) == 2
    assert "device='tpu' is not a device" in capsys.readouterr().err
    assert main(["head", "segmentation", f"data={data}", f"features={feats}", f"out={tmp_path / 'o2'}", "split=2",
                 "head=linear", "head.epochs=1", "progress=false"]) == 0
    out = capsys.readouterr().out
    assert "| 2 | linear | unknown |" in out and f"metrics: {tmp_path / 'o2' / 'metrics.json'}" in out


@pytest.mark.gpu
def test_a_fold_trained_on_cuda_predicts_the_same_from_its_checkpoint_on_the_cpu(synth, tmp_path):
    from egohod.benchmarks.heads import HEADS, head_options
    from egohod.benchmarks.heads.segmentation import predict_videos
    from egohod.benchmarks.heads.segmentation_data import load_split, read_mapping
    from egohod.models.checkpoint_io import read_checkpoint_with_meta

    data, feats = synth
    res = _run(data, feats, tmp_path / "o", *TINY_MSTCN, "head.epochs=5", "split=1", "device=cuda")
    assert json.loads((tmp_path / "o" / "split1" / "training.json").read_text())["device"].startswith("cuda")
    sd, meta = read_checkpoint_with_meta(tmp_path / "o" / "split1" / "model.pt")
    head = meta["config"]["head"]
    model = HEADS.get("mstcn")(meta["input_dim"], len(meta["classes"]), head_options("mstcn", head))
    model.load_state_dict(sd)
    test = load_split(data, feats, ["video00", "video04"], read_mapping(data / "mapping.txt"))
    cpu = predict_videos(model, test, torch.device("cpu"))
    written = (tmp_path / "o" / "split1" / "predictions" / "video00").read_text().splitlines()[1].split()
    classes = meta["classes"]
    agree = np.mean([classes[i] == w for i, w in zip(cpu[0], written)])
    assert agree > 0.99 and set(res["metrics"]) == set(METRIC_KEYS)
