"""egohod.fileio: atomic writes and folder locks."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from egohod.fileio import FolderLock, FolderLockedError, append_jsonl, atomic_write_text, file_lock


def _hold_in_child(folder, ready):
    code = textwrap.dedent(f"""
        import time, pathlib
        from egohod.fileio import FolderLock
        with FolderLock({str(folder)!r}, what="holder-run"):
            pathlib.Path({str(ready)!r}).write_text("x")
            time.sleep(60)
    """)
    return subprocess.Popen([sys.executable, "-c", code])


def test_folder_lock_refuses_second_process_and_names_holder(tmp_path):
    ready = tmp_path / "ready"
    child = _hold_in_child(tmp_path / "run", ready)
    try:
        for _ in range(200):
            if ready.exists():
                break
            import time
            time.sleep(0.05)
        assert ready.exists()
        with pytest.raises(FolderLockedError) as e:
            FolderLock(tmp_path / "run").acquire()
        msg = str(e.value)
        assert f"PID {child.pid}" in msg and socket.gethostname() in msg and "holder-run" in msg
    finally:
        child.kill()
        child.wait()
    # the kernel released the dead holder's lock: no stale lock
    with FolderLock(tmp_path / "run") as lock:
        assert lock.held
        assert json.loads(lock.path.read_text())["pid"] == os.getpid()
    assert not (tmp_path / "run" / ".lock").exists()


def test_folder_lock_same_process_second_object_refused(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(FolderLockedError):
            FolderLock(tmp_path).acquire()


def test_file_lock_leaves_no_lock_file(tmp_path):
    target = tmp_path / "demos.hdf5"
    with file_lock(target):
        assert (tmp_path / "demos.hdf5.lock").exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_old_content_on_failure(tmp_path, monkeypatch):
    p = atomic_write_text(tmp_path / "a.json", "old")

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_text(p, "new")
    monkeypatch.undo()
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["a.json"]  # no temporary left behind


def test_append_jsonl(tmp_path):
    p = tmp_path / "m.jsonl"
    append_jsonl(p, {"step": 1})
    append_jsonl(p, {"step": 2})
    assert [json.loads(x)["step"] for x in p.read_text().splitlines()] == [1, 2]


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        p = atomic_write_text(tmp_path / "x.txt", "x")
    finally:
        os.umask(old)
    assert (p.stat().st_mode & 0o777) == 0o644


def test_atomic_output_renames_on_success_and_cleans_up_on_error(tmp_path):
    from egohod.fileio import atomic_output

    out = tmp_path / "sub" / "model.onnx"
    with atomic_output(out) as tmp:
        assert tmp.parent == out.parent and not tmp.exists() and not out.exists()
        tmp.write_bytes(b"new")
    assert out.read_bytes() == b"new"
    with pytest.raises(RuntimeError, match="writer failed"):
        with atomic_output(out) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("writer failed")
    assert out.read_bytes() == b"new" and sorted(p.name for p in out.parent.iterdir()) == ["model.onnx"]
    folder = tmp_path / "hf_model"
    with pytest.raises(RuntimeError):
        with atomic_output(folder) as tmp:
            (tmp / "weights").mkdir(parents=True)
            raise RuntimeError("cut off")
    assert list(tmp_path.iterdir()) == [out.parent]  # no partial folder left
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_output(tmp_path / "empty.pt"):
            pass
