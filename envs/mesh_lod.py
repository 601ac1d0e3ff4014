"""Lighter visual meshes for CPU rendering (a level of detail for the Franka arm).

The Franka arm's visual meshes hold 133k of the kitchen's 142k triangles; on a CPU OpenGL
(Mesa llvmpipe) vertex processing of those meshes is about half the cost of a frame. This
module decimates, in place in a compiled ``MjModel``, every mesh used *only* by visual geoms
(``contype == conaffinity == 0``) that has more than ``min_faces`` triangles, with quadric edge
collapse (``fast-simplification``), and recomputes smooth vertex normals.

Physics is unaffected: the decimated meshes belong to geoms that take part in no collision, and
masses/inertias were computed at compile time from the collision geoms (the kitchen model uses
``inertiagrouprange="3 5"``). A test checks that trajectories are bit-identical. The renderer
uploads meshes when its context is created, so this must run before the renderer is built.
"""
from __future__ import annotations

import numpy as np


def _visual_only_meshes(model) -> list[int]:
    mesh_geoms: dict[int, list[int]] = {}
    for g in range(model.ngeom):
        if model.geom_type[g] == 7 and model.geom_dataid[g] >= 0:  # mjGEOM_MESH
            mesh_geoms.setdefault(int(model.geom_dataid[g]), []).append(g)
    return [m for m, geoms in sorted(mesh_geoms.items())
            if all(model.geom_contype[g] == 0 and model.geom_conaffinity[g] == 0 for g in geoms)]


def _vertex_normals(verts: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = verts[faces]
    face_n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # area-weighted
    normals = np.zeros_like(verts)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_n)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(length > 0, length, 1.0)


_CACHE: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}


def _simplified(name: str, verts: np.ndarray, faces: np.ndarray, keep_fraction: float):
    """Decimated (vertices, faces, normals), cached per process (every env loads the same mesh)."""
    key = (name, len(verts), len(faces), float(verts.sum()), keep_fraction)
    if key not in _CACHE:
        import fast_simplification

        new_v, new_f = fast_simplification.simplify(verts, faces,
                                                    target_reduction=1.0 - keep_fraction)
        _CACHE[key] = (new_v, new_f, _vertex_normals(new_v, new_f))
    return _CACHE[key]


def decimate_visual_meshes(model, keep_fraction: float = 0.15, min_faces: int = 2000) -> dict:
    """Decimate heavy visual-only meshes of ``model`` in place; returns face counts before/after.

    Meshes with texture coordinates are left alone (their UV layout cannot be remapped here).
    """
    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    try:
        import fast_simplification  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "lighter arm meshes need the 'fast-simplification' package (pip install "
            "fast-simplification, part of egohod[robot]); or pass mesh_detail=1.0 to render "
            "the original meshes"
        ) from exc

    before = int(model.mesh_facenum.sum())
    changed = 0
    for mid in _visual_only_meshes(model):
        nface, nvert = int(model.mesh_facenum[mid]), int(model.mesh_vertnum[mid])
        if nface <= min_faces or keep_fraction == 1.0 or model.mesh_texcoordadr[mid] != -1:
            continue
        if int(model.mesh_normalnum[mid]) < nvert:
            continue  # normals not stored per vertex: keep the original mesh
        va, fa, na = (int(model.mesh_vertadr[mid]), int(model.mesh_faceadr[mid]),
                      int(model.mesh_normaladr[mid]))
        verts = np.array(model.mesh_vert[va:va + nvert], dtype=np.float64)
        faces = np.array(model.mesh_face[fa:fa + nface], dtype=np.int64)
        new_v, new_f, new_n = _simplified(model.mesh(mid).name, verts, faces, keep_fraction)
        if len(new_f) == 0 or len(new_v) > nvert or len(new_f) > nface:
            continue
        model.mesh_vert[va:va + len(new_v)] = new_v
        model.mesh_vertnum[mid] = len(new_v)
        model.mesh_face[fa:fa + len(new_f)] = new_f
        model.mesh_facenum[mid] = len(new_f)
        model.mesh_normal[na:na + len(new_v)] = new_n
        model.mesh_normalnum[mid] = len(new_v)
        model.mesh_facenormal[fa:fa + len(new_f)] = new_f
        changed += 1
    return {"meshes_decimated": changed, "faces_before": before,
            "faces_after": int(model.mesh_facenum.sum())}
