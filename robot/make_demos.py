"""Generate Franka Kitchen demonstrations with the scripted experts (robomimic HDF5 layout)::

    python robot/make_demos.py task=microwave camera=left num_demos=25 out=demos/microwave_left.hdf5
    python robot/make_demos.py task=knob cameras=[left,right] image_size=128 workers=2
    python robot/make_demos.py task=kettle cameras=[] num_demos=100        # state only, no rendering
    python robot/make_demos.py task=microwave camera=left valid_ratio=0.2 split_seed=1   # robomimic's split

Only successful expert episodes are kept (seeds ``seed, seed + 1, ...``); what a file holds, and
when an existing ``out`` is reused, is described in :mod:`robot.demo_gen`, the library behind this
command, which the BC scripts call to generate-and-cache demos. Every file has ``next_obs`` and a
seeded ``mask/train`` / ``mask/valid`` split, so robomimic reads it with its defaults. ``egohod-make-demos task=...`` is
the same command, installed with the package::

    from robot.demo_gen import generate_demos
    path = generate_demos("microwave", ["left"], num_demos=25, image_size=224, seed=0,
                          workers=2, out="demos/microwave_left_25.hdf5")
"""
import sys

import hydra

from robot.config import CONFIG_ROOT
from robot.demo_gen import register_configs, run

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONFIG_ROOT), config_name="robot/make_demos")
def main(cfg) -> None:
    try:
        run(cfg)
    except (ValueError, RuntimeError, KeyError) as exc:
        print(f"make_demos: error: {exc}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
