"""R3M's BC head (policy=mlp_r3m): structure, last-layer scale, raw-action loss, BatchNorm modes."""
import torch
from torch import nn

from policies import create_policy


def test_structure_and_last_layer_scale():
    torch.manual_seed(7)
    p = create_policy("mlp_r3m", 16, 9, 9)
    torch.manual_seed(7)
    ref = [nn.BatchNorm1d(25), nn.Linear(25, 256), nn.Linear(256, 256), nn.Linear(256, 9)]  # same draw order
    assert isinstance(p.bn, nn.BatchNorm1d) and p.bn.num_features == 25
    assert [(l.in_features, l.out_features) for l in p.fc] == [(25, 256), (256, 256), (256, 9)]
    torch.testing.assert_close(p.fc[0].weight, ref[1].weight)  # PyTorch's default init ...
    torch.testing.assert_close(p.fc[-1].weight, 1e-2 * ref[3].weight)  # ... last layer x 1e-2
    torch.testing.assert_close(p.fc[-1].bias, 1e-2 * ref[3].bias)
    # tanh hidden units: the forward pass equals BatchNorm -> tanh(Linear) x 2 -> Linear
    p.eval()
    f, q = torch.randn(4, 16), torch.randn(4, 9)
    x = p.bn(torch.cat([f, q], -1))
    want = p.fc[2](torch.tanh(p.fc[1](torch.tanh(p.fc[0](x)))))
    torch.testing.assert_close(p(f, q), want)
    assert p.describe()["options"] == {"hidden": [256, 256], "last_scale": 0.01, "action_limit": 1.0}


def test_raw_actions_ignore_standardisation_and_batchnorm_uses_batch_stats_in_training():
    torch.manual_seed(0)
    p = create_policy("mlp_r3m", 6, 3, 2, {"hidden": [32, 32]})
    f, q, a = torch.randn(64, 6) * 5 + 3, torch.randn(64, 3), torch.rand(64, 2) * 2 - 1
    p.set_normalization(torch.full((9,), 100.0), torch.full((9,), 50.0))
    p.set_action_normalization(torch.full((2,), 7.0), torch.full((2,), 3.0))
    p.train()
    loss = p.loss(f, q, a)
    torch.testing.assert_close(loss, nn.functional.mse_loss(p(f, q), a))  # raw actions, raw inputs
    h = p.bn(torch.cat([f, q], -1))
    assert h.mean(0).abs().max() < 1e-5  # training: standardised with the batch's own statistics
    opt = torch.optim.Adam(p.parameters(), lr=1e-2)
    first = None
    for _ in range(60):
        opt.zero_grad()
        loss = p.loss(f, q, a)
        loss.backward()
        opt.step()
        first = first if first is not None else loss.item()
    assert loss.item() < 0.7 * first
    p.eval()
    act, _ = p.act(f[:3] * 100, q[:3])
    assert act.abs().max() <= 1.0
