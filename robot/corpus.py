"""The egocentric kitchen corpus: what ``robot/make_corpus.py`` writes from expert episodes.

Pieces the writer combines (each usable alone):

* seeds: :func:`corpus_seeds` / :func:`check_corpus_seeds` -- corpus episodes come from a high
  seed range (task ``k`` of ``envs.experts.list_experts()`` uses ``first_seed + k * 10_000 + i``,
  ``first_seed = 1_000_000``) that must not meet any seed BC trains or evaluates on
  (:func:`reserved_seed_ranges`);
* :class:`HandObjectProjector` -- per-frame hand-object "detections" projected from the
  simulator in the 100DOH layout the ``precomputed`` HOD detector reads (rows
  ``[x1, y1, x2, y2, score, state, mag, dx, dy, side]``, pixels of the written frame);
* :func:`episode_signals` / :func:`episode_clips` -- contact and task progress per frame, and
  from them a few 1-2 s clips per episode (reach, contact, action) with Ego4D-style coarse
  narrations (``#C C opens the microwave``);
* :func:`write_detections` / :func:`write_video` -- the ``.npz`` detection file and the chunked
  video ``{root}/{video_id}/{chunk:04d}.mp4`` of one (episode, camera).

The gripper is the right hand (``side = 1``): its box is the projection of the corners of the
local bounding boxes of the visible (render groups 0-2) geoms of ``panda0_link7`` (which holds
the hand) and of both fingers. The object is the moving part of the task: every visible geom of
the body that carries the task's first joint and of that body's descendants (the microwave door
with its handle, the sliding or hinged door, the switch, the knob, the kettle). Contact state:
any MuJoCo contact between a gripper geom and an object geom -> ``P`` (portable, state 3) for a
free-jointed object (the kettle), ``F`` (stationary, state 4) otherwise; no contact -> ``N`` (0).
Gaps of up to ``CONTACT_GAP_FRAMES`` (2) frames between two frames in contact count as contact
(the finger pads' contacts flicker for single steps while they hold a handle).
The hand->object offset points from the hand box centre to the object box centre (100DOH:
``hand_centre + mag * 10000 * (dx, dy)``); it is zero when the object is out of view. Boxes are
clipped to the image; a part whose clipped box is thinner than a pixel is absent. Occlusion is
not modelled: a hand behind a door still has its box.
"""
from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

# ------------------------------------------------------------------------------ seeds
CORPUS_FIRST_SEED = 1_000_000
TASK_SEED_STRIDE = 10_000          # seeds per task; a task never tries more episodes than this
MAX_EVAL_EPISODES = 100_000        # evaluation seeds reserved above robot.config.EvalConfig.seed
SEED_LIMIT = 2 ** 31               # the evaluation padding range ends here


def reserved_seed_ranges() -> dict[str, tuple[int, int]]:
    """Half-open seed ranges BC and the expert checks use; corpus seeds must avoid all of them.

    - ``demos``: ``[0, eval seed)`` -- generated demos start at ``robot.config.DemosConfig.seed``
      (0) and try ``4 * num + 20`` seeds; ``python -m envs.experts.evaluate`` uses 0-199;
    - ``evaluation``: ``[EvalConfig.seed, EvalConfig.seed + 100_000)`` -- episode ``i`` of every
      BC evaluation uses ``EvalConfig.seed + i`` (100000 + i);
    - ``evaluation_padding``: seeds of the idle environments of a last evaluation round
      (``robot.evaluation.PAD_SEED_OFFSET`` above the last evaluated seed).
    """
    from robot.config import DemosConfig, EvalConfig
    from robot.evaluation import PAD_SEED_OFFSET

    demo0, eval0 = int(DemosConfig().seed), int(EvalConfig().seed)
    return {
        "demos": (min(0, demo0), eval0),
        "evaluation": (eval0, eval0 + MAX_EVAL_EPISODES),
        "evaluation_padding": (eval0 + PAD_SEED_OFFSET, SEED_LIMIT),
    }


def task_seed_base(task: str, first_seed: int = CORPUS_FIRST_SEED) -> int:
    """First corpus seed of ``task``: ``first_seed + k * TASK_SEED_STRIDE``, ``k`` its index in
    ``envs.experts.list_experts()`` (so a task's seeds do not depend on which tasks are written)."""
    from envs.experts import list_experts

    experts = list_experts()
    if task not in experts:
        raise ValueError(f"unknown task {task!r}; tasks with a scripted expert: {', '.join(experts)}")
    return int(first_seed) + experts.index(task) * TASK_SEED_STRIDE


def corpus_seeds(task: str, attempts: int, first_seed: int = CORPUS_FIRST_SEED) -> range:
    """The seeds the corpus may try for ``task`` (at most ``attempts`` of them)."""
    base = task_seed_base(task, first_seed)
    return range(base, base + int(attempts))


def check_corpus_seeds(tasks: Sequence[str], attempts: int, first_seed: int = CORPUS_FIRST_SEED) -> None:
    """Raise a ValueError when the corpus seeds of ``tasks`` could meet a reserved seed range."""
    if attempts > TASK_SEED_STRIDE:
        raise ValueError(f"max_attempts={attempts} exceeds the {TASK_SEED_STRIDE} seeds each task owns; "
                         "lower episodes or max_attempts")
    reserved = reserved_seed_ranges()
    for task in tasks:
        seeds = corpus_seeds(task, attempts, first_seed)
        for name, (lo, hi) in reserved.items():
            if seeds.start < hi and lo < seeds.stop:
                raise ValueError(
                    f"corpus seeds {seeds.start}..{seeds.stop - 1} of task {task!r} overlap the {name} seeds "
                    f"[{lo}, {hi}) that BC uses (robot/make_corpus.py first_seed={first_seed}); choose "
                    f"first_seed between {reserved['evaluation'][1]} and "
                    f"{reserved['evaluation_padding'][0] - 8 * TASK_SEED_STRIDE} (default {CORPUS_FIRST_SEED})")


# ------------------------------------------------------------------------------ projection
GRIPPER_BODIES = ("panda0_link7", "panda0_leftfinger", "panda0_rightfinger")
VISIBLE_GROUPS = 3   # MuJoCo draws geom groups 0, 1 and 2 by default
STATE_N, STATE_P, STATE_F = 0, 3, 4
CONTACT_GAP_FRAMES = 2
RIGHT = 1
SCORE = 1.0          # projected from the simulator: certain
_CORNERS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], dtype=np.float64)


def _body_id(model, name: str) -> int:
    import mujoco

    bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
    if bid < 0:
        raise KeyError(f"no body named {name!r} in the kitchen model")
    return int(bid)


def _subtree(model, root: int) -> set[int]:
    bodies = {root}
    for b in range(root + 1, model.nbody):  # MuJoCo numbers children after their parents
        if int(model.body_parentid[b]) in bodies:
            bodies.add(b)
    return bodies


def _geoms_of(model, bodies: set[int], visible: bool) -> np.ndarray:
    keep = [g for g in range(model.ngeom) if int(model.geom_bodyid[g]) in bodies
            and (not visible or (model.geom_group[g] < VISIBLE_GROUPS and model.geom_rgba[g, 3] > 0))]
    return np.array(keep, dtype=np.int64)


@dataclass
class FrameAnnotation:
    """Hand and object rows of one frame from one camera (0 or 1 row each)."""

    hand: np.ndarray   # [0 or 1, 10]
    obj: np.ndarray    # [0 or 1, 10]


class HandObjectProjector:
    """Projects the gripper and the task's moving part of a kitchen env into its cameras.

    ``env`` is an ``envs.make("kitchen/<task>")`` environment (its simulator state is read, never
    changed); ``image_size`` / ``render_size`` are those of the frames the boxes belong to.
    """

    def __init__(self, env, image_size: int, render_size: int):
        u = env.unwrapped
        self.model, self.data, self.task = u.model, u.data, u.task
        m = self.model
        gripper = {_body_id(m, b) for b in GRIPPER_BODIES}
        joint = m.joint(self.task.joints[0])
        obj_root = int(m.jnt_bodyid[joint.id])
        self.portable = int(m.jnt_type[joint.id]) == 0  # a free joint: the object can be carried
        obj = _subtree(m, obj_root)
        self.gripper_geoms = _geoms_of(m, gripper, visible=True)
        self.object_geoms = _geoms_of(m, obj, visible=True)
        if not len(self.gripper_geoms) or not len(self.object_geoms):
            raise ValueError(f"task {self.task.name}: no visible gripper or object geoms to project")
        self._gripper_all = np.zeros(m.ngeom, dtype=bool)
        self._gripper_all[_geoms_of(m, gripper, visible=False)] = True
        self._object_all = np.zeros(m.ngeom, dtype=bool)
        self._object_all[_geoms_of(m, obj, visible=False)] = True
        self.image_size, self.render_size = int(image_size), int(render_size)
        self.fovy = float(m.vis.global_.fovy)

    # -- geometry ------------------------------------------------------------------------
    def corners(self, geoms: np.ndarray) -> np.ndarray:
        """World positions ``[8 * G, 3]`` of the corners of the geoms' local bounding boxes."""
        aabb = self.model.geom_aabb[geoms]                       # [G, 6]: centre (3), half sizes (3)
        local = aabb[:, None, :3] + _CORNERS[None] * aabb[:, None, 3:]
        rot = self.data.geom_xmat[geoms].reshape(-1, 3, 3)
        world = np.einsum("gij,gkj->gki", rot, local) + self.data.geom_xpos[geoms][:, None]
        return world.reshape(-1, 3)

    def box(self, points: np.ndarray, camera: str) -> np.ndarray | None:
        """The clipped pixel box ``[x1, y1, x2, y2]`` of world ``points`` seen from ``camera``,
        or None when nothing of it is in view."""
        from envs.cameras import get_camera, project_points

        uv, depth = project_points(points, get_camera(camera), self.fovy, self.render_size, self.image_size)
        uv = uv[depth > 1e-3]
        if not len(uv):
            return None
        s = float(self.image_size)
        x1, y1 = np.clip(uv.min(0), 0.0, s)
        x2, y2 = np.clip(uv.max(0), 0.0, s)
        if x2 - x1 < 1.0 or y2 - y1 < 1.0:
            return None
        return np.array([x1, y1, x2, y2])

    def in_contact(self) -> bool:
        """Whether a gripper geom touches a geom of the task's moving part (current contacts)."""
        n = int(self.data.ncon)
        if not n:
            return False
        g1, g2 = self.data.contact.geom1[:n], self.data.contact.geom2[:n]
        return bool(np.any((self._gripper_all[g1] & self._object_all[g2])
                           | (self._gripper_all[g2] & self._object_all[g1])))

    def annotate(self, cameras: Sequence[str], contact: bool) -> dict[str, FrameAnnotation]:
        """Rows of the current simulator state for each camera."""
        from egohod.hod.types import offset_from_vector

        hand_pts, obj_pts = self.corners(self.gripper_geoms), self.corners(self.object_geoms)
        state = (STATE_P if self.portable else STATE_F) if contact else STATE_N
        out = {}
        for cam in cameras:
            hb, ob = self.box(hand_pts, cam), self.box(obj_pts, cam)
            hand = np.zeros((0, 10))
            obj = np.zeros((0, 10))
            if ob is not None:
                obj = np.array([[*ob, SCORE, 0, 0, 0, 0, 0]], dtype=np.float64)
            if hb is not None:
                mag, dx, dy = (0.0, 0.0, 0.0) if ob is None else offset_from_vector(
                    *((ob[:2] + ob[2:]) / 2 - (hb[:2] + hb[2:]) / 2))
                hand = np.array([[*hb, SCORE, state, mag, dx, dy, RIGHT]], dtype=np.float64)
            out[cam] = FrameAnnotation(hand, obj)
        return out


# ------------------------------------------------------------------------------ per episode
@dataclass
class EpisodeSignals:
    """Per-frame simulator facts of one recorded episode (frame ``t`` = ``episode.states[t]``)."""

    contact: np.ndarray        # [T] bool: gripper touches the task's part
    progress: np.ndarray       # [T] 1 - distance to goal / distance at the start (1 = at the goal)
    solved: np.ndarray         # [T] bool: task within its threshold
    annotations: list          # [T] of {camera: FrameAnnotation}


def replay_annotations(env, episode, cameras: Sequence[str], image_size: int, render_size: int) -> EpisodeSignals:
    """Replay the states of a recorded ``episode`` in ``env`` (a camera-less env of the same task
    and randomisation) and collect contacts, task progress and per-camera boxes per frame.

    ``env.reset(seed=episode.seed)`` restores the episode's kitchen offset (part of the model,
    not of the state); the reset state must equal the episode's first state (checked).
    """
    u = env.unwrapped
    env.reset(seed=int(episode.seed))
    states = np.asarray(episode.states)
    if not np.allclose(u.get_sim_state(), states[0], atol=1e-9):
        raise RuntimeError(f"seed {episode.seed}: the replay env does not reset to the recorded first state "
                           "(different randomisation settings?)")
    proj = HandObjectProjector(env, image_size, render_size)
    contact, dist, ann = [], [], []
    for s in states:
        u.set_sim_state(s)  # mj_forward: positions and contacts of this frame
        contact.append(proj.in_contact())
        dist.append(u.task_distance())
        ann.append(proj.annotate(cameras, False))
    contact = fill_gaps(np.asarray(contact), CONTACT_GAP_FRAMES)
    state = STATE_P if proj.portable else STATE_F
    for c, frame in zip(contact, ann):
        for a in frame.values():
            a.hand[:, 5] = state if c else STATE_N
    dist = np.asarray(dist)
    progress = 1.0 - dist / max(float(dist[0]), 1e-9)
    return EpisodeSignals(contact, progress, dist < u.task.threshold, ann)


def fill_gaps(flags: np.ndarray, max_gap: int) -> np.ndarray:
    """``flags`` with runs of at most ``max_gap`` False values between two True values set True."""
    out = np.asarray(flags, dtype=bool).copy()
    on = np.flatnonzero(out)
    for a, b in zip(on[:-1], on[1:]):
        if 1 < b - a <= max_gap + 1:
            out[a:b] = True
    return out


# Ego4D-style coarse narrations per task: (reach, contact, action).
NARRATIONS: dict[str, tuple[str, str, str]] = {
    "microwave": ("#C C reaches for the microwave", "#C C touches the microwave door",
                  "#C C opens the microwave"),
    "slide_cabinet": ("#C C reaches for the cabinet", "#C C touches the cabinet door",
                      "#C C slides the cabinet door open"),
    "hinge_cabinet": ("#C C reaches for the cabinet", "#C C touches the cabinet door",
                      "#C C opens the cabinet door"),
    "light_switch": ("#C C reaches for the light switch", "#C C touches the light switch",
                     "#C C turns on the light"),
    "knob": ("#C C reaches for the stove knob", "#C C touches the stove knob",
             "#C C turns on the right burner"),
    "kettle": ("#C C reaches for the kettle", "#C C holds the kettle",
               "#C C moves the kettle to the stove"),
    "top_burner": ("#C C reaches for the stove knob", "#C C touches the stove knob",
                   "#C C turns on the left burner"),
    "bottom_burner": ("#C C reaches for the stove knob", "#C C touches the stove knob",
                      "#C C turns on the left burner"),
}
PHASES = ("reach", "contact", "action")
MOVE_ONSET = 0.1     # the part has moved when progress reaches 10 % of the way to the goal


@dataclass(frozen=True)
class ClipSpec:
    phase: str
    start: float       # seconds
    end: float
    text: str


def episode_clips(task: str, signals: EpisodeSignals, fps: float) -> list[ClipSpec]:
    """A few 1-2 s clips of one episode from its signals, each with its coarse narration.

    ``engage`` = the first frame of contact (or, without contact, the first frame the part has
    moved ``MOVE_ONSET`` of the way): ``reach`` covers up to 2 s before it (when at least 0.5 s
    long), ``contact`` 0.5 s before to 1 s after it (only when there was contact), ``action``
    from it to 0.5 s after the task is first solved, at least 1 s and at most 2 s.
    """
    if task not in NARRATIONS:
        raise KeyError(f"no narrations for task {task!r}; known: {', '.join(NARRATIONS)}")
    reach_text, contact_text, action_text = NARRATIONS[task]
    n = len(signals.progress)
    end = n / fps
    touched = np.flatnonzero(signals.contact)
    moved = np.flatnonzero(signals.progress >= MOVE_ONSET)
    if not len(touched) and not len(moved):
        return []
    engage = min(int(touched[0]) if len(touched) else n, int(moved[0]) if len(moved) else n) / fps
    solved = np.flatnonzero(signals.solved)
    done = (int(solved[0]) / fps) if len(solved) else end
    clips = []
    if engage >= 0.5:
        clips.append(ClipSpec("reach", max(0.0, engage - 2.0), engage, reach_text))
    if len(touched):
        t = int(touched[0]) / fps
        clips.append(ClipSpec("contact", max(0.0, t - 0.5), min(end, t + 1.0), contact_text))
    a_end = min(end, engage + min(2.0, max(1.0, done + 0.5 - engage)))
    if a_end - engage >= 0.5:
        clips.append(ClipSpec("action", engage, a_end, action_text))
    return [ClipSpec(c.phase, round(c.start, 3), round(c.end, 3), c.text) for c in clips]


# ------------------------------------------------------------------------------ files
def write_detections(path: str | Path, annotations: Sequence[FrameAnnotation], width: int, height: int,
                     fps: float) -> Path:
    """The 100DOH ``.npz`` of one video: ``width``, ``height``, ``fps`` and, for every frame ``n``,
    ``frame_<n>_hand`` / ``frame_<n>_obj`` ``[K, 10]`` (0 rows: nothing in view). Atomic."""
    from egohod.fileio import atomic_write_bytes

    arrays = {"width": np.float64(width), "height": np.float64(height), "fps": np.float64(fps)}
    for n, a in enumerate(annotations):
        arrays[f"frame_{n}_hand"] = a.hand.astype(np.float32)
        arrays[f"frame_{n}_obj"] = a.obj.astype(np.float32)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def write_video(root: str | Path, video_id: str, frames: np.ndarray, fps: float, chunk_seconds: float) -> list[Path]:
    """Write ``frames [T, H, W, 3]`` as ``{root}/{video_id}/{chunk:04d}.mp4`` chunks of
    ``chunk_seconds`` (libx264 in the training layout :data:`egohod.data.prepare.TRAIN_LAYOUT`)."""
    from egohod.data.prepare import TRAIN_LAYOUT
    from egohod.data.video import VideoWriter, chunk_path

    per_chunk = chunk_seconds * fps
    if len(frames) > per_chunk and abs(per_chunk - round(per_chunk)) > 1e-6:
        raise ValueError(f"chunk_seconds * fps = {chunk_seconds} * {fps} is not a whole number of frames and "
                         f"the video ({len(frames)} frames) needs several chunks; change chunk_seconds")
    per_chunk = max(1, int(math.floor(per_chunk + 1e-6)))
    _, h, w, _ = frames.shape
    paths = []
    for c in range(0, (len(frames) + per_chunk - 1) // per_chunk):
        path = chunk_path(root, video_id, c)
        with VideoWriter(path, fps, h, w, gop_size=TRAIN_LAYOUT.gop, crf=TRAIN_LAYOUT.crf,
                         tune=TRAIN_LAYOUT.tune or None, bframes=TRAIN_LAYOUT.bframes,
                         b_pyramid=TRAIN_LAYOUT.b_pyramid) as wr:
            wr.write(frames[c * per_chunk:(c + 1) * per_chunk])
        paths.append(path)
    return paths


def video_id(task: str, seed: int, camera: str) -> str:
    return f"{task}_s{int(seed)}_{camera}"
