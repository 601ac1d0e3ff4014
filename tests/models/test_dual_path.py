"""Dual-path co-training forward: shapes, which parameters get gradient in each path,
stages, and gradient checkpointing equality."""
import pytest
import torch

import egohod


@pytest.fixture()
def model():
    torch.manual_seed(0)
    m = egohod.create_model("egovideo_tiny")
    with torch.no_grad():  # non-zero adapters so their effect and gradients are visible
        for blk in m.visual.transformer.resblocks:
            blk.adapter.up_proj.weight.normal_(std=0.05)
    return m


def clips(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, 3, 4, 32, 32, generator=g), torch.randn(2, 3, 16, 32, 32, generator=g)


def test_shapes_and_errors(model):
    fast, slow = clips()
    assert model.encode_video_dual(fast, slow).shape == (2, 32)
    z = model.encode_video_dual(fast, slow, normalize=True)
    torch.testing.assert_close(z.norm(dim=-1), torch.ones(2))
    out = model(fast, egohod.get_tokenizer("egovideo_tiny")(["a", "b"]), video_slow=slow)
    torch.testing.assert_close(out["video"], z)
    with pytest.raises(ValueError, match="batch sizes differ"):
        model.encode_video_dual(fast, slow[:1])
    with pytest.raises(ValueError, match="slow_grad"):
        model.encode_video_dual(fast, slow, slow_grad="sometimes")
    plain = egohod.create_model("egovideo_tiny", adapter=False)
    with pytest.raises(RuntimeError, match="adapter"):
        plain.encode_video_dual(fast, slow)


def test_adapter_changes_slow_path_only(model):
    fast, slow = clips()
    with torch.no_grad():
        a = model.visual.forward_slow(slow)
        b = model.visual(fast)
        for blk in model.visual.transformer.resblocks:
            blk.adapter.up_proj.weight.zero_()
        torch.testing.assert_close(model.visual(fast), b)  # fast path never uses the adapter
        assert not torch.allclose(model.visual.forward_slow(slow), a)
        torch.testing.assert_close(model.visual.forward_slow(slow), model.visual(slow))  # identity adapters


def _grads(model, fast, slow, mode, detach_slow=False):
    model.zero_grad()
    if detach_slow:
        s = model.visual.forward_slow(slow, slow_grad=mode).detach()
        z = torch.cat([s, model.visual(fast)], -1) @ model.slowfast_projection
    else:
        z = model.encode_video_dual(fast, slow, slow_grad=mode)
    (z * torch.linspace(-1, 1, z.numel()).view_as(z)).sum().backward()
    return {n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p)) for n, p in model.named_parameters()}


@pytest.mark.parametrize("mode", ["frozen", "no_grad"])
def test_backbone_gets_gradient_only_from_the_fast_path(model, mode):
    model.set_trainable("cotrain")
    fast, slow = clips(1)
    full = _grads(model, fast, slow, mode)
    fast_only = _grads(model, fast, slow, mode, detach_slow=True)
    shared_after = {"visual.ln_post.weight", "visual.ln_post.bias", "visual.image_projection", "slowfast_projection"}
    for n, g in full.items():
        if ".adapter." in n or n in shared_after:
            continue
        torch.testing.assert_close(g, fast_only[n], msg=f"{n} got gradient from the 16-frame path")
    assert full["visual.transformer.resblocks.0.attn.in_proj_weight"].abs().max() > 0  # fast path trains it
    assert all(g.abs().max() == 0 for n, g in full.items() if n.startswith("textual."))


def test_which_adapters_train(model):
    model.set_trainable("cotrain")
    fast, slow = clips(2)
    frozen = _grads(model, fast, slow, "frozen")
    nograd = _grads(model, fast, slow, "no_grad")
    first = "visual.transformer.resblocks.0.adapter.up_proj.weight"
    last = "visual.transformer.resblocks.1.adapter.up_proj.weight"
    assert frozen[first].abs().max() > 0  # trained through the later block
    assert frozen[last].abs().max() == 0  # CLS pooling: last adapter cannot reach the output
    assert nograd[first].abs().max() == 0 and nograd[last].abs().max() == 0  # upstream behaviour
    assert frozen["slowfast_projection"].abs().max() > 0


def test_stages_and_param_groups(model):
    names = dict(model.named_parameters())
    contrastive = set(model.set_trainable("contrastive"))
    assert not any(".adapter." in n for n in contrastive) and "slowfast_projection" not in contrastive
    assert "textual.token_embedding.weight" in contrastive and "logit_scale" not in contrastive
    assert not names["visual.transformer.resblocks.0.adapter.gamma"].requires_grad
    adapter = set(model.set_trainable("adapter"))
    assert "visual.temporal_embedding" in adapter and "textual.text_projection" in adapter
    assert "visual.conv1.weight" not in adapter and "textual.token_embedding.weight" not in adapter
    groups = model.param_groups_for_stage("cotrain", weight_decay=0.01)
    decay = {id(p) for p in groups[0]["params"]}
    assert groups[0]["weight_decay"] == 0.01 and groups[1]["weight_decay"] == 0.0
    assert id(names["visual.conv1.weight"]) in decay
    assert id(names["visual.ln_post.weight"]) not in decay and id(names["visual.transformer.resblocks.0.attn.in_proj_bias"]) not in decay
    assert sum(len(g["params"]) for g in groups) == len(names) - 1  # all but logit_scale
    with pytest.raises(ValueError, match="unknown stage"):
        model.set_trainable("everything")


def test_grad_checkpointing_gives_same_values_and_grads(model):
    model.set_trainable("cotrain")
    fast, slow = clips(3)
    tokens = egohod.get_tokenizer("egovideo_tiny")(["#C C opens the fridge", "#C C washes a cup"])

    def run():
        model.zero_grad()
        z = model.encode_video_dual(fast, slow) + model.encode_text(tokens)
        z.square().sum().backward()
        return z.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    z0, g0 = run()
    model.set_grad_checkpointing(True)
    assert model.visual.transformer.grad_checkpointing and model.textual.transformer.grad_checkpointing
    z1, g1 = run()
    model.set_grad_checkpointing(False)
    torch.testing.assert_close(z0, z1)
    assert g0.keys() == g1.keys()
    for n in g0:
        torch.testing.assert_close(g0[n], g1[n], msg=n)
