"""Zero-shot text <-> video retrieval of a checkpoint on the held-out clips of a pretraining config.

    python -m pretrain.eval_retrieval --config-name small_kitchen data.csv=/work/corpus/hod.csv \\
        data.video_root=/work/corpus/videos model.checkpoint=runs/x/checkpoints/last/model.pt \\
        +out=retrieval.json
    python -m pretrain.eval_retrieval --config-name small_kitchen ... model.checkpoint=null   # RANDOM WEIGHTS (seed train.seed)

The held-out clips are the ones the training run held out (``data.holdout_fraction`` and
``train.seed`` pick the same videos), embedded with the evaluation transform on one process, and
scored by :func:`pretrain.validate.validate_retrieval` (R@1/R@5 both ways and caption-equality mAP,
percent), for the dual-path embedding the run trains (``cotrain``/``adapter`` stages) and for the
4-frame fast path alone. ``data.csv`` chooses the captions: give another CSV of the same clips (e.g.
the coarse narrations) to score a model on captions it was not trained on.
"""
from __future__ import annotations

import json
import sys

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from egohod.data.datasets import ResumableSampler
from egohod.device import resolve_device
from egohod.fileio import atomic_write_text
from pretrain.config import PretrainConfig, rename_arguments, validate
from pretrain.data import build_dataset, build_loader, load_records
from pretrain.distributed import DistInfo
from pretrain.train import CONFIG_DIR, build_model
from pretrain.validate import validate_retrieval


def evaluate(cfg: PretrainConfig) -> dict:
    import egohod

    if cfg.data.holdout_fraction <= 0:
        raise ValueError("data.holdout_fraction is 0: there are no held-out clips to score")
    info = DistInfo(device=resolve_device(cfg.train.device, "train.device"))
    model, _, _ = build_model(cfg, info)
    _, val = load_records(cfg.data, cfg.train.seed)
    tok = egohod.get_tokenizer(cfg.model.name)
    ds = build_dataset(val, cfg.data, model.input_spec, tok, False, cfg.train.seed)
    sampler = ResumableSampler(len(ds), 1, 0, cfg.train.seed, shuffle=False)
    loader = build_loader(ds, sampler, cfg.data, min(cfg.val.batch_size, len(ds)), info.device)
    dual = cfg.model.stage != "contrastive"
    out = {"checkpoint": cfg.model.checkpoint, "weights": getattr(model, "weights", None),
           "random_weights": cfg.model.checkpoint is None, "captions": cfg.data.csv, "clips": len(ds),
           "distinct_captions": len({r.texts[0] for r in val})}
    if dual:
        out["dual"] = validate_retrieval(model, loader, info.device, True, max_clips=cfg.val.max_clips)
    out["fast"] = validate_retrieval(model, loader, info.device, False, max_clips=cfg.val.max_clips)
    return out


@hydra.main(config_path=str(CONFIG_DIR), config_name="default", version_base=None)
def hydra_main(dcfg: DictConfig) -> None:
    out_path = dcfg.get("out")
    OmegaConf.set_struct(dcfg, False)
    dcfg.pop("out", None)
    cfg: PretrainConfig = OmegaConf.to_object(dcfg)
    validate(cfg)
    res = evaluate(cfg)
    label = "RANDOM WEIGHTS" if res["random_weights"] else res["checkpoint"]
    text = json.dumps(res, indent=1)
    print(text)
    for path in ("dual", "fast"):
        if path in res:
            m = res[path]
            print(f"{label} [{path}]: " + ", ".join(f"{k} {v:.1f}" for k, v in m.items()))
    if out_path:
        atomic_write_text(out_path, text + "\n")


def main() -> None:
    sys.argv[1:] = rename_arguments(sys.argv[1:], "pretrain/eval_retrieval.py")
    hydra_main()


if __name__ == "__main__":
    main()
