"""One sweep cell: ``robot/train_bc.py`` in a process that dies with the sweep that started it.

``python -m robot.sweep_cell <train_bc overrides>`` is what ``robot/sweep.py`` runs for each cell
(local pool, Ray task or Slurm job). It asks the kernel to SIGKILL it when its parent dies
(``PR_SET_PDEATHSIG``, Linux), so a killed sweep leaves no orphaned cell holding its folder lock;
the next sweep re-runs that cell, which resumes from its last checkpoint.
"""
import os
import signal
import sys


PARENT_ENV = "EGOHOD_SWEEP_PID"  # set by the local launcher: the PID this cell must die with


def die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    expected = os.environ.get(PARENT_ENV)
    if expected and os.getppid() != int(expected):  # the sweep died before the request took effect
        os._exit(137)


def main() -> None:
    die_with_parent()
    from robot.train_bc import main as train_bc_main

    train_bc_main()


if __name__ == "__main__":
    main()
