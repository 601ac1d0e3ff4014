"""robot/probe_features.py: the ridge probe's R^2 and the feature-collapse measure."""
import numpy as np
import pytest

from robot.probe_features import mean_pairwise_cosine, probe, ridge_r2


def test_ridge_r2_known_answers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    y = x @ rng.normal(size=(5, 2)) + 3.0
    assert ridge_r2(x[:150], y[:150], x[150:], y[150:], ridge=1e-6) == pytest.approx(1.0, abs=1e-6)
    noise = rng.normal(size=(200, 2))  # unrelated target: no better than its mean
    assert ridge_r2(x[:150], noise[:150], x[150:], noise[150:]) < 0.05


def test_probe_groups_and_collapse():
    rng = np.random.default_rng(1)
    state = [rng.normal(size=(10, 10)) for _ in range(6)]
    proprio = [rng.normal(size=(10, 9)) for _ in range(6)]
    informative = [s[:, [0, 4, 5, 6]] + 0.01 * rng.normal(size=(10, 4)) for s in state]  # joint + site
    r = probe(informative, proprio, state, train=4, ridge=1e-3)
    assert r["task_joint"] > 0.99 and r["task_site"] > 0.99 and r["hand_to_site"] < 0.3
    same = np.ones((50, 8)) + 1e-4 * rng.normal(size=(50, 8))
    assert mean_pairwise_cosine(same) > 0.999 and mean_pairwise_cosine(rng.normal(size=(50, 8))) < 0.2
