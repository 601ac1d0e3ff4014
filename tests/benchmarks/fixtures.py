"""Tiny benchmark datasets in the official file formats, with generated mp4 clips."""
from __future__ import annotations

import csv
import json
import pickle
from pathlib import Path

import numpy as np

from egohod.data.video import write_video

EK_HEADER = ["narration_id", "participant_id", "video_id", "narration_timestamp", "start_timestamp",
             "stop_timestamp", "start_frame", "stop_frame", "narration", "verb", "verb_class", "noun",
             "noun_class", "all_nouns", "all_noun_classes"]


def make_video(path: Path, seconds: float, fps: float = 10, seed: int = 0, size=(48, 64)) -> Path:
    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    base = rng.integers(0, 256, size=(1, size[0], size[1], 3))
    ramp = np.linspace(0, 120, n)[:, None, None, None]
    frames = ((base + ramp) % 256).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_video(path, frames, fps)


def _ts(sec: float) -> str:
    return f"00:00:{sec:05.2f}"


def _ek_row(nid, pid, vid, s, e, narration, verb, vc, noun, nc):
    return [nid, pid, vid, _ts(s), _ts(s), _ts(e), int(s * 10), int(e * 10), narration, verb, vc, noun, nc,
            f"['{noun}']", f"[{nc}]"]


def write_csv(path: Path, header, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def make_ek100(root: Path) -> Path:
    """EK-100 retrieval test (6 clips, 4 captions), train/val CSVs, relevancy, 2 videos in 2 layouts."""
    make_video(root / "videos" / "P01" / "P01_01.MP4", 4.0, seed=1)   # LaViLa layout
    make_video(root / "videos" / "P02_03.mp4", 4.0, seed=2)           # EgoHOD layout
    test = [
        _ek_row("P01_01_0", "P01", "P01_01", 0.0, 1.0, "open fridge", "open", 3, "fridge", 12),
        _ek_row("P01_01_1", "P01", "P01_01", 1.0, 2.5, "take knife", "take", 0, "knife", 4),
        _ek_row("P01_01_2", "P01", "P01_01", 2.5, 4.2, "open the fridge", "open", 3, "fridge", 12),
        _ek_row("P02_03_0", "P02", "P02_03", 0.2, 1.2, "wash plate", "wash", 2, "plate", 7),
        _ek_row("P02_03_1", "P02", "P02_03", 1.2, 3.0, "take knife", "take", 0, "knife", 4),
        _ek_row("P02_03_2", "P02", "P02_03", 3.0, 3.9, "cut onion", "cut", 10, "onion", 30),
    ]
    ann = root / "epic-kitchens-100-annotations"
    write_csv(ann / "retrieval_annotations" / "EPIC_100_retrieval_test.csv", EK_HEADER, test)
    sentences = [("P01_01_0", "open fridge"), ("P01_01_1", "take knife"), ("P02_03_0", "wash plate"),
                 ("P02_03_2", "cut onion")]
    write_csv(ann / "retrieval_annotations" / "EPIC_100_retrieval_test_sentence.csv", ["narration_id", "narration"],
              sentences)
    rel = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0], [0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 0, 1]], float)
    rel[0, 1] = 0.25
    (ann / "retrieval_annotations" / "relevancy").mkdir(parents=True, exist_ok=True)
    with open(ann / "retrieval_annotations" / "relevancy" / "caption_relevancy_EPIC_100_retrieval_test.pkl", "wb") as f:
        pickle.dump(rel, f)
    train = test[:3] + [_ek_row("P03_01_0", "P03", "P03_01", 0, 1, "cut the onion", "cut", 10, "onion", 30),
                        _ek_row("P03_01_1", "P03", "P03_01", 1, 2, "close fridge", "close", 4, "fridge", 12)]
    write_csv(ann / "EPIC_100_train.csv", EK_HEADER, train)
    write_csv(ann / "EPIC_100_validation.csv", EK_HEADER, test[3:])
    return root


EGTEA_CLIPS = [("OP01-R01-PastaSalad-1002316-1004005-F024051-F024101", 1),
               ("OP01-R01-PastaSalad-1004110-1006995-F024111-F024181", 2),
               ("P03-R02-Cheeseburger-102000-104000-F002440-F002490", 3),
               ("P03-R02-Cheeseburger-105000-107500-F002520-F002580", 1)]


def make_egtea(root: Path) -> Path:
    (root).mkdir(parents=True, exist_ok=True)
    (root / "action_idx.txt").write_text("Open_fridge 1\nTake_knife 2\nCut_Onion 3\n")
    (root / "test_split1.txt").write_text("".join(f"{c} {a} 1 1\n" for c, a in EGTEA_CLIPS))
    for i, (clip, _) in enumerate(EGTEA_CLIPS):
        make_video(root / "cropped_clips" / "-".join(clip.split("-")[:3]) / f"{clip}.mp4", 1.5 + 0.3 * i, seed=10 + i)
    return root


def make_egomcq(root: Path, chunk_seconds: float = 2.0) -> Path:
    """2 questions (inter, intra) x 5 choices; video 'vchunk' in 2-s chunks, 'vplain' as one file."""
    for c in range(3):
        make_video(root / "videos" / "vchunk" / f"{c:04d}.mp4", chunk_seconds, seed=20 + c)
    make_video(root / "videos" / "vplain.mp4", 5.0, seed=30)

    def choice(uid, s, e, text):
        return {"video_uid": uid, "clip_start": s, "clip_end": e, "clip_text": text, "tag_verb": "[0]", "tag_noun": "[1]"}

    data = {
        "0": {"query": {"clip_text": "#C C opens the fridge", "video_uid": "vchunk", "clip_start": 0.5, "clip_end": 1.5},
              "choices": {str(i): choice("vchunk" if i % 2 else "vplain", 0.4 * i, 0.4 * i + 1.2, f"c{i}") for i in range(5)},
              "answer": 1, "types": 1},
        "1": {"query": {"clip_text": "#C C cuts an onion", "video_uid": "vchunk", "clip_start": 1.0, "clip_end": 3.0},
              "choices": {str(i): choice("vchunk", 1.1 * i, 1.1 * i + 0.8, f"d{i}") for i in range(5)},
              "answer": 3, "types": 2},
    }
    (root / "egomcq.json").write_text(json.dumps(data))
    return root
