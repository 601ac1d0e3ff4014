"""Policy registry and heads: sizes, option validation, checkpoint round trip, and that each
head actually fits a toy regression (its loss falls)."""
import pytest
import torch

from policies import create_policy, list_policies, policy_options

SMALL = {
    "mlp": {"hidden": [64, 64]},
    "gmm": {"hidden": [64, 64], "num_modes": 3},
    "rnn": {"hidden_dim": 32, "num_layers": 1, "seq_len": 4},
}


def test_registry_lists_the_heads():
    assert list_policies() == ["gmm", "mlp", "mlp_r3m", "rnn"]


def test_unknown_policy_and_option_are_clear_errors():
    with pytest.raises(KeyError, match=r"unknown policy 'transformer'.*gmm, mlp, mlp_r3m, rnn"):
        create_policy("transformer", 8, 9, 9)
    with pytest.raises(ValueError, match=r"policy 'mlp': unknown option\(s\) \['hiden'\].*accepted options"):
        policy_options("mlp", {"hiden": [1]})
    with pytest.raises(ValueError, match="rnn_type must be LSTM or GRU"):
        create_policy("rnn", 8, 9, 9, {"rnn_type": "TCN"})


@pytest.mark.parametrize("name", ["mlp", "gmm", "rnn"])
def test_shapes_and_state(name):
    torch.manual_seed(0)
    p = create_policy(name, 16, 9, 9, SMALL[name])
    L = p.seq_len
    assert L == (4 if name == "rnn" else 1)
    loss = p.loss(torch.randn(5, L, 16), torch.randn(5, L, 9), torch.rand(5, L, 9) * 2 - 1)
    assert loss.dim() == 0 and torch.isfinite(loss)
    p.eval()
    state = p.initial_state(3)
    for _ in range(3):  # a few rollout steps carry the state along
        a, state = p.act(torch.randn(3, 16), torch.randn(3, 9), state)
        assert a.shape == (3, 9)
        assert a.abs().max() <= 1.0 + 1e-6
    if name == "rnn":
        assert state is not None and state[0].shape == (1, 3, 32)


@pytest.mark.parametrize("name", ["mlp", "gmm", "rnn"])
def test_loss_decreases_on_toy_regression(name):
    """actions = tanh(W [f, q]): every head must fit this better after 150 Adam steps."""
    g = torch.Generator().manual_seed(0)
    W = torch.randn(25, 9, generator=g) * 0.5
    f, q = torch.randn(512, 16, generator=g), torch.randn(512, 9, generator=g)
    a = torch.tanh(torch.cat([f, q], 1) @ W)
    torch.manual_seed(0)
    p = create_policy(name, 16, 9, 9, SMALL[name])
    p.set_normalization(torch.cat([f, q], 1).mean(0), torch.cat([f, q], 1).std(0))
    opt = torch.optim.Adam(p.parameters(), lr=3e-3)
    L = p.seq_len

    def batch(i):
        idx = torch.arange(i * 32, i * 32 + 32) % (512 - L)
        win = idx[:, None] + torch.arange(L)[None]
        return f[win], q[win], a[win]

    p.train()
    first = p.loss(*batch(0)).item()
    for i in range(150):
        loss = p.loss(*batch(i))
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():  # train mode: the GMM's likelihood, not its low-noise evaluation mode
        last = p.loss(f[: 512 - 512 % L].reshape(-1, L, 16), q[: 512 - 512 % L].reshape(-1, L, 9),
                      a[: 512 - 512 % L].reshape(-1, L, 9)).item()
    if name == "gmm":  # negative log-likelihood: falls by nats, not by a fraction
        assert last < first - 2.0, (first, last)
    else:
        assert last < 0.5 * first, (first, last)
    p.eval()
    if name == "mlp":  # and actions themselves get close to the targets
        pred, _ = p.act(f, q)
        assert torch.nn.functional.mse_loss(pred, a).item() < 0.3 * a.var().item()


def test_describe_round_trip_restores_weights_and_normalisation():
    torch.manual_seed(0)
    p = create_policy("mlp", 6, 9, 9, SMALL["mlp"])
    p.set_normalization(torch.arange(15.0), torch.full((15,), 2.0))
    d = p.describe()
    assert d == {"name": "mlp", "feature_dim": 6, "proprio_dim": 9, "action_dim": 9,
                 "options": {"hidden": [64, 64], "batchnorm": True, "dropout": 0.0, "action_limit": 1.0,
                             "normalize_actions": True}}
    q = create_policy(d["name"], d["feature_dim"], d["proprio_dim"], d["action_dim"], d["options"])
    q.load_state_dict(p.state_dict())
    assert torch.equal(q.input_mean, torch.arange(15.0))
    p.eval(), q.eval()
    x, y = torch.randn(4, 6), torch.randn(4, 9)
    assert torch.equal(p.act(x, y)[0], q.act(x, y)[0])
    # a dimension constant in training is switched off, not amplified
    p.set_normalization(torch.zeros(15), torch.cat([torch.zeros(1), torch.ones(14)]))
    x = torch.zeros(1, 6)
    x[0, 0] = 1e-2
    assert p.normalized_input(x, torch.zeros(1, 9))[0, 0] == 0
    with pytest.raises(ValueError, match=r"shape \(15,\)"):
        p.set_normalization(torch.zeros(3), torch.ones(3))


def test_mlp_regresses_standardised_actions():
    """With action statistics set, the MLP's loss is the MSE of standardised actions (every
    dimension weighs the same, however small its scale) and its outputs are in env units."""
    torch.manual_seed(0)
    p = create_policy("mlp", 6, 9, 3, SMALL["mlp"])
    mean, std = torch.tensor([0.5, -0.2, 0.0]), torch.tensor([0.5, 0.05, 0.001])
    p.set_action_normalization(mean, std)
    p.eval()
    f, q = torch.randn(5, 6), torch.randn(5, 9)
    raw = p.net(p.normalized_input(f, q))
    torch.testing.assert_close(p(f, q), raw * std + mean)
    target = torch.randn(5, 3) * std + mean
    torch.testing.assert_close(p.loss(f, q, target), torch.nn.functional.mse_loss(raw, (target - mean) / std))
    # the statistics travel in the state dict; a constant dimension's std is floored, not 0
    r = create_policy("mlp", 6, 9, 3, SMALL["mlp"])
    r.load_state_dict(p.state_dict())
    r.eval()
    torch.testing.assert_close(r(f, q), p(f, q))
    p.set_action_normalization(mean, torch.tensor([0.5, 0.05, 0.0]))
    assert p.action_std[2] == pytest.approx(1e-3)
    with pytest.raises(ValueError, match=r"action stats must have shape \(3,\)"):
        p.set_action_normalization(torch.zeros(9), torch.ones(9))
    # normalize_actions=false: raw actions, the statistics are ignored
    raw_p = create_policy("mlp", 6, 9, 3, dict(SMALL["mlp"], normalize_actions=False))
    raw_p.set_action_normalization(mean, std)
    raw_p.eval()
    torch.testing.assert_close(raw_p(f, q), raw_p.net(raw_p.normalized_input(f, q)))
