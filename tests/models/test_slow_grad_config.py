"""``slow_grad`` is a model setting (``EgoVideoConfig.slow_grad``, ``create_model(..., slow_grad=)``):
the plain ``model(video, tokens, video_slow)`` forward, the one DDP/FSDP call, uses it, and
pretraining sets it through ``create_model`` instead of patching ``encode_video_dual`` on the
instance."""
import pytest
import torch

import egohod


def _model(**kw):
    m = egohod.create_model("egovideo_tiny", **kw)
    with torch.no_grad():  # non-zero adapters so their gradients are visible
        for blk in m.visual.transformer.resblocks:
            blk.adapter.up_proj.weight.normal_(std=0.05, generator=torch.Generator().manual_seed(1))
    m.set_trainable("cotrain")
    return m


def _forward_grads(model) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    fast, slow = torch.randn(2, 3, 4, 32, 32, generator=g), torch.randn(2, 3, 16, 32, 32, generator=g)
    out = model(fast, egohod.get_tokenizer("egovideo_tiny")(["a cup", "a pan"]), video_slow=slow)
    (out["video"] * torch.linspace(-1, 1, out["video"].numel()).view_as(out["video"])).sum().backward()
    return {n: p.grad for n, p in model.named_parameters() if ".adapter." in n}


def test_the_forward_uses_the_models_slow_grad():
    assert egohod.create_model("egovideo_tiny").cfg.slow_grad == "frozen"  # the default is unchanged
    frozen, no_grad = _model(), _model(slow_grad="no_grad")
    assert no_grad.cfg.slow_grad == "no_grad" and no_grad.cfg.to_dict()["slow_grad"] == "no_grad"
    g_frozen, g_no_grad = _forward_grads(frozen), _forward_grads(no_grad)
    first = "visual.transformer.resblocks.0.adapter.up_proj.weight"
    assert g_frozen[first].abs().max() > 0  # frozen: adapters learn through the later blocks
    assert all(g is None or g.abs().max() == 0 for g in g_no_grad.values())  # no_grad: upstream, none do


def test_a_call_may_override_the_models_slow_grad_and_bad_values_are_refused():
    model = _model(slow_grad="no_grad")
    g = torch.Generator().manual_seed(0)
    fast, slow = torch.randn(2, 3, 4, 32, 32, generator=g), torch.randn(2, 3, 16, 32, 32, generator=g)
    with torch.no_grad():
        torch.testing.assert_close(model.encode_video_dual(fast, slow),
                                   model.encode_video_dual(fast, slow, slow_grad="frozen"))  # same values
    with pytest.raises(ValueError, match="slow_grad must be 'no_grad' or 'frozen'; got 'sometimes'"):
        egohod.create_model("egovideo_tiny", slow_grad="sometimes")


@pytest.mark.parametrize("mode", ["frozen", "no_grad"])
def test_pretraining_builds_the_model_with_its_slow_grad(mode):
    from pretrain.config import PretrainConfig
    from pretrain.distributed import DistInfo
    from pretrain.train import build_model

    cfg = PretrainConfig()
    cfg.model.name, cfg.model.stage, cfg.model.slow_grad = "egovideo_tiny", "cotrain", mode
    model, wrapped, _ = build_model(cfg, DistInfo())
    assert model.cfg.slow_grad == mode
    assert "encode_video_dual" not in vars(model)  # nothing bound on the instance
