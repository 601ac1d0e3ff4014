"""Bad input and repeated runs: ``egohod extract`` settings and per-video failures, EK-100 rows
with stop < start, non-finite similarities / relevancies, RANDOM WEIGHTS in tables and consoles."""
import json

import numpy as np
import pytest
import torch

from egohod.benchmarks import readers
from egohod.benchmarks.cli import eval_main, extract_main, score_main
from egohod.benchmarks.results import write_results
from egohod.benchmarks.scorers import classification_scores, ek100_mir_scores, egomcq_scores

from . import fixtures


def _extract(vids, out, *extra):
    return extract_main(["encoder=egovideo_tiny", f"videos={vids}", f"out={out}", "device=cpu", "batch=4", *extra])


@pytest.fixture()
def two_videos(tmp_path):
    vids = tmp_path / "videos"
    fixtures.make_video(vids / "a.mp4", 2.0, seed=1)
    fixtures.make_video(vids / "b.mp4", 1.5, seed=2)
    return vids


def test_extract_records_its_settings_and_refuses_other_ones(two_videos, tmp_path, capsys):
    out = tmp_path / "feats"
    assert _extract(two_videos, out, "stride=1.0") == 0
    assert "egovideo_tiny: RANDOM WEIGHTS" in capsys.readouterr().out
    settings = json.loads((out / "settings.json").read_text())
    assert settings["encoder"] == "egovideo_tiny" and settings["weights"].startswith("random")
    assert settings["stride"] == 1.0 and settings["window"] == 1.0 and settings["num_frames"] == 4
    assert settings["seed"] == 0 and settings["embed_dim"] == 32
    assert settings["input_spec"]["image_size"] == 32 and settings["input_spec"]["mean"][0] == pytest.approx(0.48145466)
    index_before = (out / "index.json").read_text()
    feats_before = (out / "a.npy").read_bytes()
    assert json.loads(index_before)["stride"] == 1.0

    with pytest.raises(SystemExit, match=r"(?s)other settings.*stride: folder has 1\.0, this run has 0\.5"):
        _extract(two_videos, out, "stride=0.5")
    with pytest.raises(SystemExit, match=r"num_frames: folder has 4, this run has 2"):
        _extract(two_videos, out, "stride=1.0", "num_frames=2")
    with pytest.raises(SystemExit, match=r"seed: folder has 0, this run has 1"):
        _extract(two_videos, out, "stride=1.0", "seed=1")
    # a checkpoint (another sha256 than 'random') is other weights
    import egohod

    ckpt = tmp_path / "tiny.pt"
    torch.save(egohod.create_model("egovideo_tiny").state_dict(), ckpt)
    with pytest.raises(SystemExit, match=r"weights: folder has 'random"):
        _extract(two_videos, out, "stride=1.0", f"checkpoint={ckpt}")
    # nothing was rewritten by the refused runs; the same settings resume (skip) as before
    assert (out / "index.json").read_text() == index_before and (out / "a.npy").read_bytes() == feats_before
    assert _extract(two_videos, out, "stride=1.0", "batch=1") == 0
    assert "2 already done" in capsys.readouterr().out
    assert not (out / ".lock").exists()


def test_extract_refuses_a_folder_of_features_without_settings(two_videos, tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    np.save(out / "a.npy", np.zeros((2, 32), np.float32))
    with pytest.raises(SystemExit, match="no settings.json"):
        _extract(two_videos, out)


def test_extract_lock_names_the_holder(two_videos, tmp_path, capsys):
    from egohod.fileio import FolderLock

    out = tmp_path / "feats"
    with FolderLock(out, what="another extract"):
        assert _extract(two_videos, out) == 2
    err = capsys.readouterr().err
    assert "in use by another extract (PID" in err
    assert not (out / "settings.json").exists()


def test_extract_records_failed_videos_goes_on_and_retries_them(two_videos, tmp_path, capsys):
    good = (two_videos / "b.mp4").read_bytes()
    (two_videos / "b.mp4").write_bytes(good[: len(good) // 3])  # truncated: cannot be opened
    (two_videos / "c.mp4").write_bytes(b"not a video" * 50)
    out = tmp_path / "feats"
    assert _extract(two_videos, out) == 1
    cap = capsys.readouterr()
    assert "2 of 3 videos failed" in cap.err and "failures.jsonl" in cap.err and "re-run the same command" in cap.err
    lines = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert [x["video"] for x in lines] == ["b", "c"]
    assert lines[0]["path"].endswith("b.mp4") and lines[0]["error"].startswith("VideoReadError: ")
    assert (out / "a.npy").is_file() and not (out / "b.npy").exists()
    index = json.loads((out / "index.json").read_text())
    assert list(index["videos"]) == ["a"] and index["failed"] == ["b", "c"]
    # repaired videos are retried by the same command; the one already done is skipped
    (two_videos / "b.mp4").write_bytes(good)
    (two_videos / "c.mp4").unlink()
    assert _extract(two_videos, out) == 0
    assert "2 videos (1 extracted, 1 already done)" in capsys.readouterr().out
    assert np.load(out / "b.npy").shape == (2, 32) and not (out / "failures.jsonl").exists()
    assert json.loads((out / "index.json").read_text())["failed"] == []


def test_extract_decode_failure_in_a_worker_process_is_that_videos_failure(two_videos, tmp_path, monkeypatch, capsys):
    from egohod.data import video

    real = video.read_clip

    def read_clip(path, *a, **k):
        if str(path).endswith("b.mp4"):
            raise video.VideoReadError(path, "corrupt packet in window")
        return real(path, *a, **k)

    monkeypatch.setattr(video, "read_clip", read_clip)  # forked workers inherit it
    out = tmp_path / "feats"
    assert _extract(two_videos, out, "workers=2") == 1
    (fail,) = [json.loads(x) for x in (out / "failures.jsonl").read_text().splitlines()]
    assert fail["video"] == "b" and "corrupt packet in window" in fail["error"]
    assert (out / "a.npy").is_file()


def test_ek100_row_with_stop_before_start_is_an_error_naming_the_row(tmp_path):
    rows = [fixtures._ek_row("P01_01_0", "P01", "P01_01", 0.0, 1.0, "open fridge", "open", 3, "fridge", 12),
            fixtures._ek_row("P01_01_1", "P01", "P01_01", 2.5, 2.0, "take knife", "take", 0, "knife", 4)]
    path = fixtures.write_csv(tmp_path / "EPIC_100_retrieval_test.csv", fixtures.EK_HEADER, rows)
    with pytest.raises(readers.BenchmarkDataError,
                       match=r"line 3 \(narration_id P01_01_1\): stop_timestamp 00:00:02\.00 is before "
                             r"start_timestamp 00:00:02\.50"):
        readers.read_ek100_clips(path)
    rows[1] = fixtures._ek_row("P01_01_1", "P01", "P01_01", 2.0, 2.0, "take knife", "take", 0, "knife", 4)
    fixtures.write_csv(path, fixtures.EK_HEADER, rows)
    assert readers.read_ek100_clips(path)[1].end_sec == 2.0  # zero length is not reversed


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_scores_are_errors(bad):
    sim = np.random.default_rng(0).random((4, 3))
    sim[2, 1] = bad
    with pytest.raises(ValueError, match=r"similarity matrix contains 1 non-finite value.*index \(2, 1\)"):
        ek100_mir_scores(sim, np.eye(4, 3))
    with pytest.raises(ValueError, match="scores contains 1 non-finite"):
        classification_scores(sim, np.array([0, 1, 2, 0]))
    with pytest.raises(ValueError, match="EgoMCQ scores contains 1 non-finite"):
        egomcq_scores(sim, np.array([0, 1, 2, 0]), np.array([1, 2, 1, 2]))


def test_nan_relevancy_is_an_error_not_null_metrics():
    rel = np.eye(4, 3)
    rel[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"relevancy matrix contains 1 non-finite value\(s\) \(NaN\)"):
        ek100_mir_scores(np.random.default_rng(0).random((4, 3)), rel)


def test_score_cli_rejects_inf_similarity_and_nan_relevancy(tmp_path, capsys):
    sim = np.random.default_rng(0).random((4, 3))
    rel = np.eye(4, 3)
    rel[3, 0] = 1
    np.save(tmp_path / "sim.npy", sim)
    np.save(tmp_path / "rel.npy", rel)
    argv = ["ek100-mir", "--sim", str(tmp_path / "sim.npy"), "--relevancy", str(tmp_path / "rel.npy")]
    assert score_main(argv) == 0
    capsys.readouterr()
    sim[0, 0] = np.inf
    np.save(tmp_path / "inf.npy", sim)
    assert score_main(["ek100-mir", "--sim", str(tmp_path / "inf.npy"), "--relevancy", str(tmp_path / "rel.npy")]) == 2
    cap = capsys.readouterr()
    assert "similarity matrix contains 1 non-finite value(s) (inf)" in cap.err and cap.out == ""
    rel[3, 0] = np.nan
    np.save(tmp_path / "nan.npy", rel)
    assert score_main(argv[:4] + [str(tmp_path / "nan.npy")]) == 2
    err = capsys.readouterr().err
    assert "nan.npy: relevancy has 1 NaN / inf entries (the first at clip 3, caption 0)" in err


def test_random_weights_are_marked_in_the_table_and_console(tmp_path, capsys):
    data = fixtures.make_egtea(tmp_path / "egtea")
    argv = ["egtea", "encoder=egovideo_tiny", f"data={data}", "device=cpu", "num_frames=2"]
    assert eval_main(argv + [f"out={tmp_path / 'r'}"]) == 0
    console = capsys.readouterr().out
    assert "encoder egovideo_tiny: RANDOM WEIGHTS" in console
    assert "| egtea | egovideo_tiny (RANDOM WEIGHTS) |" in console
    assert "| egtea | egovideo_tiny (RANDOM WEIGHTS) |" in (tmp_path / "r" / "egtea.md").read_text()
    assert json.loads((tmp_path / "r" / "egtea.json").read_text())["random_weights"] is True
    # with a checkpoint: no mark anywhere
    import egohod

    ckpt = tmp_path / "tiny.pt"
    torch.save(egohod.create_model("egovideo_tiny").state_dict(), ckpt)
    assert eval_main(argv + [f"out={tmp_path / 'c'}", f"checkpoint={ckpt}"]) == 0
    console = capsys.readouterr().out
    table = (tmp_path / "c" / "egtea.md").read_text()
    assert "RANDOM" not in console and "RANDOM" not in table and "| egtea | egovideo_tiny |" in table
    assert json.loads((tmp_path / "c" / "egtea.json").read_text())["random_weights"] is False


def test_write_results_marks_any_random_weights_record(tmp_path):
    for weights in ("random", "random:seed=3"):
        _, md = write_results(tmp_path, "x", {"benchmark": "x", "encoder": "e", "weights": weights,
                                              "metrics": {"top1": 1.0}})
        assert "| x | e (RANDOM WEIGHTS) | 1.00 |" in md.read_text()
    _, md = write_results(tmp_path, "x", {"benchmark": "x", "encoder": "e", "weights": "ab" * 32, "metrics": {}})
    assert "| x | e |" in md.read_text()
