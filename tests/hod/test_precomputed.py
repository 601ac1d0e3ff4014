"""``precomputed`` detector: EK-100 public detections (protobuf pickles, written here with the
protobuf library from the published schema, independently of our decoder) and 100DOH arrays;
malformed and missing detections are recorded per clip by the pipeline."""
from __future__ import annotations

import csv
import json
import pickle

import numpy as np
import pytest

from egohod.hod.detectors import ClipFrames, create_detector
from egohod.hod.detectors.ek100_format import decode_frame, encode_frame
from egohod.hod.dynamics import link_hands_to_objects
from egohod.hod.types import DetectionFormatError


def ek100_message_class():
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    F = descriptor_pb2.FieldDescriptorProto
    fdp = descriptor_pb2.FileDescriptorProto(name="ek_types.proto", package="model.detections", syntax="proto3")

    def msg(name, fields, enums=()):
        m = fdp.message_type.add(name=name)
        for en, values in enums:
            e = m.enum_type.add(name=en)
            for i, v in enumerate(values):
                e.value.add(name=v, number=i)
        for num, (fname, ftype, type_name, label) in enumerate(fields, start=1):
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if type_name:
                f.type_name = type_name

    opt, rep = F.LABEL_OPTIONAL, F.LABEL_REPEATED
    msg("FloatVector", [("x", F.TYPE_FLOAT, None, opt), ("y", F.TYPE_FLOAT, None, opt)])
    msg("BBox", [(n, F.TYPE_FLOAT, None, opt) for n in ("top_left_x", "top", "right", "bottom")])
    msg("HandDetection", [("bbox", F.TYPE_MESSAGE, ".model.detections.BBox", opt), ("score", F.TYPE_FLOAT, None, opt),
                          ("state", F.TYPE_ENUM, ".model.detections.HandDetection.HandState", opt),
                          ("object_offset", F.TYPE_MESSAGE, ".model.detections.FloatVector", opt),
                          ("side", F.TYPE_ENUM, ".model.detections.HandDetection.HandSide", opt)],
        enums=[("HandState", ["NO_CONTACT", "SELF_CONTACT", "ANOTHER_PERSON", "PORTABLE_OBJECT", "STATIONARY_OBJECT"]),
               ("HandSide", ["LEFT", "RIGHT"])])
    msg("ObjectDetection", [("bbox", F.TYPE_MESSAGE, ".model.detections.BBox", opt), ("score", F.TYPE_FLOAT, None, opt)])
    msg("Detections", [("video_id", F.TYPE_STRING, None, opt), ("frame_number", F.TYPE_INT32, None, opt),
                       ("hands", F.TYPE_MESSAGE, ".model.detections.HandDetection", rep),
                       ("objects", F.TYPE_MESSAGE, ".model.detections.ObjectDetection", rep)])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("model.detections.Detections"))


def write_ek100(root, video_id, n_frames, fps=60):
    Det = ek100_message_class()
    frames = []
    for n in range(1, n_frames + 1):
        d = Det(video_id=video_id, frame_number=n)
        x = 0.1 + 0.3 * n / n_frames
        h = d.hands.add(score=0.9, state=3, side=1)
        h.bbox.top_left_x, h.bbox.top, h.bbox.right, h.bbox.bottom = x, 0.5, x + 0.1, 0.7
        h.object_offset.x, h.object_offset.y = 0.2, 0.0  # object 0.2 of the width to the right
        o = d.objects.add(score=0.8)
        o.bbox.top_left_x, o.bbox.top, o.bbox.right, o.bbox.bottom = x + 0.15, 0.5, x + 0.25, 0.7
        d.objects.add(score=0.7).bbox.top_left_x = 0.0  # a degenerate far-away object at the corner
        frames.append(d.SerializeToString())
    (root / video_id.split("_")[0]).mkdir(parents=True, exist_ok=True)
    with open(root / video_id.split("_")[0] / f"{video_id}.pkl", "wb") as f:
        pickle.dump(frames, f)
    return frames


def test_ek100_decoder_matches_protobuf_and_links(tmp_path):
    raw = write_ek100(tmp_path, "P01_01", 120)
    d = decode_frame(raw[9])
    assert d["video_id"] == "P01_01" and d["frame_number"] == 10
    [h] = d["hands"]
    assert h["state"] == 3 and h["side"] == 1 and h["offset"] == pytest.approx((0.2, 0.0))
    assert h["bbox"] == pytest.approx((0.1 + 0.3 * 10 / 120, 0.5, 0.2 + 0.3 * 10 / 120, 0.7))
    assert decode_frame(encode_frame(d)) == d  # our writer round-trips
    assert encode_frame(d) == raw[9]  # and produces the protobuf library's bytes

    det = create_detector("precomputed", root=str(tmp_path), format="ek100", fps=60)
    frames = det.detect(ClipFrames("P01_01", np.array([0.15, 1.0])))  # frames 10 and 61
    f = frames[0]
    assert (f.width, f.height) == (456, 256) and f.time == 0.15
    assert f.hands[0].state == "P" and f.hands[0].side == "right"
    assert link_hands_to_objects(f) == [0]  # the offset, converted back to 100DOH units, finds the object
    mag, dx, dy = f.hands[0].offset
    assert mag * 10000 * dx == pytest.approx(0.2 * 456, rel=1e-5) and dy == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(LookupError, match=r"frame 181 .* covers frames 1\.\.120"):
        det.detect(ClipFrames("P01_01", np.array([3.0])))
    with pytest.raises(FileNotFoundError, match="no detections for video 'P02_01'"):
        det.detect(ClipFrames("P02_01", np.array([0.0])))


def _doh_npz(path, frames: dict, width=640, height=480, fps=30):
    arrays = {"width": np.array(width), "height": np.array(height), "fps": np.array(fps)}
    for n, (hand, obj) in frames.items():
        arrays[f"frame_{n}_hand"] = np.atleast_2d(np.asarray(hand, dtype=np.float32))
        arrays[f"frame_{n}_obj"] = np.atleast_2d(np.asarray(obj, dtype=np.float32))
    np.savez(path, **arrays)


def test_100doh_arrays_and_bad_input_recorded_by_the_pipeline(tmp_path):
    from egohod.hod.cli import main

    root = tmp_path / "dets"
    root.mkdir()
    hand = [64, 240, 128, 336, 0.95, 3, 0.0128, 0.1, 0.0, 1]  # x1 y1 x2 y2 score state mag dx dy side
    obj = [200, 240, 280, 336, 0.9, 0, 0, 0, 0, 0]
    _doh_npz(root / "vid1.npz", {n: (hand, obj) for n in range(0, 60)})
    _doh_npz(root / "vid2.npz", {0: ([1, 2, 3], obj), 15: ([1, 2, 3], obj), 30: ([1, 2, 3], obj)})  # malformed rows
    with open(root / "vid3.pkl", "wb") as f:
        pickle.dump({"width": 640, "height": 480, "fps": 30,
                     "frames": {n: {"hand": np.array([hand[:5] + [7] + hand[6:]]), "obj": None} for n in range(60)}}, f)

    det = create_detector("precomputed", root=str(root), format="100doh")
    [f] = det.detect(ClipFrames("vid1", np.array([0.5])))
    assert f.hands[0].box == pytest.approx((0.1, 0.5, 0.2, 0.7)) and f.hands[0].side == "right"
    assert link_hands_to_objects(f) == [0]
    with pytest.raises(DetectionFormatError, match=r"vid2.npz frame 15: hand detections must be \[N, 10\]"):
        det.detect(ClipFrames("vid2", np.array([0.5])))

    clips = tmp_path / "clips.csv"
    with clips.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["video_id", "start_second", "end_second", "text", "uid"])
        w.writerows([["vid1", 0.0, 1.5, "#C C grabs the pan", "ok"], ["vid1", 1.0, 3.0, "#C C moves on", "past-end"],
                      ["vid2", 0.0, 1.0, "#C C cuts", "malformed"], ["vid3", 0.0, 1.0, "#C C stirs", "bad-state"],
                      ["vid9", 0.0, 1.0, "#C C walks", "missing"]])
    out = tmp_path / "out"
    assert main(["run", f"clips={clips}", f"out={out}", "detector=precomputed", f"detector.root={root}",
                 "detector.format=100doh", "progress=false"]) == 0
    assert main(["merge", f"out={out}"]) == 0
    recs = {r["uid"]: r for r in map(json.loads, (out / "hod_records.jsonl").read_text().splitlines())}
    assert recs["ok"]["status"] == "ok" and recs["ok"]["dynamics"]["hands"]["right"]["holds"] == ["o1"]
    assert all(recs[k]["stage"] == "detect" for k in ("past-end", "malformed", "bad-state", "missing"))
    assert "covers frames 0..59" in recs["past-end"]["reason"]
    assert "must be [N, 10]" in recs["malformed"]["reason"]
    assert "state 7.0 / side 1.0 out of range" in recs["bad-state"]["reason"]
    assert "no detections for video 'vid9'" in recs["missing"]["reason"]
    assert json.loads((out / "summary.json").read_text())["failed_by_stage"] == {"detect": 4}
