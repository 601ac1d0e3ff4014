"""robomimic's own training loop on an egohod demo file, with the EgoVideo core and kitchen rollouts::

    egohod-robomimic-train --dataset demos/microwave_left.hdf5 --encoder egovideo_b \\
        --checkpoint base_best.pt --output-dir runs/robomimic            # BC
    egohod-robomimic-train --dataset demos/microwave_left.hdf5 --rnn      # BC-RNN
    egohod-robomimic-train --config my_robomimic.json                     # any robomimic config

It is ``robomimic/scripts/train.py`` with two differences: :mod:`robot.integrations.robomimic`
is imported first (``EgoVideoCore`` and the kitchen env type exist), and an error ends the
command with a non-zero status instead of robomimic's printed "run failed" and status 0.
Without ``--config`` the config is :func:`kitchen_config`: robomimic's defaults for the algorithm,
the file's cameras as ``rgb`` keys through ``EgoVideoCore``, ``proprio`` as low-dim input, the
file's ``mask/train`` / ``mask/valid`` split and rollouts in the kitchen env of the file's
``env_args``. ``--write-config PATH`` writes that config as robomimic JSON and stops.

Outputs go to ``<output-dir>/<name>/<timestamp>/`` (robomimic's layout); an existing
``<output-dir>/<name>`` is an error (robomimic would stop and ask whether to delete it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from robot.demos import RGB_PREFIX, read_env_args


def _split_sizes(dataset: str | Path) -> dict[str, int]:
    import h5py

    with h5py.File(dataset, "r") as f:
        if "mask" not in f:
            return {}
        return {k: len(f["mask"][k]) for k in f["mask"]}


def _mask_samples(dataset: str | Path, key: str) -> int:
    import h5py

    with h5py.File(dataset, "r") as f:
        if f"mask/{key}" not in f:
            raise ValueError(f"{dataset} has no mask/{key}")
        return sum(int(f["data"][n.decode()].attrs["num_samples"]) for n in f[f"mask/{key}"][()])


def kitchen_config(dataset: str | Path, algo: str = "bc", encoder: str = "egovideo_b",
                   checkpoint: str | None = None, seed: int = 0, trainable: bool = False,
                   rnn: bool = False, cameras: list[str] | None = None, low_dim=("proprio",),
                   output_dir: str | Path = "robomimic_runs", name: str | None = None,
                   feature_dimension: int | None = None):
    """A robomimic config (unlocked) for an egohod demo file with ``EgoVideoCore`` on its cameras.

    ``rnn=True`` is BC-RNN (robomimic's ``algo.rnn``, sequence length 10). ``seed`` seeds both
    robomimic's training and the random encoder weights when there is no ``checkpoint``.
    """
    from robomimic.config import config_factory

    import robot.integrations.robomimic  # noqa: F401  (the core and env type must exist)

    env_args = read_env_args(dataset)
    cams = list(cameras if cameras is not None else env_args.get("cameras") or [])
    splits = _split_sizes(dataset)
    if "train" not in splits:
        raise ValueError(f"{dataset} has no mask/train split; add one with "
                         f"`python -m robot.demo_sources robomimic-fields {dataset}`")
    config = config_factory(algo)
    config.unlock()
    config.train.data = str(Path(dataset).resolve())
    config.train.output_dir = str(Path(output_dir).resolve())  # robomimic reads relative paths from its own folder
    config.train.seed = int(seed)
    config.train.hdf5_filter_key = "train"
    config.train.hdf5_validation_filter_key = "valid" if splits.get("valid") else None
    config.experiment.validate = bool(splits.get("valid"))
    config.experiment.name = name or f"{Path(dataset).stem}_{encoder}{'_rnn' if rnn else ''}"
    config.experiment.rollout.horizon = int(env_args.get("env_kwargs", {}).get("horizon", 50))
    config.observation.modalities.obs.low_dim = list(low_dim)
    config.observation.modalities.obs.rgb = [f"{RGB_PREFIX}{c}" for c in cams]
    config.observation.encoder.rgb.core_class = "EgoVideoCore"
    config.observation.encoder.rgb.core_kwargs.update(
        {"encoder": encoder, "checkpoint": None if checkpoint is None else str(checkpoint), "seed": int(seed),
         "trainable": bool(trainable), "feature_dimension": feature_dimension})
    if rnn:
        config.algo.rnn.enabled = True
        config.algo.rnn.horizon = 10
        config.train.seq_length = 10
    return config


def check_config(config) -> None:
    """Refuse what robomimic would silently drop or prompt about."""
    from robot.integrations.robomimic.core import EgoVideoCore

    run_dir = Path(config.train.output_dir) / config.experiment.name
    if run_dir.exists():
        raise FileExistsError(f"{run_dir} exists (an earlier run); choose another --name or --output-dir")
    for modality, enc in config.observation.encoder.items():
        if enc.get("core_class") == "EgoVideoCore":
            EgoVideoCore.check_kwargs(dict(enc.get("core_kwargs") or {}))
    for key, what in ((config.train.hdf5_filter_key, "training"),
                      (config.train.hdf5_validation_filter_key if config.experiment.validate else None, "validation")):
        if key is None:
            continue
        samples = _mask_samples(config.train.data, key)
        # robomimic's loaders drop the last partial batch: fewer samples than a batch give no batch at all
        if samples < config.train.batch_size:
            raise ValueError(f"{config.train.data}: mask/{key} holds {samples} {what} samples, fewer than "
                             f"train.batch_size={config.train.batch_size}; lower the batch size or add demos")


def load_config(path: str | Path):
    """A robomimic JSON config, read the way robomimic's train script reads it."""
    from robomimic.config import config_factory

    ext = json.loads(Path(path).read_text())
    if "algo_name" not in ext:
        raise ValueError(f"{path}: a robomimic config needs 'algo_name'")
    config = config_factory(ext["algo_name"])
    with config.values_unlocked():
        config.update(ext)
    config.unlock()
    return config


def run(config):
    """Train with robomimic's own loop (``robomimic.scripts.train.train``); errors propagate."""
    import robomimic.utils.torch_utils as TorchUtils
    from robomimic.scripts.train import train

    import robot.integrations.robomimic  # noqa: F401

    if not Path(config.train.output_dir).is_absolute():
        config.train.output_dir = str(Path(config.train.output_dir).resolve())
    check_config(config)
    config.lock()
    train(config, device=TorchUtils.get_torch_device(try_to_use_cuda=config.train.cuda))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="egohod-robomimic-train", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="a robomimic JSON config (as robomimic/scripts/train.py takes)")
    parser.add_argument("--dataset", help="demo file (overrides the config's train.data)")
    parser.add_argument("--algo", default="bc")
    parser.add_argument("--encoder", default="egovideo_b")
    parser.add_argument("--checkpoint", default=None, help="encoder weights; none = RANDOM WEIGHTS of --seed")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--trainable", action="store_true", help="fine-tune the encoder")
    parser.add_argument("--rnn", action="store_true", help="BC-RNN")
    parser.add_argument("--batch-size", type=int, default=None, help="train.batch_size (robomimic's default: 100)")
    parser.add_argument("--output-dir", default="robomimic_runs")
    parser.add_argument("--name", default=None)
    parser.add_argument("--write-config", default=None, help="write the config JSON here and stop")
    args = parser.parse_args(argv)
    try:
        if args.config:
            config = load_config(args.config)
            if args.dataset:
                config.train.data = args.dataset
            if args.name:
                config.experiment.name = args.name
        elif args.dataset:
            config = kitchen_config(args.dataset, args.algo, args.encoder, args.checkpoint, args.seed,
                                    args.trainable, args.rnn, output_dir=args.output_dir, name=args.name)
        else:
            parser.error("give --dataset (and optionally --config)")
        if args.batch_size is not None:
            config.train.batch_size = args.batch_size
        if args.write_config:
            Path(args.write_config).write_text(json.dumps(config, indent=4))
            print(f"wrote {args.write_config}")
            return 0
        rgb = config.observation.encoder.rgb
        if rgb.core_class == "EgoVideoCore" and rgb.core_kwargs.get("checkpoint") is None:
            print(f"EgoVideoCore: RANDOM WEIGHTS (seed {rgb.core_kwargs.get('seed', 0)}; "
                  "no --checkpoint given)")
        run(config)
    except (ValueError, FileNotFoundError, FileExistsError, KeyError) as exc:
        print(f"egohod-robomimic-train: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
