"""robot/make_corpus.py: the kitchen corpus layout, its HOD CSV and narrations, detections in the
precomputed (100DOH .npz) format read by the precomputed detector, projections that contain the
end effector, resume / refusal of other settings, and seeds disjoint from BC's."""
import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from robot.corpus import (CORPUS_FIRST_SEED, NARRATIONS, STATE_F, STATE_N, STATE_P, check_corpus_seeds,
                          corpus_seeds, fill_gaps, reserved_seed_ranges)
from robot.corpus_gen import MakeCorpusConfig, make_corpus

TASKS = ["light_switch", "kettle"]  # a stationary part (F) and a portable one (P)
CAMERAS = ["ego", "left"]
SIZE = 32


def _cfg(out, **kw):
    cfg = OmegaConf.structured(MakeCorpusConfig)
    cfg.merge_with({"out": str(out), "episodes": 1, "tasks": TASKS, "cameras": CAMERAS, "image_size": SIZE,
                    "progress": False, **kw})
    return cfg


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    manifest = make_corpus(_cfg(out))
    return out, manifest


def _records(out):
    return [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]


@pytest.mark.render
def test_layout_and_manifest(corpus):
    from egohod.data.video import probe_video, read_chunked_clip

    out, manifest = corpus
    kept = {r["task"]: r for r in _records(out) if r["success"]}
    assert sorted(kept) == sorted(TASKS)
    vids = sorted(p.name for p in (out / "videos").iterdir())
    assert vids == sorted(f"{t}_s{kept[t]['seed']}_{c}" for t in TASKS for c in CAMERAS)
    for vid in vids:
        chunk = out / "videos" / vid / "0000.mp4"
        info = probe_video(chunk)
        assert (info.num_frames, info.width, info.height) == (50, SIZE, SIZE)
        assert info.fps == pytest.approx(12.5)
        frames = read_chunked_clip(out / "videos", vid, 0.0, 4.0, 4)
        assert frames.shape == (4, SIZE, SIZE, 3) and frames.std() > 5
        assert (out / "detections" / f"{vid}.npz").is_file()
    assert manifest["fps"] == pytest.approx(12.5) and manifest["image_size"] == SIZE
    assert manifest["episodes"] == 2 and manifest["videos"] == 4 and list(manifest["cameras"]) == CAMERAS
    assert manifest["tasks"] == TASKS and set(manifest["expert_success"]) == set(TASKS)
    for t in TASKS:
        assert manifest["seeds"][t]["kept"] == [kept[t]["seed"]]
        assert kept[t]["seed"] in corpus_seeds(t, 100)
    assert json.loads((out / "manifest.json").read_text()) == manifest


@pytest.mark.render
def test_clips_csv_is_a_hod_csv_with_ego4d_narrations(corpus):
    from egohod.data.metadata import read_hod_csv
    from egohod.hod.clips import load_clips

    out, _ = corpus
    recs = read_hod_csv(out / "clips.csv")
    assert len(load_clips(str(out / "clips.csv"))) == len(recs)
    by_video: dict = {}
    for r in recs:
        by_video.setdefault(r.video_id, []).append(r)
        assert r.texts[0].startswith("#C C ") and len(r.texts) == 1
        assert 0.5 <= r.duration <= 2.0 + 1e-6 and r.end <= 4.0 + 1e-6
        assert r.dataset == "kitchen_sim" and r.uid.startswith(r.video_id)
    assert len(by_video) == 4
    for vid, rows in by_video.items():
        task = vid.split("_s1")[0]
        texts = [r.texts[0] for r in rows]
        assert NARRATIONS[task][2] in texts  # the action clip: "#C C turns on the light", ...
        assert 2 <= len(rows) <= 3
        assert rows[-1].start >= rows[0].start


@pytest.mark.render
def test_detections_in_precomputed_format_and_readable_by_the_detector(corpus):
    from egohod.hod.detectors.base import ClipFrames
    from egohod.hod.detectors.precomputed import Options, PrecomputedDetector

    out, _ = corpus
    det = PrecomputedDetector(Options(root=str(out / "detections"), format="100doh"))
    for t, state in (("light_switch", STATE_F), ("kettle", STATE_P)):
        rec = next(r for r in _records(out) if r["task"] == t and r["success"])
        vid = rec["videos"][0]  # ego
        with np.load(out / "detections" / f"{vid}.npz") as z:
            assert float(z["width"]) == SIZE and float(z["height"]) == SIZE and float(z["fps"]) == 12.5
            hands = [z[f"frame_{n}_hand"] for n in range(50)]
            objs = [z[f"frame_{n}_obj"] for n in range(50)]
        assert all(h.shape[1:] == (10,) and len(h) <= 1 for h in hands + objs)
        rows = np.concatenate([h for h in hands if len(h)])
        assert len(rows) >= 40  # the hand is in view of the ego camera most of the episode
        assert (rows[:, 0] >= 0).all() and (rows[:, 2] <= SIZE).all() and (rows[:, 0] < rows[:, 2]).all()
        assert set(rows[:, 9]) == {1.0}  # right hand
        assert set(rows[:, 5]) == {STATE_N, state}  # no contact, then contact with the task's part
        assert rec["contact_frames"] == int((rows[:, 5] == state).sum())
        # the offset points at the object centre (100DOH: hand centre + mag * 10000 * (dx, dy))
        n = next(i for i in range(50) if len(hands[i]) and len(objs[i]))
        h, o = hands[n][0], objs[n][0]
        target = (h[:2] + h[2:4]) / 2 + h[6] * 10000 * h[7:9]
        np.testing.assert_allclose(target, (o[:2] + o[2:4]) / 2, atol=1e-3)
        frames = det.detect(ClipFrames(vid, np.arange(0, 4.0, 0.5), None))
        assert len(frames) == 8 and all(f.width == SIZE for f in frames)
        assert frames[0].hands[0].side == "right" and frames[0].hands[0].state == "N"
        assert frames[-2].hands[0].state in ("F", "P") or frames[-1].objects


@pytest.mark.render
def test_gripper_box_contains_the_projected_end_effector(corpus):
    import envs
    from envs.cameras import get_camera, project_points
    from envs.experts import make_expert
    from robot.corpus import HandObjectProjector
    from robot.demo_gen import record_episode

    out, _ = corpus
    rec = next(r for r in _records(out) if r["task"] == "kettle" and r["success"])
    env = envs.make("kitchen/kettle", camera=None, image_size=SIZE)
    try:
        u = env.unwrapped
        # the corpus episode again, state only (simulation and expert are deterministic per seed)
        ep, ok = record_episode(env, make_expert("kettle"), rec["seed"], [], 50, 0.1)
        assert ok
        proj = HandObjectProjector(env, SIZE, u.render_size)
        checked = 0
        for n in range(0, 50, 3):
            u.set_sim_state(ep.states[n])
            for cam, vid in zip(CAMERAS, rec["videos"]):
                hand = proj.annotate([cam], False)[cam].hand
                with np.load(out / "detections" / f"{vid}.npz") as z:
                    np.testing.assert_allclose(z[f"frame_{n}_hand"][:, :4], hand[:, :4], atol=1e-3)
                uv, depth = project_points(u.sim.end_effector_pos()[None], get_camera(cam), proj.fovy,
                                           u.render_size, SIZE)
                if not (0 <= uv[0, 0] < SIZE and 0 <= uv[0, 1] < SIZE and depth[0] > 0):
                    continue
                assert len(hand) == 1
                x1, y1, x2, y2 = hand[0, :4]
                assert x1 <= uv[0, 0] <= x2 and y1 <= uv[0, 1] <= y2
                checked += 1
        assert checked >= 17  # the end effector is in view of the ego camera the whole episode
    finally:
        env.close()


@pytest.mark.render
def test_rerun_resumes_and_other_settings_are_refused(corpus):
    out, manifest = corpus
    before = (out / "episodes.jsonl").read_text()
    again = make_corpus(_cfg(out))
    assert (out / "episodes.jsonl").read_text() == before  # nothing re-rendered
    assert again["seeds"] == manifest["seeds"] and again["clips"] == manifest["clips"]
    with pytest.raises(ValueError, match="other settings.*image_size"):
        make_corpus(_cfg(out, image_size=48))


def test_corpus_seeds_are_disjoint_from_bc_seeds():
    from robot.config import DemosConfig, EvalConfig
    from robot.evaluation import PAD_SEED_OFFSET
    from envs.experts import list_experts

    tasks = list_experts()
    check_corpus_seeds(tasks, 4 * 1000 + 20)  # the default first seed passes for 1000 episodes per task
    used = set()
    for t in tasks:
        seeds = set(corpus_seeds(t, 4020))
        assert not used & seeds  # tasks do not share seeds
        used |= seeds
    ev = EvalConfig()
    bc = set(range(DemosConfig().seed, DemosConfig().seed + 4 * 100 + 20))  # demos of up to 100 per file
    bc |= set(range(ev.seed, ev.seed + 1000))                                # 1000 evaluation episodes
    bc |= set(range(ev.seed + PAD_SEED_OFFSET, ev.seed + PAD_SEED_OFFSET + 1100))  # padding envs
    bc |= set(range(200))                                                    # envs.experts.evaluate
    assert not used & bc and min(used) == CORPUS_FIRST_SEED
    ranges = reserved_seed_ranges()
    assert ranges["evaluation"][0] == ev.seed
    with pytest.raises(ValueError, match="overlap the evaluation seeds"):
        check_corpus_seeds(["microwave"], 100, first_seed=ev.seed)
    with pytest.raises(ValueError, match="overlap the demos seeds"):
        check_corpus_seeds(["microwave"], 100, first_seed=0)


def test_bad_requests_name_the_option(tmp_path):
    with pytest.raises(ValueError, match="tasks: unknown task 'toaster'"):
        make_corpus(_cfg(tmp_path / "a", tasks=["toaster"]))
    with pytest.raises(ValueError, match="model camera"):
        make_corpus(_cfg(tmp_path / "b", cameras=["left_cap"]))
    with pytest.raises(ValueError, match="image_size must be an even"):
        make_corpus(_cfg(tmp_path / "c", image_size=33))
    assert not (tmp_path / "a").exists()


def test_fill_gaps_and_ego_camera_registration():
    import envs
    from envs.cameras import get_camera

    got = fill_gaps(np.array([0, 1, 0, 0, 1, 0, 0, 0, 1, 0], bool), 2)
    assert got.astype(int).tolist() == [0, 1, 1, 1, 1, 0, 0, 0, 1, 0]
    assert envs.list_cameras() == ["default", "left", "right"]  # BC's protocol cameras unchanged
    assert envs.list_cameras(extra=True) == ["default", "left", "right", "ego"]
    assert get_camera("ego").is_free
