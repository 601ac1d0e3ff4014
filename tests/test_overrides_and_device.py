"""The shared ``key=value`` loader (egohod/config.py:load_config) and device choice (egohod/device.py)."""
from dataclasses import dataclass, field

import pytest
import torch

from egohod.device import resolve_device
from egohod.config import ConfigError, load_config


@dataclass
class _Schema:
    name: str = "a"
    size: int = 1
    tags: list = field(default_factory=list)


def test_defaults_then_layers_then_arguments(tmp_path):
    y = tmp_path / "layer.yaml"
    y.write_text("size: 5\nname: from_yaml\n")
    cfg = load_config(_Schema, ["name=cli", "tags=[x,y]"], layers=[{"size": 3}, y])
    assert isinstance(cfg, _Schema) and (cfg.name, cfg.size, cfg.tags) == ("cli", 5, ["x", "y"])
    assert load_config(_Schema, []) == _Schema()


@pytest.mark.parametrize("argv, argument, words", [
    (["size"], "size", "key=value"),
    (["nope=1"], None, "nope"),
    (["size=big"], None, "size"),
])
def test_bad_arguments_name_what_is_wrong(argv, argument, words):
    with pytest.raises(ConfigError, match=words) as e:
        load_config(_Schema, argv)
    assert e.value.argument == argument and e.value.known == ["name", "size", "tags"]
    assert isinstance(e.value, ValueError)


def test_resolve_device(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu") == resolve_device("cpu")
    with pytest.raises(ValueError, match=r"device='cuda:1' but CUDA is not available; use device=cpu"):
        resolve_device("cuda:1")
    with pytest.raises(ValueError, match=r"--device='gpu' is not a device"):
        resolve_device("gpu", "--device")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda") and resolve_device("cuda:1") == torch.device("cuda", 1)
