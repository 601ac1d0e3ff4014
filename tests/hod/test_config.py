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
    assert cfg.sampling.num_frames * cfg.sampling.temporal_factor == 16
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
    assert "detector=skin: Skin-colour" in out and "work_size=160 min_area=0.004" in out  # settings from Options
    assert "checkpoint=null device=auto" in out and "pattern=\"{tag}{details}\"" in out
    assert main(["nope"]) == 2
    assert main(["run", "--help"]) == 0 and "clips: ???" in capsys.readouterr().out


@pytest.mark.parametrize("group", ["detector", "narrator"])
def test_component_settings_come_from_their_options(group):
    """Each component's schema is generated from its Options: the composed config of every
    configs/hod/<group>/*.yaml equals Options() updated with that YAML's own values, and no YAML
    repeats a default (so the defaults live in one place)."""
    import dataclasses

    from omegaconf import OmegaConf

    from egohod.config import config_root
    from egohod.hod.detectors.base import DETECTORS
    from egohod.hod.narrators.base import NARRATORS

    registry = {"detector": DETECTORS, "narrator": NARRATORS}[group]
    files = sorted((config_root() / "hod" / group).glob("*.yaml"))
    assert sorted(f.stem for f in files) == registry.list()
    for f in files:
        options = registry.entry(f.stem).meta["options"]
        own = {k: v for k, v in OmegaConf.to_container(OmegaConf.load(f)).items() if k != "defaults"}
        defaults = {fl.name: fl.default for fl in dataclasses.fields(options) if fl.default is not dataclasses.MISSING}
        assert not [k for k, v in own.items() if k in defaults and defaults[k] == v], f"{f} repeats a default"
        composed = OmegaConf.to_container(compose("run", ["clips=a.csv", "out=o", f"{group}={f.stem}"])[group])
        expected = {"name": f.stem, **dataclasses.asdict(options()), **own}
        assert composed == expected


def test_unknown_component_option_names_the_closest_one():
    from egohod.config import ConfigError
    from egohod.hod.detectors import create_detector
    from egohod.hod.narrators import create_narrator

    with pytest.raises(ConfigError, match=r"detector 'skin': unknown option\(s\) \['work_sise'\] \(did you mean 'work_size'\?\)"):
        create_detector("skin", work_sise=3)
    with pytest.raises(ConfigError, match=r"narrator 'template': unknown option\(s\) \['varients'\].*'variants'"):
        create_narrator("template", varients=2)


def test_a_registered_detector_gets_a_generated_schema(monkeypatch):
    """A new detector needs only its class and Options: `detector.KEY=` overrides then work for it."""
    from dataclasses import dataclass

    from egohod.hod.config import component_schemas, validate_component
    from egohod.hod.detectors.base import DETECTORS, Detector
    from egohod.registry import Entry

    @dataclass
    class Options:
        radius: float = 2.0

    class Ring(Detector):
        def __init__(self, options: Options):
            self.options = options

    monkeypatch.setitem(DETECTORS._entries, "ring", Entry("ring", Ring, {"options": Options}))
    schema = component_schemas("detector")["ring"]
    from omegaconf import OmegaConf

    node = validate_component("detector", OmegaConf.create({"name": "ring", "radius": 3.5}))
    assert node.radius == 3.5 and OmegaConf.structured(schema).radius == 2.0
    with pytest.raises(ValueError, match="unknown detector setting"):
        validate_component("detector", OmegaConf.create({"name": "ring", "radious": 3.5}))


def test_the_old_name_of_num_frames_still_works(hod_corpus, tmp_path):
    """`sampling.frames_per_clip` was renamed `sampling.num_frames`: the old override is read (with a
    FutureWarning) and an output folder recorded with the old name still resumes."""
    import json

    from omegaconf import OmegaConf

    with pytest.warns(FutureWarning, match="sampling.frames_per_clip= is deprecated; use sampling.num_frames="):
        cfg = compose("run", ["clips=a.csv", "out=o", "sampling.frames_per_clip=2"])
    assert cfg.sampling.num_frames == 2 and "frames_per_clip" not in cfg.sampling
    out = tmp_path / "r"
    assert main(["run", *run_args(hod_corpus, out), "limit=2", "sampling.num_frames=2"]) == 0
    shard = out / "shards" / "00000-of-00001"
    recorded = OmegaConf.load(shard / "config.yaml")  # rewrite it the way an older egohod recorded it
    recorded.sampling = {("frames_per_clip" if k == "num_frames" else k): v for k, v in recorded.sampling.items()}
    (shard / "config.yaml").write_text(OmegaConf.to_yaml(recorded))
    assert main(["run", *run_args(hod_corpus, out), "limit=3", "sampling.num_frames=2"]) == 0
    assert json.loads((shard / "done.json").read_text())["clips"] == 3
    assert main(["run", *run_args(hod_corpus, out), "limit=3", "sampling.num_frames=3"]) == 2  # a real change still refused
