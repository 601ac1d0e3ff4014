"""On-disk cache of frozen features: computed once per (encoder, weights, dataset), reused by
every run, seed and policy head that trains on them.

Key: sha256 of the JSON identity from :func:`robot.obs_encoders.cache_identity` (encoder name,
weights hash or "random:seed=N", frame history, clip length, input spec, observation key and image
shape, sha256 of the demo file, episode indices). Any change of one of these is a different
key, so stale features are never read. One entry is ``<dir>/<encoder>-<key[:20]>.npz``
(``features`` float32 ``[sum T, D]``, ``lengths`` ``[E]``) beside a ``.json`` with the identity;
both are written to a temporary name and renamed, so an interrupted run leaves no partial entry.
A corrupt entry, or one whose identity differs, is recomputed and overwritten.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from egohod.fileio import atomic_write_bytes

from .obs_encoders import ObsEncoder, identity_key


def memoized_sha256(path: str | Path, memo_dir: str | Path | None = None) -> str:
    """sha256 of a file (:func:`egohod.models.checkpoint_io.file_sha256`); with ``memo_dir``,
    remembered per (path, size, mtime) so a large demo file is hashed once, not on every run."""
    from egohod.models.checkpoint_io import file_sha256 as sha256_of

    path = Path(path).resolve()
    if memo_dir is None:
        return sha256_of(path)
    st = path.stat()
    memo_key = f"{path}|{st.st_size}|{st.st_mtime_ns}"
    memo_file = Path(memo_dir) / "file_sha256.json"
    memo = {}
    if memo_file.is_file():
        try:
            memo = json.loads(memo_file.read_text())
        except (OSError, json.JSONDecodeError):
            memo = {}
        if memo_key in memo:
            return memo[memo_key]
    digest = sha256_of(path)
    memo[memo_key] = digest
    atomic_write_bytes(memo_file, json.dumps(memo, indent=1, sort_keys=True).encode())
    return digest


class FeatureCache:
    def __init__(self, directory: str | Path):
        self.dir = Path(directory)

    def paths(self, identity: dict) -> tuple[Path, Path]:
        key = identity_key(identity)
        stem = f"{identity['encoder']}-{key[:20]}"
        return self.dir / f"{stem}.npz", self.dir / f"{stem}.json"

    def load(self, identity: dict) -> list[np.ndarray] | None:
        """Per-episode features, or ``None`` when absent, corrupt, or made for another identity."""
        npz, meta = self.paths(identity)
        if not (npz.is_file() and meta.is_file()):
            return None
        try:
            if json.loads(meta.read_text()) != identity:
                return None
            with np.load(npz) as z:
                feats, lengths = z["features"], z["lengths"]
        except (OSError, ValueError, KeyError, json.JSONDecodeError):
            return None
        if lengths.sum() != len(feats) or len(lengths) != len(identity["episodes"]):
            return None
        return np.split(feats, np.cumsum(lengths)[:-1])

    def save(self, identity: dict, features: Sequence[np.ndarray]) -> Path:
        npz, meta = self.paths(identity)
        import io

        buf = io.BytesIO()
        np.savez(buf, features=np.concatenate(features).astype(np.float32),
                 lengths=np.array([len(f) for f in features], dtype=np.int64))
        atomic_write_bytes(npz, buf.getvalue())
        atomic_write_bytes(meta, json.dumps(identity, indent=1, sort_keys=True).encode())
        return npz


def cached_features(encoder: ObsEncoder, identity: dict, load_obs: Callable[[], list[np.ndarray]],
                    cache: FeatureCache, batch: int = 32, log=print) -> tuple[list[np.ndarray], bool]:
    """Features of every episode, from the cache or computed (then stored). Returns
    ``(features, hit)``. ``load_obs`` is only called on a miss (the frames are not read at all
    when the features are cached)."""
    feats = cache.load(identity)
    npz, _ = cache.paths(identity)
    if feats is not None:
        log(f"features: cache hit: {npz}")
        return feats, True
    from tqdm.auto import tqdm

    obs = load_obs()
    total = sum(len(o) for o in obs)
    log(f"features: cache miss: encoding {len(obs)} episodes ({total} steps) with {encoder.info.label} -> {npz}")
    with tqdm(total=total, desc=f"encode {encoder.info.name}", unit="step", mininterval=2.0) as bar:
        feats = [encoder.encode_episode(o, batch=batch, progress=bar) for o in obs]
    for f, o in zip(feats, obs):
        if f.shape != (len(o), encoder.info.embed_dim):
            raise RuntimeError(f"encoder {encoder.info.name} returned features {f.shape}, expected "
                               f"({len(o)}, {encoder.info.embed_dim})")
    cache.save(identity, feats)
    return feats, False
