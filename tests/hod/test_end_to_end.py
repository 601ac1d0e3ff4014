"""End to end on the synthetic corpus: skin detector + template narrator, bad inputs recorded per
clip, output CSV readable by the pretraining loader's parser, shards + merge."""
from __future__ import annotations

import ast
import csv
import json

from conftest import run_args

from egohod.data.metadata import read_hod_csv
from egohod.hod.cli import main


def _records(out):
    return {r["uid"]: r for r in map(json.loads, (out / "hod_records.jsonl").read_text().splitlines())}


def test_run_and_merge_end_to_end(hod_corpus, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", *run_args(hod_corpus, out)]) == 0
    assert main(["merge", f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "8 clips, 4 ok, 4 failed" in printed

    recs = _records(out)
    assert set(recs) == {"a0", "a1", "a2", "a3", "b0", "b1", "c0", "d0"}
    # good clips: the right hand carries the block to the right; the other hand goes up
    a0 = recs["a0"]
    assert a0["status"] == "ok" and a0["stage"] is None
    hand = a0["dynamics"]["hands"]["right"]
    assert hand["direction"] == "right" and hand["extent"] > 0.05
    assert hand["contact_states"] == ["P"] and hand["holds"] == ["o1"]
    assert a0["dynamics"]["objects"][0]["direction"] == "right"
    assert a0["narrations"] == ["#C C's right hand holds the red block and moves it right."]
    assert len(a0["detections"]) == 8 and all(len(f["hands"]) == 1 for f in a0["detections"])
    assert recs["a1"]["status"] == "ok"  # spans the two chunks
    assert recs["b0"]["dynamics"]["hands"]["left"]["direction"] == "up"

    # bad inputs: a reason per clip, the run finished
    assert recs["a2"]["stage"] == "decode" and "starts after the end of video vidA (4.000s)" in recs["a2"]["reason"]
    assert recs["a3"]["stage"] == "decode" and "1.500s beyond the end of video vidA" in recs["a3"]["reason"]
    assert recs["c0"]["stage"] == "decode" and "vidC" in recs["c0"]["reason"]
    assert recs["d0"]["stage"] == "decode" and "vidD" in recs["d0"]["reason"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["ok"] == 4 and summary["failed_by_stage"] == {"decode": 4}
    with (out / "failures.csv").open() as f:
        fails = list(csv.DictReader(f))
    assert {r["key"] for r in fails} == {"a2", "a3", "c0", "d0"} and all(r["reason"] for r in fails)

    # the CSV is what the pretraining loader reads: text is a list literal of the new narrations
    loaded = read_hod_csv(out / "hod.csv")
    assert [r.uid for r in loaded] == ["a0", "a1", "b0", "b1"]
    assert loaded[0].texts == tuple(a0["narrations"])
    with (out / "hod.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["narration"] == "#C C carries the red block"
    assert ast.literal_eval(rows[0]["text"]) == a0["narrations"]
    assert (out / "config.yaml").read_text().count("name: skin") == 1


def test_shards_partition_the_clips(hod_corpus, tmp_path):
    out = tmp_path / "sharded"
    for i in range(3):
        assert main(["run", *run_args(hod_corpus, out), f"shard={i}", "num_shards=3"]) == 0
    assert main(["merge", f"out={out}"]) == 0
    recs = [json.loads(x) for x in (out / "hod_records.jsonl").read_text().splitlines()]
    assert [r["row"] for r in recs] == list(range(8))
    for i in range(3):
        done = json.loads((out / "shards" / f"{i:05d}-of-00003" / "done.json").read_text())
        assert done["clips"] == len(range(i, 8, 3))


def test_merge_refuses_unfinished_shards(hod_corpus, tmp_path):
    out = tmp_path / "partial"
    assert main(["run", *run_args(hod_corpus, out), "shard=1", "num_shards=2"]) == 0
    import pytest

    with pytest.raises(RuntimeError, match=r"shard\(s\) \[0\] of 2 are not done"):
        main(["merge", f"out={out}"])
    assert main(["merge", f"out={out}", "allow_incomplete=true"]) == 0


def test_slurm_array_index_picks_the_shard(monkeypatch):
    from egohod.hod.runner import resolve_shard

    env = {"SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "4", "SLURM_ARRAY_TASK_COUNT": "5"}
    assert resolve_shard(None, None, env) == (3, 5)
    assert resolve_shard(1, 2, env) == (1, 2)  # explicit settings win
    assert resolve_shard(None, None, {}) == (0, 1)
    import pytest

    with pytest.raises(ValueError, match="shard=5 num_shards=5"):
        resolve_shard(5, 5, {})


def test_exit_code_when_every_clip_fails(hod_corpus, tmp_path, capsys):
    out = tmp_path / "allbad"
    assert main(["run", *run_args(hod_corpus, out), "shard=3", "num_shards=8"]) == 1  # only the clip past the end
    assert "all 1 clips of this shard failed" in capsys.readouterr().err
