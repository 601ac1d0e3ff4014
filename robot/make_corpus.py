"""Write the egocentric kitchen corpus: expert episodes as chunked videos, Ego4D-style clip
narrations and simulator-projected hand-object detections, the layout the HOD pipeline and the
pretraining loader read from real data::

    python robot/make_corpus.py out=/work/corpus                       # 8 tasks x 32 episodes, 4 cameras, 112 px
    python robot/make_corpus.py out=corpus_small episodes=2 tasks=[microwave,kettle] cameras=[ego]

    egohod hod run clips=/work/corpus/clips.csv videos=/work/corpus/videos out=runs/hod_corpus \
        detector=precomputed detector.format=100doh detector.root=/work/corpus/detections

Episodes come from the scripted experts (``envs/experts``) with DART action noise and the usual
kitchen randomisation, through the episode loop of ``robot.demo_gen`` (successful seeds
only, one rendering env per worker process). Seeds: task ``k`` of
``envs.experts.list_experts()`` tries ``first_seed + k * 10_000 + i``; they are checked against
every seed BC trains or evaluates on (``robot.corpus.reserved_seed_ranges``). Frames are the
control steps (12.5 per second: one frame per 0.08 s step), so a 50-step episode is a 4-second
video.

``out/`` holds::

    videos/{video_id}/0000.mp4       one video per (episode, camera): video_id = <task>_s<seed>_<camera>
    detections/{video_id}.npz        100DOH arrays per frame (egohod/hod/detectors/precomputed.py)
    clips.csv                        HOD CSV: video_id,start_second,end_second,text,dataset,uid
    manifest.json                    seeds, tasks, cameras, fps, size, counts, expert success, cost, command
    episodes.jsonl                   one line per attempted seed (what a rerun resumes from)
    request.json                     the settings; a rerun with other settings is refused

An interrupted run resumes where it stopped (same command); ``overwrite=true`` starts over.
``egohod-make-corpus out=...`` is the same command, installed with the package; the job itself is
:func:`robot.corpus_gen.make_corpus`.
"""
import sys
from pathlib import Path

import hydra

from egohod.fileio import FolderLockedError
from robot.config import CONFIG_ROOT
from robot.corpus_gen import make_corpus, register_configs, summary_table

register_configs()


@hydra.main(version_base="1.3", config_path=str(CONFIG_ROOT), config_name="robot/make_corpus")
def main(cfg) -> None:
    try:
        manifest = make_corpus(cfg)
    except (ValueError, RuntimeError, KeyError, FolderLockedError) as exc:
        print(f"make_corpus: error: {exc}", file=sys.stderr)
        sys.exit(2)
    print(summary_table(manifest))
    print(f"corpus: {Path(cfg.out).resolve()}\nHOD: {manifest['hod_command']}")


if __name__ == "__main__":
    main()
