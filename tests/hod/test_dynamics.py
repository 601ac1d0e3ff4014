"""Interpolation, hand-object linking (100DOH rule) and the dynamics summary."""
from __future__ import annotations

import numpy as np
import pytest

from egohod.hod.dynamics import DynamicsConfig, direction_words, interpolate_boxes, link_hands_to_objects, \
    summarize_dynamics
from egohod.hod.types import DetectionFormatError, FrameDetections, HandDetection, ObjectDetection, offset_from_vector

NAN = np.nan


def test_interpolation_fills_gaps_linearly_in_time_and_never_extrapolates():
    times = np.array([0.0, 1.0, 2.0, 4.0, 5.0])
    boxes = np.array([[NAN] * 4, [0.1, 0.1, 0.2, 0.2], [NAN] * 4, [0.5, 0.3, 0.6, 0.4], [NAN] * 4])
    filled, observed = interpolate_boxes(times, boxes)
    assert observed.tolist() == [False, True, False, True, False]
    # t = 2 is a third of the way from t = 1 to t = 4
    np.testing.assert_allclose(filled[2], [0.1 + 0.4 / 3, 0.1 + 0.2 / 3, 0.2 + 0.4 / 3, 0.2 + 0.2 / 3])
    assert np.isnan(filled[0]).all() and np.isnan(filled[4]).all()
    np.testing.assert_array_equal(filled[[1, 3]], boxes[[1, 3]])
    empty, obs = interpolate_boxes(times[:2], np.full((2, 4), NAN))
    assert np.isnan(empty).all() and not obs.any()
    with pytest.raises(ValueError, match=r"times \[T\] and boxes \[T, 4\]"):
        interpolate_boxes(times, boxes[:, :3])


def _hand(box, state="P", side="right", offset=(0.0, 0.0, 0.0), score=0.9):
    return HandDetection(box, score, state, side, offset)


def test_link_uses_offset_times_10000_in_pixels():
    # 200 x 100 frame; hand centre at (50, 50) px; offset points 100 px to the right
    mag, dx, dy = offset_from_vector(100.0, 0.0)
    assert mag * 10000 * dx == pytest.approx(100.0) and dx == pytest.approx(0.1)
    objects = [ObjectDetection((0.55, 0.4, 0.65, 0.6), 0.9),  # centre (120, 50): 20 px from the target
               ObjectDetection((0.70, 0.4, 0.80, 0.6), 0.9),  # centre (150, 50): the target
               ObjectDetection((0.70, 0.4, 0.80, 0.6), 0.3)]  # same place, below the 0.5 threshold
    f = FrameDetections(0.0, 200, 100, [
        _hand((0.2, 0.4, 0.3, 0.6), offset=(mag, dx, dy)),
        _hand((0.2, 0.4, 0.3, 0.6), state="N", side="left", offset=(mag, dx, dy)),  # no contact: no link
        _hand((0.2, 0.4, 0.3, 0.6), offset=(mag, dx, dy), score=0.4),  # below threshold: no link
    ], objects)
    assert link_hands_to_objects(f) == [1, -1, -1]
    # a shorter offset (30 px) lands nearer the first object
    short = offset_from_vector(30.0, 0.0)
    f.hands[0] = _hand((0.2, 0.4, 0.3, 0.6), offset=short)
    assert link_hands_to_objects(f)[0] == 0
    # anisotropic frames: the offset is in pixels, not normalised units
    g = FrameDetections(0.0, 1000, 100, [_hand((0.0, 0.0, 0.1, 0.2), offset=offset_from_vector(0.0, 60.0))],
                        [ObjectDetection((0.0, 0.6, 0.1, 0.8), 0.9), ObjectDetection((0.1, 0.0, 0.2, 0.2), 0.9)])
    assert link_hands_to_objects(g) == [0]  # 60 px down, not 0.1 of the width to the right


def test_summary_tracks_motion_contact_changes_and_held_objects():
    frames = []
    for t in range(6):
        x = 0.1 + 0.1 * t
        hands = [] if t == 2 else [_hand((x, 0.5, x + 0.1, 0.6), state="N" if t < 3 else "P",
                                         offset=offset_from_vector(0.12 * 640, 0.0))]
        hands.append(_hand((0.1, 0.1, 0.2, 0.2), state="N", side="left"))
        objs = [ObjectDetection((x + 0.1 if t >= 3 else 0.45, 0.5, x + 0.2 if t >= 3 else 0.55, 0.6), 0.8)]
        frames.append(FrameDetections(float(t), 640, 480, hands, objs))
    s = summarize_dynamics(frames)
    right, left = s["hands"]["right"], s["hands"]["left"]
    assert right["direction"] == "right" and right["extent"] == pytest.approx(0.5, abs=1e-3)
    assert right["interpolated"] == [False, False, True, False, False, False]
    assert right["boxes"][2] == pytest.approx([0.3, 0.5, 0.4, 0.6])
    assert right["contact_changes"] == [{"time": 3.0, "from": "N", "to": "P"}]
    assert right["contact_states"] == ["N", "P"] and right["holds"] == ["o1"]
    assert left["direction"] == "still" and left["holds"] == [] and left["contact_states"] == ["N"]
    obj = s["objects"][0]
    assert obj["held_by"] == ["right"] and obj["held_fraction"] == pytest.approx(0.5)
    assert any("right hand: moves right" in e and "holding o1" in e for e in s["events"])


def test_direction_words_and_bad_input():
    assert direction_words(np.array([0.2, 0.01]), 0.03) == "right"
    assert direction_words(np.array([-0.1, -0.1]), 0.03) == "up-left"
    assert direction_words(np.array([0.01, 0.01]), 0.03) == "still"
    with pytest.raises(ValueError, match="at least one frame"):
        summarize_dynamics([])
    with pytest.raises(DetectionFormatError, match="not normalised"):
        _hand((0.2, 0.2, 1.7, 0.4))
    with pytest.raises(DetectionFormatError, match="contact state 'X'"):
        _hand((0.1, 0.1, 0.2, 0.2), state="X")
    cfg = DynamicsConfig(hand_threshold=0.95)
    f = FrameDetections(0.0, 10, 10, [_hand((0.1, 0.1, 0.2, 0.2))], [])
    assert summarize_dynamics([f], cfg)["hands"] == {}
