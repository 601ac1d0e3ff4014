"""What turns robot observations into the frozen features a policy head sees.

Two kinds, one interface (:class:`ObsEncoder`), registered in :data:`OBS_ENCODERS` (the one
:class:`egohod.registry.Registry`) under ``vision`` and ``state``; :func:`obs_encoder_class`
says which kind an ``encoder.name`` is (``state`` is its own name, every ``egohod`` encoder name
is ``vision``), and the class says what it reads (``needs_rgb``):

* :class:`VisionObsEncoder` wraps any ``egohod.load_encoder`` encoder (EgoVideo variants and the
  baselines r3m/clip/mvp/vc1/dinov2) and reads the demo/env RGB of one camera;
* :class:`StateObsEncoder` (name ``state``) uses no pixels: its features are the task's part of
  the env's ``object_state`` (task joint, end-effector, task site and their difference; see
  ``envs.kitchen_env``; ``encoder.object_state=all`` keeps every object joint). The policy
  concatenates proprioception to every encoder's features, so ``state`` sees object state +
  proprio: the classic privileged upper bound. It lives here, not in the ``egohod`` encoder
  registry, because it reads simulator observations, not frames.

Frame history (``frames``): with ``frames == 1`` the current frame is repeated to the
encoder's native clip length (``input_spec.num_frames``); with ``frames == k > 1`` the encoder
is loaded for ``k`` frames and sees the last ``k`` frames, the first frame of the episode
repeated where the history is shorter. Training features (from demos) and evaluation features
(from envs) go through the same :func:`history_index` / encoder call, so they match.
Comparability: ``frames == 1`` is the single-frame input of the classic protocol (R3M, MVP,
VC-1 see one image), at the cost of a full clip per step for a video encoder; ``frames == k``
gives temporal features that compare only with runs of the same ``k``. ``eval.precision=bf16``
(feature cache and rollouts alike, its own cache key) changes features slightly.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from egohod.registry import Registry

STATE_ENCODER = "state"
VISION_ENCODERS = "vision"

# kind -> ObsEncoder class; each class builds itself from the config with ``from_config``
OBS_ENCODERS = Registry("observation encoder")


def history_index(length: int, frames: int) -> np.ndarray:
    """``[length, frames]`` indices of the last ``frames`` steps for every step of an episode
    (clamped at 0: the first frame repeated before the episode start)."""
    t = np.arange(length)[:, None] - np.arange(frames - 1, -1, -1)[None, :]
    return np.clip(t, 0, None)


@dataclass
class EncoderInfo:
    """Identity of an encoder: stored in results, checkpoints and the feature-cache key."""

    name: str
    weights: str          # "random:seed=N" (seeded random weights), sha256 of the weights file, or "none" (state)
    checkpoint: str | None
    frames: int
    clip_len: int         # frames per encoder call
    embed_dim: int
    input_spec: dict | None
    state_index: list | None = None  # state encoder: the object_state entries it keeps (None: all)
    precision: str = "fp32"          # encoder forward: fp32, or bf16 autocast (eval.precision; cache and rollout alike)

    @property
    def random_weights(self) -> bool:
        from egohod.models import is_random_weights

        return is_random_weights(self.weights)

    @property
    def seed(self) -> int | None:
        """Seed of random weights (``None`` for a checkpoint, the state encoder or an unseeded record)."""
        from egohod.models import random_weights_seed

        return random_weights_seed(self.weights)

    @property
    def label(self) -> str:
        if not self.random_weights:
            return self.name
        return f"{self.name} (RANDOM WEIGHTS, seed {self.seed})" if self.seed is not None else \
            f"{self.name} (RANDOM WEIGHTS)"

    def to_dict(self) -> dict:
        d = dict(self.__dict__)
        d["random_weights"] = self.random_weights
        d["seed"] = self.seed
        return d


class ObsEncoder:
    info: EncoderInfo
    needs_rgb: bool

    def obs_key(self, camera: str) -> str:
        """Key of the demo-file observation this encoder reads."""
        raise NotImplementedError

    def encode_episode(self, obs: np.ndarray, batch: int = 32, progress=None) -> np.ndarray:
        """Features ``[T, embed_dim]`` of one episode's observations ``obs [T, ...]``."""
        raise NotImplementedError

    def new_history(self, first_obs: np.ndarray) -> np.ndarray:
        """History buffer ``[N, frames, ...]`` for ``N`` environments just reset."""
        return np.repeat(first_obs[:, None], self.info.frames, axis=1)

    @staticmethod
    def push_history(history: np.ndarray, obs: np.ndarray) -> np.ndarray:
        return np.concatenate([history[:, 1:], obs[:, None]], axis=1)

    def encode_history(self, history: np.ndarray) -> torch.Tensor:
        """Features ``[N, embed_dim]`` (float32 tensor on the encoder's device) of a history."""
        raise NotImplementedError

    def to(self, device) -> "ObsEncoder":
        return self

    def set_inference(self, precision: str = "fp32", compile: bool = False) -> "ObsEncoder":
        """How the encoder's forward runs (``eval.precision``, ``eval.compile``); the precision is
        part of the feature-cache key, so cached and rollout features are made the same way."""
        if precision not in PRECISIONS:
            raise ValueError(f"eval.precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
        return self


PRECISIONS = ("fp32", "bf16")


@OBS_ENCODERS.register(VISION_ENCODERS)
class VisionObsEncoder(ObsEncoder):
    """Any ``egohod.load_encoder`` encoder on one camera's RGB frames."""

    needs_rgb = True

    def __init__(self, name: str, checkpoint: str | None = None, frames: int = 1, device: str = "cpu",
                 seed: int = 0):
        import egohod

        if frames < 1:
            raise ValueError(f"encoder.num_frames must be >= 1, got {frames}")
        spec = egohod.get_input_spec(name)
        self.model = egohod.load_encoder(name, checkpoint=checkpoint, num_frames=None if frames == 1 else frames,
                                         seed=seed)
        self.model.to(device)
        self.device = torch.device(device)
        clip_len = int(self.model.num_frames)
        self.info = EncoderInfo(
            name=name,
            weights=str(self.model.weights),
            checkpoint=None if checkpoint is None else str(checkpoint),
            frames=frames,
            clip_len=clip_len,
            embed_dim=int(self.model.embed_dim),
            input_spec=self.model.input_spec.to_dict() if hasattr(self.model.input_spec, "to_dict") else spec.to_dict(),
        )

    @classmethod
    def from_config(cls, name: str, checkpoint: str | None, frames: int, device: str = "cpu",
                    object_state_dim: int = 30, state_index=None, seed: int = 0) -> "VisionObsEncoder":
        import egohod

        known = egohod.list_encoders()
        if name not in known:
            others = [n for n in OBS_ENCODERS.list() if n != VISION_ENCODERS]
            raise ValueError(f"unknown encoder {name!r}; choose one of: {', '.join(known + others)}")
        if checkpoint is not None and not Path(checkpoint).is_file():
            raise FileNotFoundError(f"encoder.checkpoint={checkpoint!r}: file not found (encoder {name})")
        try:
            return cls(name, checkpoint, frames, device, seed=seed)
        except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
            if checkpoint is None:
                raise
            raise ValueError(f"encoder/checkpoint mismatch: cannot load {checkpoint!r} into encoder {name!r}:\n  {e}") from e

    def obs_key(self, camera: str) -> str:
        return f"rgb_{camera}"

    def to(self, device):
        self.model.to(device)
        self.device = torch.device(device)
        return self

    def _clips(self, history: np.ndarray) -> torch.Tensor:
        """``[N, frames, H, W, 3]`` uint8 -> ``[N, clip_len, H, W, 3]`` tensor."""
        x = torch.from_numpy(np.ascontiguousarray(history))
        if self.info.frames == 1 and self.info.clip_len > 1:
            x = x.expand(-1, self.info.clip_len, -1, -1, -1)
        return x

    def set_inference(self, precision: str = "fp32", compile: bool = False) -> "VisionObsEncoder":
        super().set_inference(precision, compile)
        self.info.precision = precision
        self._forward = torch.compile(self.model) if compile else self.model
        return self

    @torch.inference_mode()
    def encode_history(self, history: np.ndarray) -> torch.Tensor:
        forward = getattr(self, "_forward", self.model)
        clips = self._clips(history).to(self.device)
        if self.info.precision == "bf16":
            with torch.autocast(self.device.type, dtype=torch.bfloat16):
                return forward(clips).float()
        return forward(clips).float()

    def encode_episode(self, obs: np.ndarray, batch: int = 32, progress=None) -> np.ndarray:
        if obs.dtype != np.uint8 or obs.ndim != 4 or obs.shape[-1] != 3:
            raise ValueError(f"{self.info.name}: expected uint8 frames [T, H, W, 3], got {obs.dtype} {obs.shape}")
        idx = history_index(len(obs), self.info.frames)
        out = []
        for s in range(0, len(obs), batch):
            out.append(self.encode_history(obs[idx[s:s + batch]]).cpu().numpy())
            if progress is not None:
                progress.update(min(batch, len(obs) - s))
        return np.concatenate(out).astype(np.float32)


@OBS_ENCODERS.register(STATE_ENCODER)
class StateObsEncoder(ObsEncoder):
    """Privileged object state (no vision). Features: the last ``frames`` ``object_state``
    vectors concatenated, each reduced to the entries in ``index`` (all when ``None``).

    ``index`` is normally the task's entries (``envs.kitchen_env.task_state_index``: the task
    joint, end effector, task site and their difference). The other objects' joints are constant
    within an episode and differ between episodes only by reset noise, so with 25 demos they
    act as an episode fingerprint a policy can overfit to (measured on microwave: README.md,
    "Franka Kitchen behaviour cloning").
    """

    needs_rgb = False
    OBJECT_STATE_KEY = "object_state"

    def __init__(self, object_state_dim: int, frames: int = 1, device: str = "cpu",
                 index: tuple[int, ...] | list[int] | None = None):
        if frames < 1:
            raise ValueError(f"encoder.num_frames must be >= 1, got {frames}")
        if index is not None:
            index = [int(i) for i in index]
            bad = [i for i in index if not 0 <= i < object_state_dim]
            if bad or not index:
                raise ValueError(f"state encoder index {index} does not fit a {object_state_dim}-d object_state")
        self.index = None if index is None else np.asarray(index)
        self.object_state_dim = int(object_state_dim)
        dim = object_state_dim if index is None else len(index)
        self.device = torch.device(device)
        self.info = EncoderInfo(name=STATE_ENCODER, weights="none", checkpoint=None, frames=frames, clip_len=frames,
                                embed_dim=dim * frames, input_spec=None, state_index=index)

    def _select(self, obs: np.ndarray) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape[-1] != self.object_state_dim:
            raise ValueError(f"state encoder expects {self.object_state_dim}-d object_state, got shape {obs.shape}")
        return obs if self.index is None else obs[..., self.index]

    @classmethod
    def from_config(cls, name: str, checkpoint: str | None, frames: int, device: str = "cpu",
                    object_state_dim: int = 30, state_index=None, seed: int = 0) -> "StateObsEncoder":
        if checkpoint is not None:
            raise ValueError(f"encoder {name!r} has no weights; got encoder.checkpoint={checkpoint!r} (set it to null)")
        return cls(object_state_dim, frames, device, state_index)

    def obs_key(self, camera: str) -> str:
        return self.OBJECT_STATE_KEY

    def to(self, device):
        self.device = torch.device(device)
        return self

    def encode_history(self, history: np.ndarray) -> torch.Tensor:
        h = self._select(history)
        return torch.from_numpy(np.ascontiguousarray(h.reshape(h.shape[0], -1))).to(self.device)

    def encode_episode(self, obs: np.ndarray, batch: int = 32, progress=None) -> np.ndarray:
        obs = self._select(obs)
        out = obs[history_index(len(obs), self.info.frames)].reshape(len(obs), -1)
        if progress is not None:
            progress.update(len(obs))
        return out


def obs_encoder_class(name: str) -> type[ObsEncoder]:
    """The :class:`ObsEncoder` class an ``encoder.name`` builds: a kind registered under its own
    name (``state``), else the ``vision`` kind (any ``egohod`` encoder name; checked when built)."""
    return OBS_ENCODERS.get(name if name in OBS_ENCODERS and name != VISION_ENCODERS else VISION_ENCODERS)


def build_obs_encoder(name: str, checkpoint: str | None, frames: int, device: str = "cpu",
                      object_state_dim: int = 30, state_index=None, seed: int = 0) -> ObsEncoder:
    """The encoder named in the config, with clear errors for unknown names and checkpoints
    that do not fit. Without a checkpoint a vision encoder has the random weights of
    ``egohod.load_encoder(name, seed=seed)`` (``info.weights == "random:seed=<seed>"``)."""
    return obs_encoder_class(name).from_config(name, checkpoint, frames, device, object_state_dim, state_index, seed)


def cache_identity(info: EncoderInfo, obs_key: str, obs_shape, dataset_sha256: str, episodes: list[int]) -> dict:
    """Everything the frozen features of a dataset depend on (``weights`` carries the seed of
    random weights: "random:seed=N")."""
    return {
        "format": 1,
        "encoder": info.name,
        "weights": info.weights,
        "frames": info.frames,
        "clip_len": info.clip_len,
        "input_spec": info.input_spec,
        **({"state_index": list(info.state_index)} if info.state_index is not None else {}),
        **({"precision": info.precision} if info.precision != "fp32" else {}),  # fp32 keys as before
        "obs_key": obs_key,
        "obs_shape": [int(s) for s in obs_shape],
        "dataset_sha256": dataset_sha256,
        "episodes": [int(e) for e in episodes],
    }


def identity_key(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()
