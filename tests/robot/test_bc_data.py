import numpy as np
import torch

from robot.bc_data import BCData


def _data():
    lengths = [4, 2, 6]
    feats = [np.full((n, 3), i, np.float32) + np.arange(n)[:, None] / 10 for i, n in enumerate(lengths)]
    prop = [np.full((n, 2), i, np.float32) for i, n in enumerate(lengths)]
    acts = [np.full((n, 1), i, np.float32) for i, n in enumerate(lengths)]
    return BCData(feats, prop, acts)


def test_windows_stay_inside_one_episode():
    d = _data()
    assert d.num_steps == 12 and d.dims == {"feature_dim": 3, "proprio_dim": 2, "action_dim": 1}
    g = torch.Generator().manual_seed(0)
    b = d.sample(256, 3, g)
    assert b.features.shape == (256, 3, 3) and b.actions.shape == (256, 3, 1)
    # all steps of a window belong to the episode of its first step ...
    assert torch.all(b.actions[:, :, 0] == b.actions[:, :1, 0])
    # ... and are consecutive (the 2-step episode is padded with its last step)
    t = (b.features[:, :, 0] - b.features[:, :, 0].floor()) * 10
    diffs = (t[:, 1:] - t[:, :-1]).round()
    assert torch.all((diffs == 1) | ((diffs == 0) & (b.actions[:, :1, 0] == 1)))
    starts = set(d.window_starts(3).tolist())
    assert starts == {0, 1, 4, 6, 7, 8, 9}


def test_input_stats():
    d = _data()
    mean, std = d.input_stats()
    x = torch.cat([d.features, d.proprio], 1)
    assert torch.allclose(mean, x.mean(0)) and torch.allclose(std, x.std(0, unbiased=False))
