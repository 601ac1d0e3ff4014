"""CUDA checks of the training step (skipped without a GPU): bf16 autocast and fp16 + GradScaler."""

import pytest
import torch

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_dual_path_step_on_cuda(precision):
    import egohod

    from pretrain.step import train_step

    dev = torch.device("cuda")
    torch.manual_seed(0)
    m = egohod.create_model("egovideo_tiny").to(dev)
    m.set_trainable("cotrain")
    opt = torch.optim.AdamW([g for g in m.param_groups(0.01) if g["params"]], lr=1e-3)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler("cuda", init_scale=2.0 ** 8) if precision == "fp16" else None
    batch = {"video": torch.randn(8, 3, 4, 32, 32, device=dev), "video_slow": torch.randn(8, 3, 16, 32, 32, device=dev),
             "tokens": torch.randint(1, 49000, (8, 77), device=dev)}
    batch["tokens"][:, 10] = 49407
    before = m.visual.conv1.weight.detach().clone()
    losses = [train_step(m, [batch], opt, autocast=lambda: torch.autocast("cuda", dtype=dtype), scaler=scaler)
              for _ in range(5)]
    assert all(torch.isfinite(torch.tensor(r.loss)) for r in losses)
    assert not all(r.skipped for r in losses)
    assert not torch.equal(before, m.visual.conv1.weight)
    assert losses[-1].loss < losses[0].loss  # the same batch five times: memorised
