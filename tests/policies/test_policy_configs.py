"""configs/policy/*.yaml extend schemas generated from each head's Options: composed through
the same Hydra path as robot/train_bc.py they give the Options defaults plus what the YAML
changes, the YAML repeats no default, and a run records the same head as before the schemas
(old run folders resume: robot/run_bc.py compares ``policy.describe()``)."""
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from egohod.config import ConfigError
from policies import create_policy, get_policy_class, list_policies, policy_options

ROOT = Path(__file__).resolve().parents[2]
POLICY_DIR = ROOT / "configs" / "policy"

# The options each configs/policy/<name>.yaml gave before the schemas existed (commit 36df0c8,
# when every YAML spelled out all of them), as describe() records them in checkpoints. A run
# started then resumes only while these stay equal: change them only with a new head name.
RECORDED = {
    "mlp": {"hidden": [256, 256], "batchnorm": True, "dropout": 0.0, "action_limit": 1.0,
            "normalize_actions": True},
    "mlp_r3m": {"hidden": [256, 256], "last_scale": 0.01, "action_limit": 1.0},
    "gmm": {"hidden": [1024, 1024], "num_modes": 5, "min_std": 0.0001, "std_activation": "softplus"},
    "rnn": {"seq_len": 10, "rnn_type": "LSTM", "hidden_dim": 400, "num_layers": 2, "mlp_hidden": [], "gmm": False,
            "num_modes": 5, "min_std": 0.0001},
}


def compose(overrides):
    """robot/train_bc's config, composed as its @hydra.main does (config root, registered schemas)."""
    from hydra import compose as hy_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from robot.config import CONFIG_ROOT, register_configs

    register_configs()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(CONFIG_ROOT), version_base="1.3"):
            return hy_compose("robot/train_bc", overrides=overrides)
    finally:
        GlobalHydra.instance().clear()


def composed_options(cfg):
    """(name, Options instance) of a composed config, as robot/run_bc.py reads them."""
    options = dict(cfg.policy)
    name = options.pop("name")
    return name, policy_options(name, options)


def yaml_values(name: str) -> dict:
    """What configs/policy/<name>.yaml sets besides its defaults list."""
    values = yaml.safe_load((POLICY_DIR / f"{name}.yaml").read_text()) or {}
    values.pop("defaults", None)
    return values


def _hashable(value):
    return tuple(value) if isinstance(value, list) else value


def test_every_head_has_a_yaml_on_its_generated_schema():
    assert sorted(p.stem for p in POLICY_DIR.glob("*.yaml")) == list_policies()
    for name in list_policies():
        defaults = yaml.safe_load((POLICY_DIR / f"{name}.yaml").read_text())["defaults"]
        assert defaults == [f"{name}_schema", "_self_"], name


@pytest.mark.parametrize("name", ["mlp", "mlp_r3m", "gmm", "rnn"])
def test_yaml_sets_only_options_that_differ_from_the_defaults(name):
    options = get_policy_class(name).Options()
    fields = {f.name for f in dataclasses.fields(options)}
    for key, value in yaml_values(name).items():
        assert key in fields, f"{name}.yaml: {key!r} is not an option of {name} (name comes from the schema)"
        assert _hashable(value) != getattr(options, key), f"{name}.yaml repeats the default {key}: {value!r}"


@pytest.mark.parametrize("name", ["mlp", "mlp_r3m", "gmm", "rnn"])
def test_composed_policy_is_the_defaults_updated_by_the_yaml(name):
    got_name, options = composed_options(compose([f"policy={name}"]))
    cls = get_policy_class(name)
    expected = dataclasses.replace(cls.Options(), **{k: _hashable(v) for k, v in yaml_values(name).items()})
    assert got_name == name
    assert options == expected
    assert create_policy(name, 8, 3, 2, dataclasses.asdict(options)).describe()["options"] == RECORDED[name]


def test_protocol_r3m_picks_mlp_r3m():
    name, options = composed_options(compose(["protocol=r3m"]))
    assert name == "mlp_r3m" and options == get_policy_class("mlp_r3m").Options()


def test_overrides_change_one_option_and_keep_the_rest():
    name, options = composed_options(compose(["policy.hidden=[512,512]", "policy.dropout=0.1"]))
    assert name == "mlp"
    assert options == dataclasses.replace(get_policy_class("mlp").Options(), hidden=(512, 512), dropout=0.1)
    name, options = composed_options(compose(["policy=rnn", "policy.seq_len=4"]))
    assert name == "rnn" and options == dataclasses.replace(get_policy_class("rnn").Options(), seq_len=4)
    assert create_policy(name, 8, 3, 2, dataclasses.asdict(options)).seq_len == 4


def test_misspelt_or_mistyped_option_is_an_error_naming_the_key():
    from hydra.errors import ConfigCompositionException

    with pytest.raises(ConfigCompositionException, match=r"policy\.hiden") as e:
        compose(["policy.hiden=[512,512]"])
    assert "hiden" in str(e.value.__cause__) and "mlp_schema" in str(e.value.__cause__)
    with pytest.raises(ConfigCompositionException, match=r"policy\.seq_len") as e:
        compose(["policy=rnn", "policy.seq_len=ten"])
    with pytest.raises(ConfigCompositionException, match=r"policy\.dropout"):
        compose(["policy=rnn", "policy.dropout=0.1"])  # an option of mlp, not of rnn
    # `+` forces a key into the schema; the registry still refuses it before anything runs
    with pytest.raises(ConfigError, match=r"policy 'mlp': unknown option\(s\) \['width'\]"):
        composed_options(compose(["+policy.width=3"]))


def test_sweep_cells_compose_the_same_policy():
    from robot.sweep import compose_cell

    assert composed_options(compose_cell(["policy=gmm", "policy.num_modes=3"])) == \
        ("gmm", dataclasses.replace(get_policy_class("gmm").Options(), num_modes=3))
    with pytest.raises(ConfigError, match=r"policy\.hiden"):
        compose_cell(["policy.hiden=3"])


def test_train_bc_command_composes_the_policy_schema():
    """The installed entry point (@hydra.main) shows the composed policy without running."""
    cmd = [sys.executable, str(ROOT / "robot" / "train_bc.py"), "policy=rnn", "policy.seq_len=4", "--cfg", "job",
           "--package", "policy"]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert yaml.safe_load(p.stdout.split("# @package policy", 1)[-1]) == {"name": "rnn", **RECORDED["rnn"], "seq_len": 4}
    bad = subprocess.run(cmd[:2] + ["policy.hiden=3", "--cfg", "job"], capture_output=True, text=True, timeout=120,
                         cwd=ROOT)
    assert bad.returncode != 0 and "policy.hiden" in bad.stderr
