"""The one config path (egohod/config.py): Hydra composition over a dataclass schema, YAML found
through the package (editable and from a wheel), ConfigError from library code."""
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import pytest
from omegaconf import MISSING

from egohod.config import ConfigError, config_file, config_root, exit_on_config_error, load_config

REPO = Path(__file__).resolve().parents[1]


@dataclass
class _Schema:
    out: str = MISSING
    num_frames: int = 4
    videos: str = "videos"
    templates: list = field(default_factory=lambda: ["{}"])
    mir_text: str = "narration"
    tags: list = field(default_factory=list)


def test_defaults_then_yaml_then_layers_then_arguments():
    # configs/eval/ek100-cls.yaml sets num_frames 16 and no mir_text; the layer and the arguments come last
    cfg = load_config(_Schema, ["out=o", "templates=['a video of {}']", "tags=[x,y]"], config="eval/egtea",
                      layers=[{"mir_text": "sentence", "num_frames": 2}])
    assert isinstance(cfg, _Schema)
    assert (cfg.out, cfg.videos, cfg.num_frames, cfg.mir_text) == ("o", "cropped_clips", 2, "sentence")
    assert (cfg.templates, cfg.tags) == (["a video of {}"], ["x", "y"])
    assert load_config(_Schema, ["out=o", "num_frames=8"], config="eval/egtea").num_frames == 8
    assert load_config(_Schema, ["out=o"]) == _Schema(out="o")


@pytest.mark.parametrize("argv, words, argument", [
    (["out"], "arguments are key=value; got 'out'", "out"),
    (["out=o", "num_frame=2"], r"Key 'num_frame' not in '_Schema'; did you mean 'num_frames'\?", None),
    (["out=o", "num_frames=many"], "num_frames", None),
    ([], "missing mandatory value: out", None),
])
def test_bad_settings_raise_config_error_naming_the_key(argv, words, argument):
    with pytest.raises(ConfigError, match=words) as e:
        load_config(_Schema, argv, command="egohod test")
    assert e.value.known == ["out", "num_frames", "videos", "templates", "mir_text", "tags"]
    assert e.value.argument == argument and isinstance(e.value, ValueError)


def test_unknown_config_file_names_where_it_looked():
    with pytest.raises(ConfigError, match=r"config 'eval/nope' not found: no .*configs/eval/nope\.yaml"):
        load_config(_Schema, ["out=o"], config="eval/nope")


def test_entry_points_turn_config_errors_into_an_exit_message():
    with pytest.raises(SystemExit, match=r"^egohod test: Key 'bogus' not in '_Schema'"):
        with exit_on_config_error("egohod test"):
            load_config(_Schema, ["bogus=1"])


def test_configs_are_found_through_the_package_and_are_the_top_level_folder():
    packaged = files("egohod") / "configs" / "eval" / "ek100-mir.yaml"
    assert packaged.is_file()
    assert config_root() == (REPO / "configs").resolve()
    assert config_file("eval/ek100-mir").read_text() == (REPO / "configs" / "eval" / "ek100-mir.yaml").read_text()


def test_a_wheel_ships_the_configs_and_loads_them_through_the_package(tmp_path):
    """Build a wheel of the package (the tree copied: a build writes into its source folder),
    then load a config from the unpacked wheel in a fresh interpreter."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "egohod", src / "egohod", symlinks=True, ignore=ignore)
    shutil.copytree(REPO / "configs", src / "configs", ignore=ignore)
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(src)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("egohod-*.whl"))
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("egohod/configs/")}
    on_disk = {f"egohod/configs/{p.relative_to(src / 'configs').as_posix()}"
               for p in (src / "configs").rglob("*") if p.is_file() and p.suffix in (".yaml", ".txt", ".sh")}
    assert on_disk and shipped == on_disk
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    probe = ("import egohod.config as c; from egohod.benchmarks.config import load_eval_config; "
             "cfg = load_eval_config('egtea', ['data=/d']); print(c.__file__); print(c.config_root()); "
             "print(cfg.videos, cfg.num_frames)")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"}, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    module_file, root, values = run.stdout.strip().splitlines()
    assert module_file.startswith(str(site)) and root == str((site / "egohod" / "configs").resolve())
    assert values == "cropped_clips 16"


def test_renamed_keys_still_work_with_a_deprecation_message():
    from egohod.export import parse_args

    with pytest.warns(FutureWarning, match="egohod export: frames= is deprecated; use num_frames="):
        cfg = parse_args(["encoder=egovideo_tiny", "out=x.onnx", "frames=2"])
    assert cfg.num_frames == 2
    assert parse_args(["encoder=egovideo_tiny", "out=x.onnx", "num_frames=3"]).num_frames == 3


def test_one_layout_vocabulary_with_the_old_name_still_accepted():
    from egohod.data.datasets import VideoTextDataset
    from egohod.data.metadata import ClipRecord

    rec = ClipRecord("v", 0.0, 1.0, ("t",), "d", "u")
    assert VideoTextDataset([rec], "/r", layout="file").video_path(rec) == Path("/r/v.mp4")
    with pytest.warns(FutureWarning, match="layout='plain' is deprecated; use layout='file'"):
        ds = VideoTextDataset([rec], "/r", layout="plain")
    assert ds.layout == "file" and ds.video_path(rec) == Path("/r/v.mp4")
    with pytest.raises(ValueError, match="layout must be 'chunked' or 'file'"):
        VideoTextDataset([rec], "/r", layout="auto")


@dataclass
class _Opts:
    size: int = 3
    retries: int = field(default=2, metadata={"transport": True})


def test_component_schemas_are_generated_from_their_options():
    import dataclasses

    from egohod.config import options_schema
    from egohod.hod.config import component_schemas
    from egohod.hod.detectors.mediapipe_hands import Options

    schema = options_schema("x", _Opts)
    assert (load_config(schema, ["size=4"]).name, load_config(schema, ["size=4"]).size) == ("x", 4)
    assert {f.name: f.metadata.get("transport", False) for f in dataclasses.fields(schema)} == \
        {"size": False, "retries": True, "name": False}
    with pytest.raises(TypeError, match="may not have a 'name' field"):
        options_schema("z", _Named)
    cfg = load_config(component_schemas("detector")["mediapipe"], ["max_hands=1"])
    assert cfg.name == "mediapipe" and cfg.max_hands == 1 and cfg.box_margin == Options().box_margin


@dataclass
class _Named:
    name: str = "n"


def test_recorded_configs_are_read_under_the_names_settings_have_now():
    from egohod.config import upgrade_recorded

    recorded = {"out_dir": "o", "sampling": {"frames_per_clip": 2, "temporal_factor": 4}, "keep": 1}
    renamed = {"out_dir": "out", "sampling.frames_per_clip": "sampling.num_frames", "train.out_dir": "train.out"}
    assert upgrade_recorded(recorded, renamed) == {"out": "o", "sampling": {"num_frames": 2, "temporal_factor": 4},
                                                   "keep": 1}
    assert recorded["sampling"] == {"frames_per_clip": 2, "temporal_factor": 4}  # a copy: the input is unchanged
    both = {"out_dir": "old", "out": "new"}
    assert upgrade_recorded(both, renamed) == {"out": "new"}
    assert upgrade_recorded({"a": {"b": 1}}, {"a.b": "c.d"}) == {"a": {}, "c": {"d": 1}}
