"""`egohod extract` at the label rate, writing [D, T]: what `egohod head segmentation` reads."""
from __future__ import annotations

import json

import numpy as np
import pytest

from egohod.benchmarks.cli import extract_main
from egohod.benchmarks.config import load_extract_config
from egohod.benchmarks.heads.segmentation_data import load_split
from egohod.config import ConfigError
from .. import fixtures


def test_extract_at_the_label_rate_in_the_mstcn_layout_feeds_segmentation(tmp_path):
    fixtures.make_video(tmp_path / "videos" / "v0.mp4", 2.0, fps=15, seed=1)
    out = tmp_path / "feats"
    assert extract_main(["encoder=egovideo_tiny", f"videos={tmp_path / 'videos'}", f"out={out}", "label_fps=15",
                         "label_stride=5", "window=0.5", "feature_layout=DT", "device=cpu", "batch=4"]) == 0
    feats, times = np.load(out / "v0.npy"), np.load(out / "v0.timestamps.npy")
    assert feats.shape == (32, 6)  # [D, T]: 30 label frames / 5 per feature
    np.testing.assert_allclose(times[:, 0], np.arange(6) / 3)  # a window every 5/15 s
    index = json.loads((out / "index.json").read_text())
    assert index["layout"].startswith("[D, T]") and index["stride"] == pytest.approx(1 / 3)
    assert index["label_fps"] == 15 and index["label_stride"] == 5
    data = tmp_path / "data"
    (data / "groundTruth").mkdir(parents=True)
    (data / "groundTruth" / "v0.txt").write_text("\n".join(["a"] * 12 + ["background"] * 18))
    # layout and D come from index.json (a single video's shape alone would be ambiguous)
    video = load_split(data, out, ["v0"], ["a", "background"], feature_stride=5)[0]
    assert video.features.shape == (32, 6)
    assert video.targets.tolist() == [0, 0, 1, 1, 1, 1]  # labels of frames 2, 7, 12, ...


def test_label_rate_and_a_stride_in_seconds_are_exclusive(tmp_path):
    base = ["encoder=egovideo_tiny", f"videos={tmp_path}", f"out={tmp_path / 'o'}"]
    with pytest.raises(ConfigError, match="leave stride= out"):
        load_extract_config([*base, "label_fps=15", "stride=0.5"])
    with pytest.raises(ConfigError, match="feature_layout must be TD"):
        load_extract_config([*base, "feature_layout=CT"])
    cfg = load_extract_config([*base, "label_fps=30", "label_stride=2"])
    from egohod.benchmarks.extract import window_stride

    assert window_stride(cfg) == pytest.approx(1 / 15)
