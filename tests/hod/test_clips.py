"""Clip lists (HOD CSV, Ego4D narration.json), stable keys, shard assignment, validation of
narrator output."""
from __future__ import annotations

import csv
import json

import pytest

from egohod.hod.clips import load_clips, sample_times
from egohod.hod.narrators import Validation, validate_output
from egohod.hod.narrators.base import clean_narration
from egohod.hod.runner import shard_clips


def test_ego4d_narrations_become_clips(tmp_path):
    data = {"vid1": {"narration_pass_1": {"narrations": [
        {"timestamp_sec": 4.0, "narration_text": "#C C picks a knife", "annotation_uid": "u1"},
        {"timestamp_sec": 6.0, "narration_text": "#C C cuts the onion", "annotation_uid": "u2"}]}}}
    p = tmp_path / "narration.json"
    p.write_text(json.dumps(data))
    clips = load_clips(str(p), ego4d_window="2.0")
    assert [(c.key, c.video_id, c.start_second, c.end_second) for c in clips] == [("u1", "vid1", 3.0, 5.0),
                                                                                ("u2", "vid1", 5.0, 7.0)]
    assert clips[1].narration == "#C C cuts the onion" and clips[1].extra["dataset"] == "ego4d"


def test_keys_fall_back_to_rows_and_shards_partition(tmp_path):
    p = tmp_path / "c.csv"
    with p.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "start_second", "end_second", "text", "uid"])
        for i in range(10):
            w.writerow(["v", i, i + 1, "['#C C a', '#C C b']" if i == 0 else "#C C x", "dup" if i < 2 else f"u{i}"])
    clips = load_clips(str(p))
    assert [c.key for c in clips[:3]] == ["r00000000", "r00000001", "r00000002"]  # uids not unique -> rows
    assert clips[0].narration == "#C C a" and clips[0].extra["texts"] == ["#C C a", "#C C b"]
    parts = [shard_clips(clips, i, 3) for i in range(3)]
    assert sorted(c.row for part in parts for c in part) == list(range(10))
    assert [len(x) for x in parts] == [4, 3, 3]
    assert load_clips(str(p), limit=4)[-1].row == 3
    assert sample_times(1.0, 3.0, 4).tolist() == [1.25, 1.75, 2.25, 2.75]


def test_validation_of_model_answers():
    v = Validation(min_chars=8, max_chars=60, max_words=8, max_narrations=3)
    ok, bad = validate_output('1. C lifts the cup.\n- "C lifts the cup."\n\n* ok\n' + "w " * 40, v)
    assert ok == ["C lifts the cup."] and bad == ["line 4 too short (2 < 8 chars)", "line 5 too long (79 > 60 chars)"]
    assert validate_output(None, v) == ([], ["empty answer"])
    assert validate_output("one two three four five six seven eight nine", v)[1] == ["line 1 has too many words (9 > 8)"]
    assert clean_narration("#C C picks up #unsure the  cup") == "C picks up the cup"
    assert clean_narration("#O A man X holds a bag") == "A man X holds a bag"


@pytest.mark.parametrize("fmt", ["xml"])
def test_unknown_clip_format(tmp_path, fmt):
    with pytest.raises(ValueError, match="clips_format"):
        load_clips(str(tmp_path / "x.csv"), fmt=fmt)
