"""``egohod score`` JSON keys, annotation readers' error messages, protocol config files."""
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest

from egohod.benchmarks import readers
from egohod.benchmarks.cli import score_main
from egohod.benchmarks.config import BENCHMARKS, load_eval_config
from egohod.config import ConfigError, config_file
from egohod.benchmarks.readers import BenchmarkDataError

from . import fixtures


def _score(capsys, *argv):
    assert score_main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_score_ek100_mir_cli_subprocess(tmp_path):
    rng = np.random.default_rng(0)
    sim = rng.random((6, 4)).astype(np.float32)
    rel = np.eye(6, 4)
    rel[4:, 0] = 1
    np.save(tmp_path / "sim.npy", sim)
    with open(tmp_path / "rel.pkl", "wb") as f:
        pickle.dump(rel, f)
    out = subprocess.run([sys.executable, "-m", "egohod", "score", "ek100-mir", "--sim", str(tmp_path / "sim.npy"),
                          "--relevancy", str(tmp_path / "rel.pkl")], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout)
    assert list(got) == ["map_v2t", "map_t2v", "map_avg", "ndcg_v2t", "ndcg_t2v", "ndcg_avg"]
    from egohod.benchmarks.scorers import ek100_mir_scores

    assert got == pytest.approx(ek100_mir_scores(sim, rel))


def test_score_classification_egomcq_action(tmp_path, capsys):
    s = np.array([[0.9, 0.1, 0.0], [0.1, 0.8, 0.1]])
    np.save(tmp_path / "s.npy", s)
    np.save(tmp_path / "l.npy", np.array([0, 2]))
    got = _score(capsys, "classification", "--scores", str(tmp_path / "s.npy"), "--labels", str(tmp_path / "l.npy"))
    assert got == {"top1": 50.0, "top5": 100.0, "mean_class_acc": 50.0}
    np.save(tmp_path / "m.npy", np.eye(5)[[0, 1, 2]])
    np.save(tmp_path / "a.npy", np.array([0, 0, 2]))
    np.save(tmp_path / "t.npy", np.array([1, 2, 2]))
    got = _score(capsys, "egomcq", "--scores", str(tmp_path / "m.npy"), "--answers", str(tmp_path / "a.npy"),
                 "--types", str(tmp_path / "t.npy"))
    assert got == {"inter": 100.0, "intra": 50.0}
    rng = np.random.default_rng(0)
    for name, arr in (("v", rng.normal(size=(8, 6))), ("n", rng.normal(size=(8, 7))),
                      ("vl", rng.integers(0, 6, 8)), ("nl", rng.integers(0, 7, 8))):
        np.save(tmp_path / f"{name}.npy", arr)
    got = _score(capsys, "ek100-action", "--verb-scores", str(tmp_path / "v.npy"), "--noun-scores",
                 str(tmp_path / "n.npy"), "--verb-labels", str(tmp_path / "vl.npy"), "--noun-labels", str(tmp_path / "nl.npy"))
    assert set(got) == {f"{t}_top{k}" for t in ("verb", "noun", "action") for k in (1, 5)}


def test_score_nlq_mq_segmentation(tmp_path, capsys):
    gt = {"videos": [{"clips": [{"clip_uid": "c1", "annotations": [{"annotation_uid": "a1", "language_queries": [
        {"clip_start_sec": 0.0, "clip_end_sec": 10.0}, {"clip_start_sec": 5.0, "clip_end_sec": 6.0}]}]}]}]}
    pred = {"version": "1.0", "challenge": "ego4d_nlq_challenge", "results": [
        {"clip_uid": "c1", "annotation_uid": "a1", "query_idx": 0, "predicted_times": [[0.0, 10.0], [1, 2]]},
        {"clip_uid": "c1", "annotation_uid": "a1", "query_idx": 1, "predicted_times": [[0.0, 1.0], [5.0, 6.0]]}]}
    (tmp_path / "gt.json").write_text(json.dumps(gt))
    (tmp_path / "pred.json").write_text(json.dumps(pred))
    got = _score(capsys, "nlq", "--predictions", str(tmp_path / "pred.json"), "--ground-truth", str(tmp_path / "gt.json"))
    assert got == {"r1_iou0.3": 50.0, "r1_iou0.5": 50.0, "r5_iou0.3": 100.0, "r5_iou0.5": 100.0, "miou": 50.0}

    mq_gt = {"v": {"subset": "val", "annotations": [{"label": "cut", "start_time": 0, "end_time": 10}]},
             "w": {"subset": "train", "annotations": [{"label": "cut", "start_time": 0, "end_time": 10}]}}
    mq_pred = {"version": "1", "external_data": {}, "results": {"v": [{"label": "cut", "segment": [0, 10], "score": 0.9}]}}
    (tmp_path / "mqgt.json").write_text(json.dumps(mq_gt))
    (tmp_path / "mqp.json").write_text(json.dumps(mq_pred))
    got = _score(capsys, "mq", "--predictions", str(tmp_path / "mqp.json"), "--ground-truth",
                 str(tmp_path / "mqgt.json"), "--subset", "val")
    assert got["map_avg"] == 100.0 and got["recall1x_tiou0.5"] == 100.0 and "map_tiou0.1" in got

    (tmp_path / "gtseg").mkdir()
    (tmp_path / "pred").mkdir()
    (tmp_path / "gtseg" / "v1.txt").write_text("background\ntake\ntake\nput\n")
    (tmp_path / "pred" / "v1").write_text("### Frame level recognition: ###\nbackground take put put\n")
    got = _score(capsys, "segmentation", "--predictions", str(tmp_path / "pred"), "--ground-truth", str(tmp_path / "gtseg"))
    assert set(got) == {"acc", "edit", "f1@10", "f1@25", "f1@50"} and got["acc"] == 75.0 and got["edit"] == 100.0


def test_score_errors_name_the_file(tmp_path, capsys):
    np.save(tmp_path / "sim.npy", np.zeros((3, 2)))
    with open(tmp_path / "rel.pkl", "wb") as f:
        pickle.dump(np.zeros((2, 3)), f)
    assert score_main(["ek100-mir", "--sim", str(tmp_path / "sim.npy"), "--relevancy", str(tmp_path / "rel.pkl")]) == 2
    err = capsys.readouterr().err
    assert "rel.pkl: relevancy has shape (2, 3), expected (3, 2)" in err
    (tmp_path / "bad.pkl").write_bytes(b"not a pickle")
    assert score_main(["ek100-mir", "--sim", str(tmp_path / "sim.npy"), "--relevancy", str(tmp_path / "bad.pkl")]) == 2
    assert "bad.pkl is truncated or corrupt" in capsys.readouterr().err
    assert score_main(["classification", "--scores", str(tmp_path / "missing.npy"), "--labels", "x.npy"]) == 2
    assert "scores file not found" in capsys.readouterr().err


# ---- readers ---------------------------------------------------------------------------------

def test_ek100_readers(tmp_path):
    root = fixtures.make_ek100(tmp_path / "ek")
    ann = root / "epic-kitchens-100-annotations"
    clips = readers.read_ek100_clips(ann / "retrieval_annotations" / "EPIC_100_retrieval_test.csv")
    assert len(clips) == 6 and clips[1].start_sec == 1.0 and clips[1].end_sec == 2.5 and clips[1].action_key == "0:4"
    keys, narr = readers.ek100_action_classes(ann / "EPIC_100_train.csv", ann / "EPIC_100_validation.csv")
    assert keys == sorted(keys) and keys[0] == "0:4" and "10:30" in keys and keys.index("10:30") < keys.index("2:7")
    assert narr[keys.index("3:12")] == ["open fridge", "open the fridge"]
    assert narr[keys.index("10:30")] == ["cut onion", "cut the onion"]


def test_ek100_missing_column_message(tmp_path):
    p = fixtures.write_csv(tmp_path / "EPIC_100_train.csv", ["narration_id", "video_id", "narration"], [["a", "b", "c"]])
    with pytest.raises(BenchmarkDataError, match=r"EPIC_100_train.csv: missing column\(s\) \['participant_id', "
                                                 r"'start_timestamp', 'stop_timestamp', 'verb_class', 'noun_class'\]"):
        readers.read_ek100_clips(p)
    p = fixtures.write_csv(tmp_path / "s.csv", ["narration_id", "narration"], [["a", "b"]])
    with pytest.raises(BenchmarkDataError, match="EK-100 annotation CSV not found: .*nope.csv"):
        readers.read_ek100_clips(tmp_path / "nope.csv")
    bad = list(fixtures.EK_HEADER)
    p = fixtures.write_csv(tmp_path / "t.csv", bad, [["n", "P01", "P01_01", "x", "00:00:01", "12 seconds", 0, 1, "t",
                                                       "v", 1, "n", 2, "[]", "[]"]])
    with pytest.raises(BenchmarkDataError, match=r"t.csv, line 2: timestamp '12 seconds' is not HH:MM:SS.ff"):
        readers.read_ek100_clips(p)


def test_egtea_readers_and_errors(tmp_path):
    (tmp_path / "action_idx.txt").write_text("Open_fridge 1\nTake_knife 2\n")
    assert readers.read_egtea_classes(tmp_path / "action_idx.txt") == ["open fridge", "take knife"]
    (tmp_path / "gap.txt").write_text("Open_fridge 1\nTake_knife 3\n")
    with pytest.raises(BenchmarkDataError, match="gap.txt: class ids must be 1..2 without gaps"):
        readers.read_egtea_classes(tmp_path / "gap.txt")
    (tmp_path / "noid.txt").write_text("Open_fridge\n")
    with pytest.raises(BenchmarkDataError, match=r"noid.txt, line 1: expected '<Class_Name> <id>'"):
        readers.read_egtea_classes(tmp_path / "noid.txt")
    (tmp_path / "split.txt").write_text("OP01-R01-PastaSalad-1-2-F1-F2 2 1 1\nOP02-R03-Salad-1-2-F1-F2 3 1 1\n")
    with pytest.raises(BenchmarkDataError, match=r"split.txt, line 2: action id 3 outside 1..2"):
        readers.read_egtea_split(tmp_path / "split.txt", 2)
    s = readers.read_egtea_split(tmp_path / "split.txt", 3)
    assert s[0].video_id == "OP01-R01-PastaSalad" and s[0].label == 1


def test_egomcq_reader_and_errors(tmp_path):
    root = fixtures.make_egomcq(tmp_path / "m")
    qs = readers.read_egomcq(root / "egomcq.json")
    assert [q.type for q in qs] == [1, 2] and qs[1].answer == 3 and len(qs[0].choices) == 5
    assert qs[1].choices[2].start_sec == pytest.approx(2.2)
    data = json.loads((root / "egomcq.json").read_text())
    del data["1"]["choices"]["2"]["clip_start"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(BenchmarkDataError, match=r"bad.json: question '1' choice 2: missing key 'clip_start'"):
        readers.read_egomcq(tmp_path / "bad.json")
    data = json.loads((root / "egomcq.json").read_text())
    data["0"]["types"] = 3
    (tmp_path / "bad2.json").write_text(json.dumps(data))
    with pytest.raises(BenchmarkDataError, match=r"question '0': types 3 must be 1 \(inter-video\) or 2"):
        readers.read_egomcq(tmp_path / "bad2.json")


def test_protocol_files_set_the_eval_config():
    """The packaged configs/eval/<benchmark>.yaml is the one place the protocol defaults live."""
    from omegaconf import OmegaConf

    for bench in BENCHMARKS:
        defaults = OmegaConf.to_container(OmegaConf.load(config_file(f"eval/{bench}")))
        assert defaults and "num_frames" in defaults, bench
        cfg = load_eval_config(bench, ["data=/d"])
        assert all(getattr(cfg, k) == v for k, v in defaults.items())
    with pytest.raises(ConfigError, match="ek100-mir embeds captions as they are"):
        load_eval_config("ek100-mir", ["data=/d", "templates=['#C C {}']"])
    with pytest.raises(ConfigError, match="mir_text must be 'narration' or 'sentence'"):
        load_eval_config("ek100-mir", ["data=/d", "mir_text=caption"])
    with pytest.raises(ConfigError, match="data=DIR is required"):
        load_eval_config("egtea", [])
