"""BC policy and HOD style-filter checkpoints go through egohod.models.checkpoint_io (the one
checkpoint format: tensors + meta, atomically written), and files written before still load."""
from pathlib import Path

import torch

from egohod.hod.style_filter import STYLE_FILTER_FORMAT, StyleMLP, load_classifier
from egohod.models.checkpoint_io import read_checkpoint_with_meta
from policies import create_policy
from robot.training import CHECKPOINT_FORMAT, build_policy_from_checkpoint, load_checkpoint, save_checkpoint


def _policy():
    torch.manual_seed(0)
    policy = create_policy("mlp", 8, 9, 9, {})
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p))
    return policy


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return set(sa) == set(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_bc_checkpoint_is_written_by_the_checkpoint_module_with_its_meta(tmp_path):
    policy = _policy()
    payload = {"policy": policy.describe(), "state_dict": policy.state_dict(), "rng": {"numpy": [1, 2]}, "loss": 0.5}
    path = save_checkpoint(tmp_path, 7, payload)
    assert path == tmp_path / "checkpoints" / "0000007" / "policy.pt"
    assert (tmp_path / "checkpoints" / "last").resolve() == path.parent.resolve()
    state_dict, meta = read_checkpoint_with_meta(path)
    assert meta["format"] == CHECKPOINT_FORMAT and meta["step"] == 7 and meta["policy"]["name"] == "mlp"
    assert set(state_dict) == set(policy.state_dict())
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["step"] == 7 and ckpt["loss"] == 0.5 and Path(ckpt["path"]).resolve() == path.resolve()
    assert _same_weights(build_policy_from_checkpoint(ckpt), policy)


def test_bc_checkpoint_written_before_the_checkpoint_module_still_loads(tmp_path):
    policy = _policy()
    d = tmp_path / "checkpoints" / "0000003"
    d.mkdir(parents=True)
    # the layout robot/training.py wrote with torch.save before: unprefixed keys beside the meta
    torch.save({"format": CHECKPOINT_FORMAT, "step": 3, "policy": policy.describe(),
                "state_dict": policy.state_dict()}, d / "policy.pt")
    ckpt = load_checkpoint(d)
    assert ckpt["step"] == 3 and _same_weights(build_policy_from_checkpoint(ckpt), policy)


def test_style_filter_checkpoint_new_and_old_layout(tmp_path):
    torch.manual_seed(0)
    model = StyleMLP(6, 4, 0.0)
    meta = {"in_dim": 6, "hidden": 4, "dropout": 0.0, "threshold": 0.3}
    torch.save({"state_dict": model.state_dict(), **meta}, tmp_path / "old.pt")  # written before the format entry
    from egohod.models.checkpoint_io import write_checkpoint

    write_checkpoint(tmp_path / "new.pt", model.state_dict(), {"format": STYLE_FILTER_FORMAT, **meta})
    for name in ("old.pt", "new.pt"):
        loaded, info = load_classifier(tmp_path / name)
        assert info["threshold"] == 0.3 and _same_weights(loaded, model)
    write_checkpoint(tmp_path / "other.pt", model.state_dict(), {"format": "egohod-bc-policy/1", **meta})
    import pytest

    with pytest.raises(ValueError, match="not a style-filter model"):
        load_classifier(tmp_path / "other.pt")
