"""Headless OpenGL backend selection for MuJoCo rendering.

MuJoCo reads ``MUJOCO_GL`` once, when ``mujoco`` is first imported, so the choice has to be made
before that import. :func:`ensure_gl_backend` is called by :func:`envs.make` before the simulator
module is imported:

- ``MUJOCO_GL`` already set (by the user, the Makefile or CI): kept as is. If it then fails to
  create a context, :func:`check_gl_context` raises an error naming the backend and the fix.
- unset: each candidate backend (``egl``, then ``osmesa``) is probed in a short child process
  (creating a 1x1 context there cannot crash or poison this process); the first that works is
  written to ``os.environ`` so worker processes (``AsyncVectorEnv``) inherit it without probing.
- none works: :class:`GLBackendError` lists what was tried and what each attempt printed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import warnings

CANDIDATE_BACKENDS = ("egl", "osmesa")

_PROBE = (
    "import mujoco\n"
    "ctx = mujoco.GLContext(8, 8)\n"
    "ctx.make_current()\n"
    "ctx.free()\n"
)


class GLBackendError(RuntimeError):
    """No headless OpenGL backend can create a MuJoCo rendering context."""


def _probe_backend(backend: str, timeout_s: float = 60.0) -> tuple[bool, str]:
    env = dict(os.environ, MUJOCO_GL=backend, PYOPENGL_PLATFORM=backend)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout_s:.0f} s"
    msg = (proc.stderr or proc.stdout).strip().splitlines()
    return proc.returncode == 0, (msg[-1] if msg else f"exit code {proc.returncode}")


def _fix_hint() -> str:
    return (
        "Install the system libraries (Debian/Ubuntu: `apt-get install -y libegl1 libegl-mesa0 "
        "libgl1-mesa-dri libosmesa6`, or run `bash scripts/system_deps.sh` as root), then set "
        "MUJOCO_GL=egl (or osmesa). Environments created with camera=None need no rendering."
    )


def preload_triton() -> None:
    """Import Triton (if installed) before the first OpenGL context exists.

    Mesa's software renderer (llvmpipe, used by EGL and OSMesa without a GPU) loads its own LLVM
    into the process; loading Triton's LLVM after it crashes the interpreter (seen with torch
    2.14 + Mesa 22: a segfault in Triton's module init, reached through any lazy
    ``torch._dynamo`` import such as ``torchvision.ops``). Loaded first, both coexist.
    """
    try:
        import triton  # noqa: F401
    except Exception:  # not installed, or a CPU-only torch without it: nothing to protect
        pass


def ensure_gl_backend() -> str:
    """Choose ``MUJOCO_GL`` (egl, then osmesa) if unset; return the backend in use.

    Must run before ``mujoco`` is imported for the choice to take effect. If ``mujoco`` was
    already imported with ``MUJOCO_GL`` unset, the backend cannot change any more: the error says
    so instead of rendering black frames later.
    """
    preload_triton()
    chosen = os.environ.get("MUJOCO_GL", "").strip().lower()
    if chosen:
        platform = os.environ.get("PYOPENGL_PLATFORM", "").strip().lower()
        if chosen in CANDIDATE_BACKENDS and platform and platform != chosen:
            if "mujoco" in sys.modules:
                raise GLBackendError(
                    f"MUJOCO_GL={chosen} but PYOPENGL_PLATFORM={platform}: MuJoCo cannot create "
                    "contexts with mismatched settings. Set both to the same value."
                )
            warnings.warn(f"PYOPENGL_PLATFORM={platform} does not match MUJOCO_GL={chosen}; "
                          f"setting PYOPENGL_PLATFORM={chosen}", stacklevel=2)
            os.environ["PYOPENGL_PLATFORM"] = chosen
        os.environ.setdefault("PYOPENGL_PLATFORM", chosen)
        return chosen
    if "mujoco" in sys.modules:
        raise GLBackendError(
            "mujoco was imported before MUJOCO_GL was set, so its OpenGL backend is already "
            "fixed to the default (GLFW, which needs a display). Import `envs` (or set "
            "MUJOCO_GL=egl / osmesa in the environment) before importing mujoco."
        )
    tried = []
    for backend in CANDIDATE_BACKENDS:
        ok, message = _probe_backend(backend)
        if ok:
            os.environ["MUJOCO_GL"] = backend
            os.environ["PYOPENGL_PLATFORM"] = backend
            return backend
        tried.append(f"{backend}: {message}")
    raise GLBackendError(
        "No headless OpenGL backend works for MuJoCo rendering. Tried "
        + "; ".join(tried) + ". " + _fix_hint()
    )


def check_gl_context(width: int, height: int):
    """Create a MuJoCo GL context for the current backend or raise :class:`GLBackendError`."""
    preload_triton()
    import mujoco

    backend = os.environ.get("MUJOCO_GL", "<unset>")
    try:
        ctx = mujoco.GLContext(width, height)
        ctx.make_current()
    except Exception as exc:  # the backends raise assorted error types
        raise GLBackendError(
            f"MUJOCO_GL={backend} cannot create an offscreen OpenGL context "
            f"({type(exc).__name__}: {exc}). " + _fix_hint()
        ) from exc
    return ctx
