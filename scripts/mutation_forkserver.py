"""A fork server that makes one mutation-testing run of pytest cost the tests, not the imports.

mutmut 2 runs its ``--runner`` command once per mutant. Started plainly, every run pays for the
interpreter, pytest's plugins and the third-party stack the tests import (torch, mujoco,
gymnasium, ...): several seconds per mutant, mostly the same work each time. This server pays it
once: it runs the given tests once, notes which third-party modules they loaded, imports those,
and then answers each request by forking a child that runs ``pytest.main(args)``. The child
imports the project's own modules from disk afresh (the server never imports them), so it sees
the mutant mutmut has just written; nothing is cached between mutants except third-party code.

    # in the throw-away worktree (never in a checkout others use):
    python scripts/mutation_forkserver.py serve --socket /tmp/mut.sock -- tests/x.py &
    mutmut run --paths-to-mutate M.py --runner \
      "python -S scripts/mutation_forkserver.py run --socket /tmp/mut.sock -- -x -q tests/x.py"

``run`` exits 0 when pytest passed and 1 otherwise (failed tests, a collection or import error,
a crash): mutmut 2 counts only exit status 1 as a killed mutant. If ``run`` is killed (mutmut's
timeout), the server kills the child's process group.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import sys

RC_MARKER = b"\n__FORKSERVER_RC__ "
PROJECT_PACKAGES = ("egohod", "pretrain", "robot", "envs", "policies", "tests", "conftest")


def _is_project_module(name: str, module, root: str) -> bool:
    if name == "__main__" or name.split(".")[0] in PROJECT_PACKAGES:
        return True
    path = getattr(module, "__file__", None) or ""
    return os.path.realpath(path).startswith(root + os.sep)


def _run_pytest_child(out_fd: int, args: list[str], cwd: str, report_modules_fd: int | None = None):
    """In the forked child: run pytest with stdout/stderr on ``out_fd``, then exit."""
    os.setpgrp()
    os.dup2(out_fd, 1)
    os.dup2(out_fd, 2)
    os.chdir(cwd)
    rc = 3
    try:
        import pytest

        rc = int(pytest.main(args))
    except SystemExit as e:  # pragma: no cover - pytest.main returns, a test may still exit
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - report whatever broke the run, as a failed run
        import traceback

        traceback.print_exc()
    finally:
        if report_modules_fd is not None:
            os.write(report_modules_fd, json.dumps(sorted(sys.modules)).encode())
            os.close(report_modules_fd)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(rc)


def _wait_child(pid: int, conn: socket.socket) -> tuple[int, float]:
    """Wait for the child; kill its process group if the client hangs up first.
    Returns the exit code and the child's CPU seconds."""
    import select
    import signal

    poller = select.poll()
    poller.register(conn, select.POLLIN | select.POLLHUP)
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime
        if poller.poll(100):
            try:
                gone = conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
            except (BlockingIOError, InterruptedError):
                gone = False
            except OSError:
                gone = True
            if gone:
                try:
                    os.killpg(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _, _, usage = os.wait4(pid, 0)
                return -9, usage.ru_utime + usage.ru_stime


def _preload(warmup_args: list[str], cwd: str) -> list[str]:
    """Run the tests once in a child, then import the third-party modules they loaded."""
    import importlib

    root = os.path.realpath(cwd)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _run_pytest_child(os.open(os.devnull, os.O_WRONLY), warmup_args, cwd, report_modules_fd=write_fd)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 1 << 16):
        chunks.append(chunk)
    os.close(read_fd)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"the warm-up run `pytest {' '.join(warmup_args)}` did not pass in {cwd}: "
                         "run it by hand and fix it first (mutation testing needs green tests)")
    names = json.loads(b"".join(chunks)) if chunks else []
    loaded = []
    for name in names:
        if name in sys.modules or name.split(".")[0] in PROJECT_PACKAGES:
            continue
        try:
            module = importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - a module that only imports in context stays lazy
            continue
        if _is_project_module(name, module, root):  # pragma: no cover - guarded by the prefix test
            raise SystemExit(f"refusing to preload project module {name} ({module.__file__})")
        loaded.append(name)
    return loaded


def _drop_stale_bytecode(cwd: str, since: float) -> None:
    """Remove the .pyc of every project source changed since the server started (the mutant).

    Python trusts a .pyc whose recorded source mtime (whole seconds) and size match: two mutants
    of one file written within a second with the same size (``<`` -> ``>``) would share one."""
    for top in PROJECT_PACKAGES[:5]:
        for dirpath, dirnames, filenames in os.walk(os.path.join(cwd, top)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            for f in filenames:
                if f.endswith(".py") and os.stat(os.path.join(dirpath, f)).st_mtime >= since:
                    cache = os.path.join(dirpath, "__pycache__")
                    stem = f[:-3] + "."
                    for pyc in os.listdir(cache) if os.path.isdir(cache) else ():
                        if pyc.startswith(stem):
                            os.unlink(os.path.join(cache, pyc))


def serve(sock_path: str, warmup_args: list[str]) -> None:
    import time

    cwd = os.getcwd()
    started = time.time() - 2.0
    # the worktree's packages must shadow the editable install of the main checkout:
    # scripts/mutation_run.sh puts the worktree first on PYTHONPATH
    if os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] != cwd:
        raise SystemExit(f"run the server from scripts/mutation_run.sh (PYTHONPATH must start with {cwd})")
    import pytest  # noqa: F401 - preloaded for every child

    loaded = _preload(warmup_args, cwd)
    for name in sys.modules:
        if name.split(".")[0] in PROJECT_PACKAGES:
            raise SystemExit(f"project module {name} got imported by the server: children would not see mutants")
    if os.path.exists(sock_path):
        os.unlink(sock_path)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    print(f"fork server ready on {sock_path} ({len(loaded)} modules preloaded, cwd {cwd})", flush=True)
    while True:
        conn, _ = server.accept()
        with conn:
            request = b""
            while not request.endswith(b"\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                request += chunk
            if not request.endswith(b"\n"):
                continue
            req = json.loads(request)
            _drop_stale_bytecode(cwd, started)
            pid = os.fork()
            if pid == 0:
                server.close()
                _run_pytest_child(conn.fileno(), req["args"], req["cwd"])
            t0 = time.time()
            rc, cpu = _wait_child(pid, conn)
            print(f"run rc={rc} wall={time.time() - t0:.2f}s cpu={cpu:.2f}s", flush=True)
            try:
                conn.sendall(RC_MARKER + str(rc).encode() + b"\n")
            except OSError:
                pass


def run(sock_path: str, args: list[str]) -> int:
    import time

    deadline = time.monotonic() + 120
    while True:
        client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            client.connect(sock_path)
            break
        except OSError as e:
            client.close()
            if time.monotonic() > deadline:
                # No exit status is right here: mutmut 2 reads 1 as "killed" and anything else as
                # "survived". Hang instead, so that mutmut records a timeout, which stands apart.
                print(f"no fork server at {sock_path} ({e}): start `mutation_forkserver.py serve` first",
                      file=sys.stderr, flush=True)
                while True:
                    time.sleep(3600)
            time.sleep(0.5)
    client.sendall(json.dumps({"args": args, "cwd": os.getcwd()}).encode() + b"\n")
    data = b""
    while chunk := client.recv(65536):
        data += chunk
    output, marker, tail = data.rpartition(RC_MARKER)
    if not marker:
        sys.stdout.buffer.write(data)
        print("fork server closed the connection without a result", file=sys.stderr)
        return 1
    sys.stdout.buffer.write(output + b"\n")
    sys.stdout.flush()
    return 0 if int(tail.strip() or 1) == 0 else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rest: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, rest = argv[:i], argv[i + 1:]
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["serve", "run"])
    parser.add_argument("--socket", required=True, help="UNIX socket path shared by serve and run")
    opts = parser.parse_args(argv)
    if opts.mode == "serve":
        serve(opts.socket, rest)
        return 0
    return run(opts.socket, rest)


if __name__ == "__main__":
    sys.exit(main())
