"""Fine-tuning recipes on the pretraining stack: EK-100 MIR, EK-100 action recognition, EGTEA.

``egohod-finetune <ek100-mir|ek100-cls|egtea> encoder=... checkpoint=... data=DIR out=DIR``
(:mod:`pretrain.finetune.train`). The loop, checkpoints, resume, run folder lock, logging and
process group are those of :mod:`pretrain.train`; this package adds the task data, heads,
losses and per-epoch evaluation through the scorers of :mod:`egohod.benchmarks.scorers`.
See ``docs/finetune.md``.
"""
