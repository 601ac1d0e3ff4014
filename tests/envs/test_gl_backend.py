"""MUJOCO_GL selection: respected when set, probed when unset, clear error when nothing works."""
import pytest

from envs import gl


def test_preset_backend_is_kept(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "osmesa")
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    assert gl.ensure_gl_backend() == "osmesa"
    import os

    assert os.environ["PYOPENGL_PLATFORM"] == "osmesa"


@pytest.fixture(autouse=True)
def _restore_gl_env(monkeypatch):
    # ensure_gl_backend writes os.environ; register both variables so they are restored
    monkeypatch.setenv("MUJOCO_GL", gl.os.environ.get("MUJOCO_GL", "egl"))
    monkeypatch.setenv("PYOPENGL_PLATFORM", gl.os.environ.get("PYOPENGL_PLATFORM", "egl"))


def test_mismatched_pyopengl_platform_is_fixed(monkeypatch):
    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.setenv("PYOPENGL_PLATFORM", "osmesa")
    monkeypatch.setattr(gl.sys, "modules", {k: v for k, v in gl.sys.modules.items()
                                            if k != "mujoco"})
    with pytest.warns(UserWarning, match="does not match"):
        assert gl.ensure_gl_backend() == "egl"
    assert gl.os.environ["PYOPENGL_PLATFORM"] == "egl"


def test_probe_order_and_error_message(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(gl.sys, "modules", {k: v for k, v in gl.sys.modules.items()
                                            if k != "mujoco"})
    tried = []

    def failing_probe(backend, timeout_s=60.0):
        tried.append(backend)
        return False, f"{backend} library not found"

    monkeypatch.setattr(gl, "_probe_backend", failing_probe)
    with pytest.raises(gl.GLBackendError) as err:
        gl.ensure_gl_backend()
    assert tried == ["egl", "osmesa"]
    msg = str(err.value)
    assert "egl: egl library not found" in msg and "osmesa: osmesa library not found" in msg
    assert "apt-get install" in msg


def test_second_backend_is_used_when_first_fails(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(gl.sys, "modules", {k: v for k, v in gl.sys.modules.items()
                                            if k != "mujoco"})
    monkeypatch.setattr(gl, "_probe_backend", lambda b, timeout_s=60.0: (b == "osmesa", "x"))
    assert gl.ensure_gl_backend() == "osmesa"
    import os

    assert os.environ["MUJOCO_GL"] == "osmesa"


def test_unset_backend_after_mujoco_import_is_an_error(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setitem(gl.sys.modules, "mujoco", object())
    with pytest.raises(gl.GLBackendError, match="imported before MUJOCO_GL"):
        gl.ensure_gl_backend()


@pytest.mark.render
def test_real_probe_of_the_configured_backend():
    import os

    ok, message = gl._probe_backend(os.environ.get("MUJOCO_GL", "egl"))
    assert ok, message


@pytest.mark.render
def test_osmesa_fallback_renders_real_frames():
    """The fallback backend renders the same scene (run in a child: the backend is per process)."""
    import subprocess
    import sys
    from pathlib import Path

    ok, message = gl._probe_backend("osmesa")
    if not ok:
        pytest.skip(f"OSMesa not installed here ({message}); scripts/system_deps.sh installs it")
    code = ("import envs; e = envs.make('kitchen/knob', camera='right', image_size=64, seed=0); "
            "o, _ = e.reset(); print(round(float(o['rgb'].mean()), 1), o['rgb'].shape)")
    env = dict(gl.os.environ, MUJOCO_GL="osmesa", PYOPENGL_PLATFORM="osmesa")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         cwd=str(Path(__file__).resolve().parents[2]), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    mean, shape = out.stdout.strip().split(" ", 1)
    assert float(mean) > 30 and shape == "(64, 64, 3)"
