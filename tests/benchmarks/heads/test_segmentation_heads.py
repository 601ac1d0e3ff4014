"""The segmentation heads' parts against direct computations: ASFormer's local attention, the
MS-TCN loss, padding, and the registry's settings check."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from egohod.benchmarks.heads import HEADS, head_options, heads_for_task
from egohod.benchmarks.heads.asformer import local_attention
from egohod.benchmarks.heads.segmentation_head import segmentation_loss


@pytest.mark.parametrize("window", [1, 2, 4, 8, 32])
def test_local_attention_matches_a_per_frame_loop(window):
    g = torch.Generator().manual_seed(0)
    B, C, T = 2, 4, 23
    q, k, v = (torch.randn(B, C, T, generator=g), torch.randn(B, C, T, generator=g), torch.randn(B, 3, T, generator=g))
    valid = torch.ones(B, 1, T)
    valid[1, 0, 17:] = 0  # padding at the end of the second video
    out = local_attention(q, k, v, valid, window)
    ref = torch.zeros(B, 3, T)
    for b in range(B):
        for t in range(T):
            keys = [j for j in range(t - window // 2, t - window // 2 + window) if 0 <= j < T and valid[b, 0, j]]
            if keys:
                w = torch.softmax(torch.stack([q[b, :, t] @ k[b, :, j] for j in keys]) / C ** 0.5, 0)
                ref[b, :, t] = sum(w[i] * v[b, :, j] for i, j in enumerate(keys))
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_loss_is_ce_plus_truncated_smoothing_per_stage():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(2, 1, 3, 10, generator=g) * 4
    target = torch.randint(0, 3, (1, 10), generator=g)
    mask = torch.ones(1, 1, 10)
    want = 0
    for p in logits:
        lp = F.log_softmax(p, 1)
        want += F.cross_entropy(p, target) + 0.15 * ((lp[:, :, 1:] - lp[:, :, :-1]) ** 2).clamp(max=16).mean()
    torch.testing.assert_close(segmentation_loss(logits, target, mask, 0.15, 16.0), want)
    # padded frames count for nothing
    padded = torch.cat([logits, torch.randn(2, 1, 3, 5, generator=g)], -1)
    pmask = torch.cat([mask, torch.zeros(1, 1, 5)], -1)
    ce_only = segmentation_loss(padded, torch.cat([target, torch.zeros(1, 5, dtype=torch.long)], -1), pmask, 0.0, 16.0)
    torch.testing.assert_close(ce_only, sum(F.cross_entropy(p, target) for p in logits))


@pytest.mark.parametrize("name, options", [("mstcn", {"num_stages": 2, "num_layers": 4, "num_f_maps": 8}),
                                           ("asformer", {"num_decoders": 2, "num_layers": 4, "num_f_maps": 8})])
def test_outputs_on_real_frames_do_not_depend_on_padding(name, options):
    torch.manual_seed(0)
    model = HEADS.get(name)(8, 4, head_options(name, options)).eval()
    x = torch.randn(1, 8, 30)
    alone = model(x, torch.ones(1, 1, 30))
    batch = torch.cat([torch.cat([x, torch.zeros(1, 8, 20)], -1), torch.randn(1, 8, 50)])
    mask = torch.ones(2, 1, 50)
    mask[0, :, 30:] = 0
    torch.testing.assert_close(model(batch, mask)[:, :1, :, :30], alone, atol=1e-5, rtol=1e-4)


def test_masked_instance_norm_is_instance_norm_on_an_unpadded_video():
    from egohod.benchmarks.heads.asformer import masked_instance_norm

    x = torch.randn(2, 5, 17)
    torch.testing.assert_close(masked_instance_norm(x, torch.ones(2, 1, 17)), F.instance_norm(x), atol=1e-5, rtol=1e-4)


def test_registry_lists_the_segmentation_heads_and_checks_their_settings():
    assert {"mstcn", "asformer", "linear"} <= set(heads_for_task("segmentation"))
    assert head_options("asformer", {"name": "asformer", "num_layers": 3}).num_layers == 3
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['num_layer'\].*accepted options: .*num_layers"):
        head_options("mstcn", {"num_layer": 3})
    with pytest.raises(KeyError, match="did you mean 'mstcn'"):
        HEADS.get("mstnc")
