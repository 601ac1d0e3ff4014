"""HOD CSV and Ego4D narration parsing, held-out split."""
import json

import pytest

from egohod.data.metadata import (
    ClipRecord,
    MetadataError,
    parse_text_field,
    read_ego4d_narrations,
    read_hod_csv,
    split_holdout,
    write_hod_csv,
)


def _write(tmp_path, text, name="m.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_hod_csv_plain_and_list_literal_text(tmp_path):
    p = _write(tmp_path, "video_id,start_second,end_second,text,dataset,uid\n"
                         "v1,1.5,3.25,#C C opens the drawer,ego4d,u1\n"
                         "v2,0,2,\"['#C C lifts the cup with the right hand', 'C picks up a cup ']\",ego4d,u2\n"
                         "v3,4,5,,ego4d,u3\n")
    r = read_hod_csv(p)
    assert [x.video_id for x in r] == ["v1", "v2", "v3"]
    assert (r[0].start, r[0].end, r[0].texts, r[0].uid) == (1.5, 3.25, ("#C C opens the drawer",), "u1")
    assert r[1].texts == ("#C C lifts the cup with the right hand", "C picks up a cup")
    assert r[2].texts == ()  # empty caption: a bad sample for the dataset, not a file error
    assert r[1].source == f"{p}:3"


def test_hod_csv_optional_columns_may_be_absent(tmp_path):
    r = read_hod_csv(_write(tmp_path, "video_id,start_second,end_second,text\nabc,0.0,1.0,hello\n"))
    assert r[0].dataset == "" and r[0].uid == "" and r[0].duration == 1.0


@pytest.mark.parametrize("body, message", [
    ("video_id,start,end_second,text\nv,0,1,x\n", "lacks required column"),
    ("video_id,start_second,end_second,text,extra\nv,0,1,x,y\n", "unknown column"),
    ("video_id,start_second,end_second,text\nv,zero,1,x\n", r"m.csv:2: start_second must be a number"),
    ("video_id,start_second,end_second,text\nv,0,1,x\nv,3,2,y\n", r"m.csv:3: need 0 <= start_second < end_second"),
    ("video_id,start_second,end_second,text\n,0,1,x\n", "empty video_id"),
    ("video_id,start_second,end_second,text\nv,0,1,\"['a', 3]\"\n", "must hold strings"),
    ("video_id,start_second,end_second,text\nv,0,1,\"['a' 'b', ]]\"\n", "does not parse"),
    ("video_id,start_second,end_second,text\n", "no clips"),
])
def test_hod_csv_errors_name_file_line_and_field(tmp_path, body, message):
    with pytest.raises(MetadataError, match=message):
        read_hod_csv(_write(tmp_path, body))


def test_missing_csv(tmp_path):
    with pytest.raises(MetadataError, match="not found"):
        read_hod_csv(tmp_path / "none.csv")


def test_text_field_brackets_without_list_are_text():
    assert parse_text_field("[x] marks the spot") == ("[x] marks the spot",)
    assert parse_text_field("  ") == ()


def test_write_then_read_roundtrip(tmp_path):
    recs = [ClipRecord("a", 0.0, 1.5, ("one",), "d", "u0"), ClipRecord("b", 2.0, 3.0, ("x, 'y'", "z"), "d", "u1")]
    back = read_hod_csv(write_hod_csv(tmp_path / "o.csv", recs))
    assert [(r.video_id, r.start, r.end, r.texts, r.uid) for r in back] == \
        [(r.video_id, r.start, r.end, r.texts, r.uid) for r in recs]


def _narrations(tmp_path):
    data = {
        "vidA": {"narration_pass_1": {"narrations": [
            {"timestamp_sec": 10.0, "narration_text": "#C C opens the tap", "annotation_uid": "a1"},
            {"timestamp_sec": 12.0, "narration_text": "#C C washes a plate", "annotation_uid": "a2"},
            {"timestamp_sec": 14.0, "narration_text": "#C C #unsure", "annotation_uid": "a3"},
            {"timestamp_sec": 16.0, "narration_text": "#C C closes the tap", "annotation_uid": "a4"}]}},
        "vidB": {"narration_pass_1": {"narrations": [
            {"timestamp_sec": 0.2, "narration_text": "#C C walks", "annotation_uid": "b1"},
            {"timestamp_sec": 6.2, "narration_text": "#C C sits", "annotation_uid": "b2"}]},
            "narration_pass_2": {"narrations": [
                {"timestamp_sec": 3.2, "narration_text": "#C C looks around", "annotation_uid": "b3"}]}},
    }
    p = tmp_path / "narration.json"
    p.write_text(json.dumps(data))
    return p


def test_ego4d_egovlp_windows(tmp_path):
    r = read_ego4d_narrations(_narrations(tmp_path))
    a = [x for x in r if x.video_id == "vidA"]
    assert [x.texts[0] for x in a] == ["#C C opens the tap", "#C C washes a plate", "#C C closes the tap"]
    # beta_A = mean gap of 10,12,16 = 3 ; beta_B = mean gap of 0.2,3.2,6.2 = 3 ; alpha = 3 -> half window 0.5
    assert (a[0].start, a[0].end) == pytest.approx((9.5, 10.5))
    b = [x for x in r if x.video_id == "vidB"]
    assert b[0].start == 0.0 and b[0].end == pytest.approx(0.7)  # clipped at 0
    assert [x.uid for x in b] == ["b1", "b3", "b2"] and all(x.dataset == "ego4d" for x in r)


def test_ego4d_fixed_window_and_errors(tmp_path):
    r = read_ego4d_narrations(_narrations(tmp_path), window=4.0, drop_unsure=False)
    assert len(r) == 7 and r[0].duration == pytest.approx(4.0)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"v": {"narration_pass_1": {"narrations": [{"narration_text": "x"}]}}}))
    with pytest.raises(MetadataError, match=r"v/narration_pass_1/narrations\[0\]"):
        read_ego4d_narrations(bad)
    with pytest.raises(MetadataError, match="not valid JSON"):
        read_ego4d_narrations(_write(tmp_path, "{", "x.json"))


def test_holdout_split_keeps_videos_whole_and_is_deterministic():
    recs = [ClipRecord(f"v{i // 3}", 0, 1, ("t",)) for i in range(300)]
    train, held = split_holdout(recs, 0.2, seed=1)
    assert len(train) + len(held) == 300 and 30 <= len(held) <= 90
    assert not {r.video_id for r in train} & {r.video_id for r in held}
    assert split_holdout(recs, 0.2, seed=1)[1] == held and split_holdout(recs, 0.2, seed=2)[1] != held
