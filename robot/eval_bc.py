"""Re-evaluate a trained BC policy::

    python robot/eval_bc.py checkpoint=outputs/train_bc/<run>/checkpoints/last eval.episodes=50

The checkpoint names its encoder (and the sha256 of the encoder weights, checked against the
file), head, normalisation and environment; ``encoder_checkpoint=PATH`` points at moved weights.
The checkpoint is read without running code from it; ``trust_pickle=true`` lifts that for files
you trust.
Results go to ``<run>/eval/<step>/results.json`` unless ``out`` is given (``out_dir=``, its old
name, is still accepted). ``egohod-eval-bc ...`` is the same command, installed with the package.
"""
import os
import sys

import hydra

from egohod.config import rename_arguments
from robot.config import CONFIG_ROOT, RENAMED, register_configs

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONFIG_ROOT), config_name="robot/eval_bc")
def hydra_main(cfg) -> None:
    from robot.run_bc import evaluate_checkpoint

    os.environ.setdefault("WANDB_SILENT", "true")
    evaluate_checkpoint(cfg.checkpoint, cfg.eval, cfg.device, cfg.encoder_checkpoint, cfg.out, cfg.trust_pickle)


def main() -> None:
    sys.argv[1:] = rename_arguments(sys.argv[1:], RENAMED, "robot/eval_bc.py")
    hydra_main()


if __name__ == "__main__":
    main()
