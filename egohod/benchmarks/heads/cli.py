"""``egohod head <task> key=value ...``: train and run heads on frozen features.

    egohod head segmentation data=DIR features=DIR head=mstcn|asformer|linear split=1|2|3|4|all out=DIR
    egohod head nlq data=DIR features=DIR out=DIR [text_checkpoint=PATH]
    egohod head mq data=DIR features=DIR out=DIR

Each task is a ``<task>_main(argv) -> exit code`` function listed in :data:`TASKS`. Library
errors (bad settings, files that do not fit, a folder in use) become exit code 2 with the
message; the results table and the path of ``metrics.json`` are printed on success.
"""
from __future__ import annotations

import importlib
import json
import sys

__all__ = ["main", "segmentation_main", "nlq_main", "mq_main", "TASKS"]

# task -> (module, function, one-line help)
TASKS = {
    "segmentation": ("egohod.benchmarks.heads.cli", "segmentation_main",
                     "action segmentation (MS-TCN / ASFormer) on the MS-TCN data layout"),
    "nlq": ("egohod.benchmarks.heads.cli", "nlq_main", "Ego4D natural language queries (VSLNet) on clip features"),
    "mq": ("egohod.benchmarks.heads.cli", "mq_main", "Ego4D moment queries (ActionFormer-style detector) on clip features"),
}


def _usage() -> str:
    return "usage: egohod head <task> key=value ...\n\ntasks:\n" + "\n".join(
        f"  {k:13s} {v[2]}" for k, v in TASKS.items())


def main(argv: list[str]) -> int:
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0 if argv else 2
    task, rest = argv[0], argv[1:]
    if task not in TASKS:
        print(f"egohod head: unknown task {task!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module, func, _ = TASKS[task]
    return int(getattr(importlib.import_module(module), func)(rest) or 0)


def _load_and_run(task: str, load, run, argv: list[str], extra_errors: tuple = ()):
    """``run(load(argv))``, or None after printing ``egohod head <task>: <error>`` for the errors a
    user fixes (bad settings, files that do not fit, a folder in use, ``extra_errors``)."""
    from ...fileio import FolderLockedError
    from ...models.checkpoint_io import CheckpointError
    from .common import HeadConfigError, HeadDataError, HeadRunError

    try:
        return run(load(argv))
    except (HeadConfigError, HeadDataError, HeadRunError, FolderLockedError, CheckpointError, *extra_errors) as e:
        print(f"egohod head {task}: {e}", file=sys.stderr)
        return None


def segmentation_main(argv: list[str]) -> int:
    from ..results import json_safe, markdown_table
    from .segmentation import METRIC_KEYS, load_segmentation_config, run_segmentation

    result = _load_and_run("segmentation", load_segmentation_config, run_segmentation, argv)
    if result is None:
        return 2
    if result["random_weights"]:
        print(f"features from {result['features']['encoder']}: RANDOM WEIGHTS (egohod extract without a checkpoint): "
              "these numbers say nothing about a trained encoder")
    print(markdown_table(result["table"], ["split", "head", "features", *METRIC_KEYS]), end="")
    print(json.dumps(json_safe(result["metrics"])))
    print(f"metrics: {result['metrics_json']}\nresults: {result['results_json']}\ntable:   {result['results_md']}")
    return 0


def nlq_main(argv: list[str]) -> int:
    from ...safe_load import CorruptFileError, UnsafeFileError
    from ..results import json_safe, markdown_table
    from .nlq import load_nlq_config, run_nlq

    record = _load_and_run("nlq", load_nlq_config, run_nlq, argv, (UnsafeFileError, CorruptFileError))
    if record is None:
        return 2
    if record["random_weights"]:
        print("RANDOM WEIGHTS: the features or the query text tower come from a model without a checkpoint "
              f"(features: {record['weights']}, text: {record['text_weights']}); these numbers say nothing about "
              "a trained encoder")
    print(markdown_table([record["table_row"]]), end="")
    print(json.dumps(json_safe(record["metrics"])))
    print(f"predictions: {record['predictions']}\nresults: {record['files']['results']}\n"
          f"table:   {record['files']['table']}")
    return 0


def mq_main(argv: list[str]) -> int:
    from ...safe_load import CorruptFileError, UnsafeFileError
    from ..results import json_safe, markdown_table
    from .mq import load_mq_config, run_mq

    record = _load_and_run("mq", load_mq_config, run_mq, argv, (UnsafeFileError, CorruptFileError))
    if record is None:
        return 2
    if record["random_weights"]:
        print(f"features from {record['encoder']}: RANDOM WEIGHTS (egohod extract without a checkpoint): "
              "these numbers say nothing about a trained encoder")
    print(markdown_table([record["table_row"]]), end="")
    print(json.dumps(json_safe(record["metrics"])))
    print(f"predictions: {record['predictions']}\nground truth: {record['ground_truth']}\n"
          f"results: {record['files']['results']}\ntable:   {record['files']['table']}")
    return 0
