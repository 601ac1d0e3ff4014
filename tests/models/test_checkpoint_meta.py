"""Checkpoints describe themselves on read: files that name their model load without a name, a
name that disagrees with the file is refused naming both, official files still need the name."""
import pytest
import torch

import egohod
from egohod.models.checkpoint_io import (CheckpointError, checkpoint_payload, read_checkpoint_meta,
                                         read_checkpoint_with_meta, split_checkpoint, write_checkpoint)


def _pretrain_meta(model, step=7):
    """The meta pretrain/train.py writes beside the weights."""
    return {"epoch": 0, "step": step, "format": "egohod-pretrain-v1", "model_name": model.name,
            "input_spec": model.input_spec.to_dict(), "model_config": model.cfg.to_dict(),
            "config": {"model": {"name": model.name}}}


@pytest.fixture(scope="module")
def tiny():
    model = egohod.create_model("egovideo_tiny", seed=3)
    with torch.no_grad():
        model.visual.temporal_embedding.normal_()  # differs from every fresh initialisation
    return model


@pytest.fixture()
def pretrain_file(tiny, tmp_path):
    return write_checkpoint(tmp_path / "model.pt", tiny.state_dict(), _pretrain_meta(tiny))


def _clip():
    return torch.randint(0, 256, (2, 4, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def test_pretrain_format_is_the_official_layout_plus_meta(tiny, pretrain_file):
    raw = torch.load(pretrain_file, weights_only=True)
    assert set(raw["state_dict"]) == {f"module.{k}" for k in tiny.state_dict()}
    assert raw["model_name"] == "egovideo_tiny" and raw["step"] == 7
    sd, meta = split_checkpoint(raw)
    assert set(sd) == set(tiny.state_dict()) and meta == _pretrain_meta(tiny)
    assert checkpoint_payload(sd, meta).keys() == raw.keys()
    sd2, meta2 = read_checkpoint_with_meta(pretrain_file)
    assert torch.equal(sd2["visual.temporal_embedding"], tiny.state_dict()["visual.temporal_embedding"])
    assert meta2["input_spec"] == tiny.input_spec.to_dict() and meta2["model_config"] == tiny.cfg.to_dict()
    shapes, _ = read_checkpoint_with_meta(pretrain_file, data=False)
    assert shapes["visual.conv1.weight"].device.type == "meta"
    assert shapes["visual.conv1.weight"].shape == tiny.visual.conv1.weight.shape


def test_pretrain_checkpoint_loads_without_a_name(tiny, pretrain_file):
    model = egohod.create_model(checkpoint=pretrain_file)
    assert model.name == "egovideo_tiny" and not model.weights.startswith("random")
    assert torch.equal(model.visual.temporal_embedding, tiny.visual.temporal_embedding)
    enc = egohod.load_encoder(checkpoint=pretrain_file)
    named = egohod.load_encoder("egovideo_tiny", checkpoint=pretrain_file)
    assert enc.name == "egovideo_tiny" and enc.weights == named.weights == model.weights
    with torch.no_grad():
        assert torch.equal(enc(_clip()), named(_clip()))
        assert not torch.allclose(enc(_clip()), egohod.load_encoder("egovideo_tiny", seed=3)(_clip()))


@pytest.mark.parametrize("call", ["create_model", "load_encoder"])
def test_a_name_that_disagrees_with_the_file_is_refused_naming_both(pretrain_file, call):
    with pytest.raises(CheckpointError) as e:
        getattr(egohod, call)("egovideo_small", checkpoint=pretrain_file)
    msg = str(e.value)
    assert "'egovideo_tiny'" in msg and "'egovideo_small'" in msg and "model.pt" in msg and "model_name" in msg
    assert "looks like" not in msg  # the file says what it is: no guessing from shapes


def test_official_file_without_a_name_is_refused_with_a_clear_message(tiny, tmp_path):
    path = tmp_path / "official.pt"
    torch.save({"epoch": 14, "state_dict": {f"module.{k}": v for k, v in tiny.state_dict().items()}}, path)
    assert read_checkpoint_meta(path) == {"epoch": 14}
    for call in (egohod.create_model, egohod.load_encoder):
        with pytest.raises(CheckpointError, match=r"official\.pt does not say which model it holds.*pass the name"
                                                  r".*looks like a checkpoint of egovideo_tiny"):
            call(checkpoint=path)
    model = egohod.create_model("egovideo_tiny", checkpoint=path)  # with the name it loads as before
    assert torch.equal(model.visual.temporal_embedding, tiny.visual.temporal_embedding)
    with pytest.raises(TypeError, match="needs a name or a checkpoint"):
        egohod.load_encoder()


def test_a_file_naming_a_model_egohod_does_not_register_needs_the_name(tiny, tmp_path):
    meta = dict(_pretrain_meta(tiny), model_name="someone_elses_vit")
    path = write_checkpoint(tmp_path / "third_party.pt", tiny.state_dict(), meta)
    with pytest.raises(CheckpointError, match="names 'someone_elses_vit'.*egovideo_tiny"):
        egohod.create_model(checkpoint=path)
    assert egohod.create_model("egovideo_tiny", checkpoint=path).name == "egovideo_tiny"


def test_safetensors_export_round_trip_without_a_name(tmp_path):
    from egohod.export import ExportConfig, read_export_metadata, run_export

    out = tmp_path / "enc.safetensors"
    result = run_export(ExportConfig(encoder="egovideo_tiny", out=str(out), seed=5))
    assert result["ok"] and read_export_metadata(out)["encoder"] == "egovideo_tiny"
    enc = egohod.load_encoder(checkpoint=out)
    with torch.no_grad():
        assert torch.equal(enc(_clip()), egohod.load_encoder("egovideo_tiny", seed=5)(_clip()))
    with pytest.raises(CheckpointError, match="'egovideo_tiny' \\(its 'encoder' entry\\).*'egovideo_small'"):
        egohod.load_encoder("egovideo_small", checkpoint=out)
