"""``robot.evaluation``'s bookkeeping on scripted environments whose outcome is known step by step
(a fake vectorised env, no simulator): success, success step, solved steps and control steps per
episode, seeds and padding of a last partial round, what an autoresetting env reports after an
episode ended, recorded frames, progress, the RNG contract of ``evaluate``, and the lazily built
env pool. ``test_evaluation_success.py`` runs the same path through the real simulator."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from robot import evaluation
from robot.evaluation import EvalEnvs, EpisodeRecord, env_obs_key, evaluate, run_episodes, write_video
from robot.obs_encoders import StateObsEncoder

HORIZON = 12
SUCCESS_AFTER = 5  # the env's rule: success once the task was solved at more than 5 steps


@dataclass
class Script:
    solved_from: int | None = None  # first step within the threshold (stays solved); None: never
    end: int = HORIZON              # the episode terminates at this step (HORIZON: truncated)


class ScriptedVecEnv:
    """Env ``i`` plays the episode scripted for its seed (unscripted seeds: never solved, run to
    the horizon). After its episode ended it keeps stepping, as an autoresetting vector env
    does, and reports success with 99 solved steps: evaluation must not count any of it."""

    def __init__(self, scripts: dict[int, Script], num_envs: int, horizon: int = HORIZON):
        self.scripts, self.num_envs, self.horizon = scripts, num_envs, horizon
        self.resets: list[list[int]] = []
        self.actions: list[np.ndarray] = []
        self.closed = False

    def _obs(self):
        state = np.array([[s, t] for s, t in zip(self.seeds, self.t)], np.float32)
        rgb = np.stack([np.full((2, 2, 3), t, np.uint8) for t in self.t])
        return {"object_state": state, "proprio": np.repeat(state[:, 1:], 9, axis=1), "rgb": rgb}

    def reset(self, seed):
        self.seeds = list(seed)
        self.resets.append(list(seed))
        self.t = np.zeros(self.num_envs, int)
        return self._obs(), {}

    def step(self, actions):
        self.actions.append(actions)
        self.t += 1
        n = self.num_envs
        success, solved = np.zeros(n, bool), np.zeros(n, int)
        term, trunc = np.zeros(n, bool), np.zeros(n, bool)
        for i, (seed, t) in enumerate(zip(self.seeds, self.t)):
            script = self.scripts.get(seed, Script())
            if t > script.end:  # a new (autoreset) episode: garbage for the evaluation
                success[i], solved[i] = True, 99
                continue
            if script.solved_from is not None and t >= script.solved_from:
                solved[i] = t - script.solved_from + 1
            success[i] = solved[i] > SUCCESS_AFTER
            term[i] = t == script.end < self.horizon
            trunc[i] = t == self.horizon
        info = {"success": success, "_success": np.ones(n, bool), "solved_steps": solved,
                "_solved_steps": np.ones(n, bool)}
        return self._obs(), np.zeros(n), term, trunc, info

    def close(self):
        self.closed = True


class FakePool:
    def __init__(self, vec, camera=None):
        self.vec, self.num_envs, self.horizon, self.camera = vec, vec.num_envs, vec.horizon, camera


class RecordingPolicy:
    """Acts 0.5 everywhere; records its inputs and one torch random draw per call."""

    def __init__(self):
        self.features, self.proprio, self.draws, self.in_eval_mode = [], [], [], False

    def eval(self):
        self.in_eval_mode = True
        return self

    def initial_state(self, num_envs):
        return {"n": num_envs}

    def act(self, features, proprio, state):
        assert self.in_eval_mode, "evaluation must put the policy in eval mode before acting"
        self.features.append(features.clone())
        self.proprio.append(proprio.clone())
        self.draws.append(torch.rand(1).item())
        return torch.full((state["n"], 9), 0.5, dtype=torch.float64), state


class Progress:
    def __init__(self):
        self.total = 0

    def update(self, k):
        self.total += k


# seed 10: solved from step 3 to the horizon -> success at step 3 + 5 = 8, 12 - 3 + 1 = 10 solved
# seed 11: never solved, terminates at step 5; afterwards the autoreset garbage says "success"
# seed 12: solved from step 1, terminates at step 7 -> success at step 6, 7 solved
SCRIPTS = {10: Script(solved_from=3), 11: Script(end=5), 12: Script(solved_from=1, end=7)}
EXPECTED = [
    {"seed": 10, "success": True, "steps": 12, "success_step": 8, "solved_steps": 10},
    {"seed": 11, "success": False, "steps": 5, "success_step": None, "solved_steps": 0},
    {"seed": 12, "success": True, "steps": 7, "success_step": 6, "solved_steps": 7},
]


def _evaluate(vec, episodes, seed0, policy=None):
    return evaluate(policy or RecordingPolicy(), StateObsEncoder(2), FakePool(vec), episodes, seed0,
                    torch.device("cpu"))


def test_episode_records_match_the_scripted_episodes():
    vec = ScriptedVecEnv(SCRIPTS, num_envs=3)
    res = _evaluate(vec, 3, 10)
    assert res["episodes"] == EXPECTED
    assert res["success_rate"] == pytest.approx(2 / 3)
    assert vec.resets == [[10, 11, 12]]
    assert len(vec.actions) == HORIZON  # seed 10 runs to the horizon


def test_policy_sees_each_step_observation_and_sends_float32_actions():
    vec = ScriptedVecEnv(SCRIPTS, num_envs=3)
    policy = RecordingPolicy()
    _evaluate(vec, 3, 10, policy)
    for t, (feats, prop) in enumerate(zip(policy.features, policy.proprio)):
        # object_state after t steps is [seed, t] (state encoder, one frame); proprio repeats t
        assert feats.tolist() == [[10.0, t], [11.0, t], [12.0, t]]
        assert prop.dtype == torch.float32 and prop.shape == (3, 9) and bool((prop == t).all())
    assert all(a.dtype == np.float32 and a.shape == (3, 9) and (a == 0.5).all() for a in vec.actions)


def test_one_env_at_a_time_gives_the_same_records():
    res = _evaluate(ScriptedVecEnv(SCRIPTS, num_envs=1), 3, 10)
    assert res["episodes"] == EXPECTED


def test_a_partial_last_round_pads_with_far_seeds_that_are_not_counted():
    # 3 episodes on 2 envs: the second round runs seed 12 beside an idle env whose seed is
    # 12 + 10_000_000 (robot/corpus.py keeps its seeds clear of these); that env "succeeds"
    pad_seed = 12 + 10_000_000
    vec = ScriptedVecEnv({**SCRIPTS, pad_seed: Script(solved_from=1)}, num_envs=2)
    res = _evaluate(vec, 3, 10)
    assert vec.resets == [[10, 11], [12, pad_seed]]
    assert res["episodes"] == EXPECTED
    assert res["success_rate"] == pytest.approx(2 / 3)


def test_every_idle_env_of_a_partial_round_gets_its_own_far_seed():
    # 4 episodes on 3 envs: the second round runs seed 13 beside two idle envs
    vec = ScriptedVecEnv({}, num_envs=3)
    res = _evaluate(vec, 4, 10)
    assert vec.resets == [[10, 11, 12], [13, 13 + 10_000_000, 13 + 10_000_001]]
    assert [e["seed"] for e in res["episodes"]] == [10, 11, 12, 13]


def test_all_episodes_ending_early_stops_stepping():
    vec = ScriptedVecEnv({0: Script(end=4), 1: Script(solved_from=1, end=3)}, num_envs=2)
    res = _evaluate(vec, 2, 0)
    assert len(vec.actions) == 4
    assert [(e["steps"], e["success"]) for e in res["episodes"]] == [(4, False), (3, False)]


def test_recorded_frames_are_the_live_steps_of_the_first_episodes():
    vec = ScriptedVecEnv(SCRIPTS, num_envs=2)
    progress = Progress()
    records, videos = run_episodes(RecordingPolicy(), StateObsEncoder(2), FakePool(vec, camera="left"),
                                   [10, 11, 12], torch.device("cpu"), record=2, progress=progress)
    assert [r.to_dict() for r in records] == EXPECTED
    # the reset frame, then one per step while the episode runs (the frame value is the step)
    assert [[int(f[0, 0, 0]) for f in v] for v in videos] == [list(range(13)), list(range(6))]
    assert progress.total == 12 + 5 + 7  # live control steps only (not the padded env's)


def test_recording_needs_a_camera():
    with pytest.raises(ValueError, match="^recording videos needs an environment camera$"):
        run_episodes(RecordingPolicy(), StateObsEncoder(2), FakePool(ScriptedVecEnv({}, 1)), [0],
                     torch.device("cpu"), record=1)


def test_evaluate_uses_seed0_for_the_policy_rng_and_leaves_the_global_stream_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(1).item()
    torch.manual_seed(5)
    expected_draws = [torch.rand(1).item() for _ in range(HORIZON)]

    torch.manual_seed(123)
    policy = RecordingPolicy()
    _evaluate(ScriptedVecEnv({}, num_envs=1), 1, 5, policy)
    assert torch.rand(1).item() == expected_next
    assert policy.draws == expected_draws


def test_info_array_defaults_and_masks():
    assert evaluation._info_array({}, "success", 3, False).tolist() == [False] * 3
    assert evaluation._info_array({}, "solved_steps", 2, 0).tolist() == [0, 0]
    info = {"solved_steps": np.array([4, 7, 9]), "_solved_steps": np.array([True, False, True])}
    assert evaluation._info_array(info, "solved_steps", 3, 0).tolist() == [4, 0, 9]
    assert evaluation._info_array({"solved_steps": [4, 7]}, "solved_steps", 2, 0).tolist() == [4, 7]


def test_env_obs_key_follows_the_encoder():
    class Rgb:
        needs_rgb = True

    assert env_obs_key(Rgb()) == "rgb"
    assert env_obs_key(StateObsEncoder(2)) == "object_state"


def test_eval_envs_are_built_once_lazily_with_their_settings_and_rebuilt_after_close(monkeypatch):
    import envs

    built = []

    def fake_make_vec(env_id, num_envs, **kwargs):
        built.append((env_id, num_envs, kwargs))
        return ScriptedVecEnv({}, num_envs)

    monkeypatch.setattr(envs, "make_vec", fake_make_vec)
    extra = {"strict_success": True}
    pool = EvalEnvs("kitchen/microwave", 2, "left", 64, 30, env_kwargs=extra)
    extra["strict_success"] = False  # the pool keeps its own copy
    assert built == []
    first = pool.vec
    assert pool.vec is first
    assert built == [("kitchen/microwave", 2,
                      {"camera": "left", "image_size": 64, "horizon": 30, "strict_success": True})]
    pool.close()
    assert first.closed
    assert pool.vec is not first and len(built) == 2
    pool.close()
    pool.close()  # closing twice is harmless


def test_episode_record_dict():
    rec = EpisodeRecord(seed=3, success=True, steps=50, success_step=9, solved_steps=20)
    assert rec.to_dict() == {"seed": 3, "success": True, "steps": 50, "success_step": 9, "solved_steps": 20}


def test_write_video_default_rate_and_frame_size_not_a_multiple_of_16(tmp_path):
    import imageio.v2 as imageio

    frames = [np.full((34, 38, 3), 10 * i, np.uint8) for i in range(4)]
    path = tmp_path / "v.mp4"
    write_video(path, frames)
    reader = imageio.get_reader(str(path))
    try:
        assert reader.get_meta_data()["fps"] == pytest.approx(12.5)
        read = [f for f in reader]
    finally:
        reader.close()
    assert len(read) == 4 and read[0].shape == (34, 38, 3)  # not padded to a 16-pixel macro block


def test_write_video_of_an_odd_frame_size_repeats_the_last_row_and_column(tmp_path):
    """libx264's yuv420p needs even sizes; imageio wrote an empty file for odd ones without an error."""
    import imageio.v2 as imageio

    yy, xx = np.mgrid[0:33, 0:39]
    frames = [np.stack([6 * xx, 7 * yy, np.full_like(xx, 60 * i)], -1).astype(np.uint8) for i in range(3)]
    path = tmp_path / "odd.mp4"
    write_video(path, frames)
    reader = imageio.get_reader(str(path))
    try:
        read = [f for f in reader]
    finally:
        reader.close()
    assert len(read) == 3 and read[0].shape == (34, 40, 3)  # 33 x 39 -> one row and one column more
    err = np.abs(read[1].astype(int)[:33, :39] - frames[1].astype(int)).mean()
    assert err < 4, err  # the frame itself is kept (lossy h264)
    assert np.abs(read[1].astype(int)[33] - read[1].astype(int)[32]).mean() < 4  # the repeated edge row


def test_auto_num_envs_keeps_a_positive_count_and_uses_the_usable_cores_for_zero():
    import os

    assert evaluation.auto_num_envs(1) == 1 and evaluation.auto_num_envs(3) == 3
    cores = len(os.sched_getaffinity(0))
    assert evaluation.auto_num_envs(0) == cores and evaluation.auto_num_envs(-1) == cores
    assert EvalEnvs("kitchen/microwave", 0, None, 32, 5).num_envs == cores


@pytest.mark.parametrize("usable, expected", [({0}, 1), ({0, 1, 2}, 3), (set(), 1)])
def test_auto_num_envs_counts_the_cores_this_process_may_use(monkeypatch, usable, expected):
    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: usable if pid == 0 else {0, 1, 2, 3, 4, 5, 6, 7})
    assert evaluation.auto_num_envs(0) == expected


@pytest.mark.parametrize("count, expected", [(3, 3), (1, 1), (None, 1)])
def test_auto_num_envs_falls_back_to_the_cpu_count_without_affinity(monkeypatch, count, expected):
    import os

    monkeypatch.delattr(os, "sched_getaffinity")  # not on every platform
    monkeypatch.setattr(os, "cpu_count", lambda: count)
    assert evaluation.auto_num_envs(0) == expected


class BatchRecordingEncoder(StateObsEncoder):
    def __init__(self):
        super().__init__(2)
        self.batches = []

    def encode_history(self, history):
        self.batches.append(len(history))
        return super().encode_history(history)


@pytest.mark.parametrize("batch, calls", [(None, [5]), (0, [5]), (5, [5]), (9, [5]), (2, [2, 2, 1]), (4, [4, 1])])
def test_encode_in_batches_splits_the_environments_and_keeps_their_order(batch, calls):
    enc = BatchRecordingEncoder()
    history = np.arange(10, dtype=np.float32).reshape(5, 1, 2)  # env i: [2i, 2i + 1]
    out = evaluation.encode_in_batches(enc, history, batch)
    assert enc.batches == calls
    assert out.tolist() == history.reshape(5, 2).tolist()


def test_rollout_batches_and_timing():
    enc = BatchRecordingEncoder()
    vec = ScriptedVecEnv(SCRIPTS, num_envs=3)
    timing = {"env_steps": 4}  # accumulates into what is there
    records, _ = run_episodes(RecordingPolicy(), enc, FakePool(vec), [10, 11, 12], torch.device("cpu"),
                              encode_batch=2, timing=timing)
    assert [r.to_dict() for r in records] == EXPECTED
    assert enc.batches == [2, 1] * HORIZON
    assert set(timing) == {"env_s", "encode_s", "policy_s", "env_steps"}
    assert timing["env_steps"] == 4 + 3 * HORIZON  # every env of the round, every control step
    assert all(timing[k] > 0 for k in ("env_s", "encode_s", "policy_s"))


def test_evaluate_passes_batches_and_timing_through():
    enc = BatchRecordingEncoder()
    timing = {}
    res = evaluate(RecordingPolicy(), enc, FakePool(ScriptedVecEnv(SCRIPTS, num_envs=3)), 3, 10,
                   torch.device("cpu"), encode_batch=1, timing=timing)
    assert res["episodes"] == EXPECTED
    assert enc.batches == [1, 1, 1] * HORIZON
    assert timing["env_steps"] == 3 * HORIZON


class SlowResetVecEnv(ScriptedVecEnv):
    RESET_S = 0.2

    def reset(self, seed):
        time.sleep(self.RESET_S)
        return super().reset(seed)


def test_env_time_adds_up_every_reset_and_stays_within_the_wall_time():
    # two rounds (3 episodes on 2 envs), each reset sleeps 0.2 s: the environment time is at least
    # 0.4 s, and no part can exceed the wall time around the call (same clock, nested intervals)
    timing = {}
    t0 = time.perf_counter()
    run_episodes(RecordingPolicy(), StateObsEncoder(2), FakePool(SlowResetVecEnv(SCRIPTS, num_envs=2)),
                 [10, 11, 12], torch.device("cpu"), timing=timing)
    wall = time.perf_counter() - t0
    assert 2 * SlowResetVecEnv.RESET_S <= timing["env_s"] <= wall
    assert 0 < timing["encode_s"] + timing["policy_s"] + timing["env_s"] <= wall


def test_timing_is_recorded_even_when_a_rollout_fails():
    class Broken(ScriptedVecEnv):
        def step(self, actions):
            raise RuntimeError("env died")

    timing = {}
    with pytest.raises(RuntimeError, match="env died"):
        run_episodes(RecordingPolicy(), StateObsEncoder(2), FakePool(Broken({}, 1)), [0], torch.device("cpu"),
                     timing=timing)
    assert set(timing) == {"env_s", "encode_s", "policy_s", "env_steps"} and timing["env_steps"] == 0


def test_only_the_first_record_episodes_are_recorded_across_rounds():
    # 4 episodes on 2 envs, record 3: both of round one, the first of round two
    vec = ScriptedVecEnv({}, num_envs=2)
    _, videos = run_episodes(RecordingPolicy(), StateObsEncoder(2), FakePool(vec, camera="left"),
                             [0, 1, 2, 3], torch.device("cpu"), record=3)
    assert len(videos) == 3 and all(len(v) == HORIZON + 1 for v in videos)


class NoSuccessInfoVecEnv(ScriptedVecEnv):
    """Reports neither ``success`` nor ``solved_steps`` (or masks them out): nothing was solved."""

    def __init__(self, *args, masked: bool, **kwargs):
        super().__init__(*args, **kwargs)
        self.masked = masked

    def step(self, actions):
        obs, reward, term, trunc, info = super().step(actions)
        if self.masked:
            info["_success"] = np.zeros(self.num_envs, bool)
            info["_solved_steps"] = np.zeros(self.num_envs, bool)
        else:
            info = {}
        return obs, reward, term, trunc, info


@pytest.mark.parametrize("masked", [False, True])
def test_missing_or_masked_success_info_counts_as_not_solved(masked):
    vec = NoSuccessInfoVecEnv({10: Script(solved_from=1)}, num_envs=1, masked=masked)
    (ep,) = _evaluate(vec, 1, 10)["episodes"]
    assert (ep["success"], ep["success_step"], ep["solved_steps"]) == (False, None, 0)


class SlowEncoder(StateObsEncoder):
    def encode_history(self, history):
        time.sleep(0.01)
        return super().encode_history(history)


class SlowPolicy(RecordingPolicy):
    def act(self, features, proprio, state):
        time.sleep(0.01)
        return super().act(features, proprio, state)


def test_encoder_and_policy_time_add_up_over_every_step():
    # one round of 12 steps; each encoder call and each act sleeps 0.01 s
    timing = {}
    t0 = time.perf_counter()
    run_episodes(SlowPolicy(), SlowEncoder(2), FakePool(ScriptedVecEnv(SCRIPTS, num_envs=3)), [10, 11, 12],
                 torch.device("cpu"), timing=timing)
    wall = time.perf_counter() - t0
    assert HORIZON * 0.01 <= timing["encode_s"] <= wall
    assert HORIZON * 0.01 <= timing["policy_s"] <= wall


def test_evaluate_progress_bar_counts_control_steps(monkeypatch):
    import tqdm.auto

    made = []

    class Bar:
        def __init__(self, **kwargs):
            made.append(kwargs)
            self.n = 0

        def update(self, k):
            self.n += k

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            made[-1]["counted"] = self.n

    monkeypatch.setattr(tqdm.auto, "tqdm", Bar)
    _evaluate(ScriptedVecEnv(SCRIPTS, num_envs=3), 3, 10)
    (bar,) = made
    assert (bar["total"], bar["desc"], bar["unit"], bar["leave"], bar["mininterval"]) == (
        3 * HORIZON, "eval", "step", False, 2.0)
    assert bar["counted"] == 12 + 5 + 7


def test_torch_threads_sets_and_restores_the_thread_count():
    before = torch.get_num_threads()
    with evaluation.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with evaluation.torch_threads(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    for leave in (None, 0):
        with evaluation.torch_threads(leave):
            assert torch.get_num_threads() == before
