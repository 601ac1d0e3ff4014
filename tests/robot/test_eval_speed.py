"""The fast evaluation paths change nothing a run reports: one encoder forward for all
environments gives the actions and successes of one forward per environment (and of one
environment at a time), the frame history seen at rollout equals the cached training features
of the same frames, the timing split adds up, and bf16 features get their own cache key."""
import numpy as np
import pytest
import torch

SIZE, HORIZON, SEEDS = 32, 5, [3, 4, 5]


class Recorder:
    """A policy that records, per call, the features and proprio it saw and the actions it gave."""

    def __init__(self, policy):
        self.policy, self.calls = policy, []

    def eval(self):
        self.policy.eval()
        return self

    def initial_state(self, n):
        return self.policy.initial_state(n)

    def act(self, feats, prop, state):
        act, state = self.policy.act(feats, prop, state)
        self.calls.append((feats.clone().numpy(), act.detach().clone().numpy()))
        return act, state


@pytest.fixture(scope="module")
def rollouts():
    from policies import create_policy
    from robot.evaluation import EvalEnvs, run_episodes
    from robot.obs_encoders import build_obs_encoder

    torch.manual_seed(0)
    enc = build_obs_encoder("egovideo_tiny", None, 2, seed=0)  # a 2-frame history
    torch.manual_seed(0)
    head = create_policy("mlp", enc.info.embed_dim, 9, 9)
    out = {}
    for name, num_envs, batch in (("batched", 3, None), ("per_env", 3, 1), ("one_env", 1, None)):
        pool = EvalEnvs("kitchen/microwave", num_envs, "left", SIZE, HORIZON)
        rec, timing = Recorder(head), {}
        try:
            records, videos = run_episodes(rec, enc, pool, SEEDS, "cpu", record=len(SEEDS) if name == "batched" else 0,
                                           encode_batch=batch, timing=timing)
        finally:
            pool.close()
        out[name] = (records, videos, rec.calls, timing)
    return enc, out


def _per_episode_actions(calls, num_envs):
    """[episode][step] actions from per-call [num_envs, 9] arrays (rounds of num_envs episodes)."""
    eps = {}
    steps_per_round = HORIZON
    for k, (_, act) in enumerate(calls):
        rnd, t = divmod(k, steps_per_round)
        for i in range(num_envs):
            eps.setdefault(rnd * num_envs + i, []).append(act[i])
    return [np.stack(eps[e]) for e in range(len(SEEDS))]


@pytest.mark.render
def test_one_forward_for_all_envs_gives_the_same_actions_and_successes(rollouts):
    _, out = rollouts
    batched, per_env, one_env = (out[k] for k in ("batched", "per_env", "one_env"))
    assert [r.to_dict() for r in batched[0]] == [r.to_dict() for r in per_env[0]] == [r.to_dict() for r in one_env[0]]
    assert [r.seed for r in batched[0]] == SEEDS
    a_batched = _per_episode_actions(batched[2], 3)
    for other, n in ((per_env[2], 3), (one_env[2], 1)):
        for x, y in zip(a_batched, _per_episode_actions(other, n)):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)
    assert np.abs(np.concatenate(a_batched)).max() > 0  # the policy acted (a zero policy would match trivially)


@pytest.mark.render
def test_rollout_history_features_equal_the_cached_features_of_the_same_frames(rollouts):
    enc, out = rollouts
    records, videos, calls, _ = out["batched"]
    for i, frames in enumerate(videos):
        steps = records[i].steps
        seen = np.stack([calls[t][0][i] for t in range(steps)])  # features the policy got before each action
        cached = enc.encode_episode(np.stack(frames[:steps]), batch=4)  # as the feature cache computes them
        np.testing.assert_allclose(seen, cached, rtol=1e-4, atol=1e-5)
        assert not np.allclose(seen[0], seen[-1])  # frames changed: the history is not a constant


@pytest.mark.render
def test_timing_split_counts_every_env_step(rollouts):
    _, out = rollouts
    for name in ("batched", "one_env"):  # 1 round of 3 envs or 3 rounds of 1 env: 15 env steps each
        timing = out[name][3]
        assert timing["env_steps"] == HORIZON * len(SEEDS)
        assert min(timing["env_s"], timing["encode_s"], timing["policy_s"]) > 0


def test_bf16_features_have_their_own_cache_key_and_stay_close():
    from robot.obs_encoders import build_obs_encoder, cache_identity, identity_key

    torch.manual_seed(0)
    enc = build_obs_encoder("egovideo_tiny", None, 1, seed=0)
    frames = np.random.default_rng(0).integers(0, 255, (4, SIZE, SIZE, 3), dtype=np.uint8)
    fp32 = enc.encode_episode(frames)
    key32 = identity_key(cache_identity(enc.info, "rgb_left", (SIZE, SIZE, 3), "sha", [0]))
    enc.set_inference("bf16")
    bf16 = enc.encode_episode(frames)
    key16 = identity_key(cache_identity(enc.info, "rgb_left", (SIZE, SIZE, 3), "sha", [0]))
    assert key16 != key32
    assert not np.array_equal(bf16, fp32)
    np.testing.assert_allclose(bf16, fp32, atol=0.1 * np.abs(fp32).max())
    with pytest.raises(ValueError, match="eval.precision='fp16'"):
        enc.set_inference("fp16")


class _FakeVec:
    """Two environments that only count steps (truncated at the horizon)."""

    def __init__(self, n, horizon):
        self.n, self.horizon, self.t = n, horizon, 0

    def _obs(self):
        return {"object_state": np.zeros((self.n, 30), np.float32), "proprio": np.zeros((self.n, 9), np.float32)}

    def reset(self, seed):
        self.t = 0
        return self._obs(), {}

    def step(self, act):
        self.t += 1
        trunc = np.full(self.n, self.t >= self.horizon)
        return self._obs(), np.zeros(self.n), np.zeros(self.n, bool), trunc, {}


def test_rollout_encoder_gets_every_thread_and_the_head_its_own():
    """train.cpu_threads=1 narrows the updates and the head, not the rollout encoder."""
    from types import SimpleNamespace

    from policies import create_policy
    from robot.evaluation import Threads, run_episodes
    from robot.obs_encoders import StateObsEncoder

    seen = {"encoder": set(), "head": set()}

    class Encoder(StateObsEncoder):
        def encode_history(self, history):
            seen["encoder"].add(torch.get_num_threads())
            return super().encode_history(history)

    head = create_policy("mlp", 30, 9, 9)
    act = head.act

    def counting_act(*a):
        seen["head"].add(torch.get_num_threads())
        return act(*a)

    head.act = counting_act
    pool = SimpleNamespace(num_envs=2, horizon=3, camera=None, vec=_FakeVec(2, 3))
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # as the training loop leaves it with train.cpu_threads=1
    try:
        records, _ = run_episodes(head, Encoder(30), pool, [0, 1], "cpu", threads=Threads(encoder=2, head=1))
        assert torch.get_num_threads() == 1  # restored after the rollout
    finally:
        torch.set_num_threads(before)
    assert seen == {"encoder": {2}, "head": {1}} and [r.steps for r in records] == [3, 3]
