"""Behaviour cloning on a frozen encoder (Franka Kitchen), the classic protocol cell by default::

    python robot/train_bc.py encoder=egovideo_b encoder.checkpoint=base_best.pt
    python robot/train_bc.py encoder=state                      # privileged upper bound
    python robot/train_bc.py encoder=egovideo_tiny train.steps=300 eval.every=100 eval.episodes=10
    python robot/train_bc.py --multirun encoder=r3m env.task=microwave,slide_cabinet seed=0,1,2 \
        hydra.sweep.dir=multirun/r3m && python robot/summarize.py multirun/r3m

Config: configs/robot/train_bc.yaml (groups encoder/, env/, policy/). Outputs in out:
config.yaml (resolved config), overrides.yaml (the command line), results.json,
success_curve.png, checkpoints/<step>/policy.pt (+ last), videos/, wandb/ (offline unless
wandb.mode=online). Hydra writes nothing there itself (``hydra.output_subdir: null``, job log
to stdout), so a run refused by a check leaves out as it was; see robot/run_bc.py for the
folder lock, resume and ``overwrite=true``. ``egohod-train-bc ...`` is the same command, installed with
the package. ``out_dir=`` (the setting's old name) is still accepted, with a FutureWarning.
"""
import os
import sys

import hydra
from hydra.core.hydra_config import HydraConfig

from egohod.config import rename_arguments
from robot.config import CONFIG_ROOT, RENAMED, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONFIG_ROOT), config_name="robot/train_bc")
def hydra_main(cfg) -> None:
    from robot.run_bc import train_bc

    os.environ.setdefault("WANDB_SILENT", "true")
    hc = HydraConfig.get()
    # run: out (= hydra.run.dir); multirun: each job's own sweep subdir
    train_bc(cfg, hc.runtime.output_dir, overrides=list(hc.overrides.task))


def main() -> None:
    sys.argv[1:] = rename_arguments(sys.argv[1:], RENAMED, "robot/train_bc.py")
    hydra_main()


if __name__ == "__main__":
    main()
