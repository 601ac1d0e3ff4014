#!/bin/bash
# Example: the HOD pipeline as a Slurm job array, one shard per array task, then a merge job.
#   sbatch --array=0-63 configs/hod/slurm_array.sh
#   sbatch --dependency=afterok:<array job id> --wrap "egohod hod merge out=$OUT"
# Each task picks its shard from SLURM_ARRAY_TASK_ID (minus SLURM_ARRAY_TASK_MIN) and the shard
# count from SLURM_ARRAY_TASK_COUNT. A resubmitted task resumes: finished clips are skipped.
#SBATCH --job-name=hod
#SBATCH --gpus=1
#SBATCH --cpus-per-task=8
#SBATCH --time=12:00:00
set -euo pipefail
CLIPS=${CLIPS:?set CLIPS=path/to/clips.csv}
VIDEOS=${VIDEOS:?set VIDEOS=path/to/video/root}
OUT=${OUT:?set OUT=path/to/output}
CKPT=${CKPT:?set CKPT=path/to/faster_rcnn_1_8_132028.pth}
egohod hod run clips="$CLIPS" videos="$VIDEOS" out="$OUT" \
  detector=100doh detector.checkpoint="$CKPT" \
  narrator=openai narrator.base_url="${OPENAI_BASE_URL:-http://127.0.0.1:8000/v1}" narrator.model="${OPENAI_MODEL:?set OPENAI_MODEL}" \
  progress=false
