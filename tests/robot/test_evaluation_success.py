"""Success counting through the real BC evaluation path (``robot.evaluation.evaluate``, what
train_bc and eval_bc score policies with), on rollouts whose outcome is known.

The successful rollout replays a scripted expert's actions: the expert is rolled out first in a
plain state-only env from the same seed (same initial state), its actions recorded, then a
policy that plays those actions back is scored by ``evaluate`` in the vectorised eval envs. The
failing rollout sends zero actions from the same seed (the microwave stays closed). The success
step and solved-step count of the replay must equal those of the direct expert rollout.
"""
import numpy as np
import pytest
import torch

from policies.base import Policy
from robot.evaluation import EvalEnvs, evaluate
from robot.obs_encoders import StateObsEncoder

TASK = "microwave"
CANDIDATE_SEEDS = range(5)  # the first one the expert solves is used (it solves ~96% of seeds)
HORIZON = 50      # the protocol's evaluation horizon


class ReplayPolicy(Policy):
    """Plays back fixed action sequences: episode ``k`` of the evaluation (in seed order) gets
    ``plans[k]`` (``None``: zero actions). Ignores its inputs."""

    policy_name = "replay"

    def __init__(self, plans):
        super().__init__(30, 9, 9, Policy.Options())
        self.plans = list(plans)
        self.rounds = 0

    def initial_state(self, num_envs):
        first = self.rounds * num_envs
        self.rounds += 1
        return {"episodes": list(range(first, first + num_envs)), "t": 0}

    @torch.no_grad()
    def act(self, features, proprio, state=None):
        acts = np.zeros((len(state["episodes"]), 9), np.float32)
        for i, k in enumerate(state["episodes"]):
            plan = self.plans[k] if k < len(self.plans) else None
            if plan is not None and state["t"] < len(plan):
                acts[i] = plan[state["t"]]
        return torch.from_numpy(acts), {"episodes": state["episodes"], "t": state["t"] + 1}


def _expert_rollout(env, expert, seed):
    env.reset(seed=seed)
    expert.reset(env)
    actions, success_step, info = [], None, {}
    for t in range(HORIZON):
        a = np.asarray(expert.act(env), np.float32)
        actions.append(a)
        _, _, term, trunc, info = env.step(a)
        if info["success"] and success_step is None:
            success_step = t + 1
        if term or trunc:
            break
    return {"seed": seed, "actions": np.stack(actions), "success": bool(info["success"]),
            "success_step": success_step, "solved_steps": int(info["solved_steps"])}


@pytest.fixture(scope="module")
def expert_episode():
    """The expert's actions on the first candidate seed it solves, and when the env reported
    success (state only, no rendering)."""
    import envs
    from envs.experts import make_expert

    env = envs.make(f"kitchen/{TASK}", camera=None, horizon=HORIZON)
    expert = make_expert(TASK)
    try:
        for seed in CANDIDATE_SEEDS:
            episode = _expert_rollout(env, expert, seed)
            if episode["success"]:
                return episode
    finally:
        env.close()
    pytest.fail(f"the {TASK} expert solved none of the seeds {list(CANDIDATE_SEEDS)}")


@pytest.fixture(scope="module")
def pool():
    p = EvalEnvs(f"kitchen/{TASK}", num_envs=1, camera=None, image_size=32, horizon=HORIZON)
    yield p
    p.close()


def _evaluate(plans, pool, episodes, seed0):
    return evaluate(ReplayPolicy(plans), StateObsEncoder(30), pool, episodes, seed0, torch.device("cpu"))


def test_replayed_expert_episode_counts_as_a_success(expert_episode, pool):
    res = _evaluate([expert_episode["actions"]], pool, 1, expert_episode["seed"])
    assert res["success_rate"] == 1.0
    (ep,) = res["episodes"]
    assert ep["seed"] == expert_episode["seed"] and ep["success"] is True and ep["steps"] == HORIZON
    # the same initial state and actions: the same solved steps, success at the same step
    assert ep["solved_steps"] == expert_episode["solved_steps"] > 5
    assert ep["success_step"] == expert_episode["success_step"]


def test_zero_actions_from_the_same_seed_count_as_a_failure(expert_episode, pool):
    res = _evaluate([None], pool, 1, expert_episode["seed"])
    assert res["success_rate"] == 0.0
    (ep,) = res["episodes"]
    assert ep["seed"] == expert_episode["seed"] and ep["success"] is False and ep["success_step"] is None
    assert ep["solved_steps"] == 0 and ep["steps"] == HORIZON


def test_success_rate_is_the_fraction_of_successful_episodes(expert_episode, pool):
    """Two episodes (seeds s, s + 1): the expert replay, then zero actions."""
    seed = expert_episode["seed"]
    res = _evaluate([expert_episode["actions"], None], pool, 2, seed)
    assert [ep["seed"] for ep in res["episodes"]] == [seed, seed + 1]
    assert [ep["success"] for ep in res["episodes"]] == [True, False]
    assert res["success_rate"] == 0.5
