"""Atomic writes and folder locks: the one implementation every long job uses.

* :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_write_json`: write to a
  temporary file beside the target, fsync, rename into place. A reader never sees half a file and
  a crash leaves the previous version (or nothing).
* :func:`atomic_output`: the same for files written by another library (``torch.jit.save``,
  ONNX, h5py, ``save_pretrained`` folders): it hands out a temporary path beside the target and
  renames it into place only when the block ends without an error (else removes it).
* :func:`append_jsonl`: one JSON record per line, flushed and fsynced (a crash loses at most the
  last line, never a line already written).
* :class:`FolderLock`: an exclusive ``flock`` on ``<folder>/.lock`` that records the holder's PID
  and host. The kernel drops it when the process dies, so a killed run never leaves a stale lock;
  a second run fails at once with :class:`FolderLockedError` naming the holder (or waits, with
  ``wait=True``). The lock file is removed on a clean release.
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

__all__ = ["FolderLock", "FolderLockedError", "append_jsonl", "atomic_output", "atomic_write_bytes",
           "atomic_write_json", "atomic_write_text", "file_lock"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike) -> Iterator[Path]:
    """``with atomic_output(out) as tmp: save(tmp)``: ``tmp`` (a path beside ``out``, nothing there
    yet) becomes ``out`` when the block ends without an error, replacing a file at ``out``; on an
    error it is removed (a file or a folder). ``out`` may be a folder only when nothing is there."""
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"nothing was written to {tmp} (the temporary name of {path})")
        os.replace(tmp, path)
    finally:
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, newlines untranslated) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=indent) + "\n")


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON line and fsync it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


class FolderLockedError(RuntimeError):
    """Another live process holds the lock of an output folder."""


class FolderLock:
    """Exclusive lock on an output folder (``<folder>/.lock``), held by one process at a time.

    ``with FolderLock(out_dir, what="train_bc"):`` ... . Re-entrant within one process only through
    the same object. The holder's PID, host and start time are written into the lock file so a
    refused run can say who holds it.
    """

    name = ".lock"

    def __init__(self, folder: str | os.PathLike, what: str = "run", wait: bool = False,
                 timeout_s: float | None = None):
        self.folder = Path(folder)
        self.path = self.folder / self.name
        self.what = what
        self.wait = wait
        self.timeout_s = timeout_s
        self._fh = None

    def holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, json.JSONDecodeError):
            return "an unknown process"
        return f"{info.get('what', 'a run')} (PID {info.get('pid', '?')} on host {info.get('host', '?')}, " \
               f"since {info.get('since', '?')})"

    def acquire(self) -> "FolderLock":
        import fcntl

        if self._fh is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        deadline = None if self.timeout_s is None else time.monotonic() + self.timeout_s
        while True:
            fh = open(self.path, "a+")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                if not self.wait or (deadline is not None and time.monotonic() > deadline):
                    raise FolderLockedError(
                        f"{self.folder} is in use by {self.holder()}; wait for it to finish, stop it, or choose "
                        "another output folder") from None
                time.sleep(0.2)
                continue
            if _same_file(fh, self.path):
                break
            fh.close()  # the previous holder removed the file we locked: lock the one there now
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"what": self.what, "pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        import fcntl

        if self._fh is None:
            return
        with contextlib.suppress(OSError):
            self.path.unlink()  # still ours: nobody else can hold it while we do
        fcntl.flock(self._fh, fcntl.LOCK_UN)
        self._fh.close()
        self._fh = None

    @property
    def held(self) -> bool:
        return self._fh is not None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _same_file(fh, path: Path) -> bool:
    try:
        return os.fstat(fh.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


@contextlib.contextmanager
def file_lock(target: str | os.PathLike) -> Iterator[None]:
    """Block until an exclusive lock on ``<target>.lock`` is held (for a single output file shared
    by parallel jobs, e.g. a demo cache entry); the lock file is removed on release."""
    import fcntl

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.with_name(target.name + ".lock")
    while True:
        fh = open(lock, "a")
        fcntl.flock(fh, fcntl.LOCK_EX)
        if _same_file(fh, lock):  # else the previous holder removed it: lock the one there now
            break
        fh.close()
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            lock.unlink()
        fcntl.flock(fh, fcntl.LOCK_UN)
        fh.close()
