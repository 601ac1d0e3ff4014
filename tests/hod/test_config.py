"""Hydra configs: composition, typed groups, unknown keys and changed settings are errors."""
from __future__ import annotations

import pytest
from conftest import run_args

from egohod.hod.cli import main
from egohod.hod.config import compose


def test_groups_compose_with_typed_defaults():
    cfg = compose("run", ["clips=a.csv", "out=o", "detector=100doh", "detector.checkpoint=w.pth", "narrator=openai"])
    assert cfg.detector.name == "100doh" and cfg.detector.scale == 600 and cfg.detector.checkpoint == "w.pth"
    assert cfg.narrator.name == "openai" and cfg.narrator.api_key_env == "OPENAI_API_KEY"
    assert cfg.sampling.frames_per_clip * cfg.sampling.temporal_factor == 16
    with pytest.raises(Exception, match="temporal_factor"):
        compose("run", ["clips=a.csv", "out=o", "sampling.temporal_factor=many"])


@pytest.mark.parametrize("override", ["bogus=1", "detector.bogus=1", "+detector.bogus=1", "narrator.nope=2"])
def test_unknown_keys_are_errors(override):
    with pytest.raises(Exception, match="bogus|nope"):
        compose("run", ["clips=a.csv", "out=o", override])


def test_missing_required_and_unknown_group():
    with pytest.raises(ValueError, match=r"missing required setting\(s\) \['out'\]"):
        compose("run", ["clips=a.csv"])
    with pytest.raises(Exception, match="detector"):
        compose("run", ["clips=a.csv", "out=o", "detector=yolo"])


def test_resume_refuses_changed_settings(hod_corpus, tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", *run_args(hod_corpus, out), "limit=2"]) == 0
    assert main(["run", *run_args(hod_corpus, out), "limit=2", "batch_size=1"]) == 0  # volatile: fine
    assert main(["run", *run_args(hod_corpus, out), "limit=3"]) == 0  # more clips: the finished shard reopens
    import json

    from egohod.hod.runner import merge

    assert merge(out)["clips"] == 3
    parts = sorted((out / "shards" / "00000-of-00001").glob("part-*.jsonl"))
    assert [len(p.read_text().splitlines()) for p in parts] == [2, 1]  # only the new clip was processed
    assert json.loads((out / "shards" / "00000-of-00001" / "done.json").read_text())["clips"] == 3
    capsys.readouterr()
    assert main(["run", *run_args(hod_corpus, out), "limit=2", "dynamics.hand_threshold=0.7"]) == 2  # no traceback
    assert "dynamics.hand_threshold: 0.5 -> 0.7" in capsys.readouterr().err


def test_cli_help_and_list(capsys):
    assert main([]) == 0 and "style-train" in capsys.readouterr().out
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "detectors: 100doh, mediapipe, precomputed, skin" in out
    assert "narrators: local, openai, template, transformers" in out
    assert main(["nope"]) == 2
    assert main(["run", "--help"]) == 0 and "clips: ???" in capsys.readouterr().out
