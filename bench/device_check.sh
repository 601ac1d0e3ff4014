#!/usr/bin/env bash
# Every GPU check of the project in one call, JSON into $OUT: install <= 200 s + checks <= 340 s
# (their time limits add up to 540 s, the 9 minutes a device session can spend on it). Checks
# after those (section 7) are optional: check() skips any check whose limit would pass BUDGET_S.
#
#   bash bench/device_check.sh            # on the GPU machine; OUT defaults to ./device_check
#
# Each check runs under its own time limit and writes <name>.json (the bench's own JSON) and
# <name>.log; a check that fails or times out is recorded in summary.json and the rest go on.
# Installs the pinned stack first when the machine is bare (make venv), unless SKIP_INSTALL=1.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-device_check}
mkdir -p "$OUT"
export MUJOCO_GL=${MUJOCO_GL:-egl} WANDB_MODE=offline
START=$(date +%s)

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  timeout 200 make venv > "$OUT/install.log" 2>&1 || echo "install failed or timed out (see install.log)" >&2
fi
PY=${PY:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$OUT/nvidia_smi.csv" 2>&1 || true

declare -a RESULTS=()
BUDGET_S=${BUDGET_S:-540}  # the whole script, install included
check() {  # check NAME LIMIT_S CMD...
  local name=$1 limit=$2; shift 2
  local t0=$(date +%s)
  if (( t0 - START + limit > BUDGET_S )); then  # optional checks (the last ones) run only when time is left
    RESULTS+=("{\"check\": \"$name\", \"skipped\": \"needs ${limit} s, $(( BUDGET_S - t0 + START )) s left of ${BUDGET_S}\"}")
    return
  fi
  timeout "$limit" "$@" > "$OUT/$name.json.tmp" 2> "$OUT/$name.log"
  local rc=$?
  # the benches print one JSON document on stdout; keep it only when it parses
  if "$PY" -c "import json,sys; json.load(open(sys.argv[1]))" "$OUT/$name.json.tmp" 2>/dev/null; then
    mv "$OUT/$name.json.tmp" "$OUT/$name.json"
  else
    mv "$OUT/$name.json.tmp" "$OUT/$name.stdout"
  fi
  RESULTS+=("{\"check\": \"$name\", \"rc\": $rc, \"seconds\": $(( $(date +%s) - t0 ))}")
}

# 1. the gpu-marked tests (pretraining step on CUDA, 100DOH on CUDA)
check gpu_tests 90 "$PY" -m pytest -m gpu -q -p no:cacheprovider --junitxml="$OUT/gpu_tests.xml"
# 2. encoders: frozen ViT-B inference, B/L training step (the 520 clips/s anchor), compile
check encoder_b_infer 30 "$PY" bench/encoder_throughput.py --variant egovideo_b --batch 128 --frames 1 --dtype bf16 --device cuda
check encoder_b_train 60 "$PY" bench/encoder_throughput.py --variant egovideo_b --batch 128 --dtype bf16 --backward --text --compile --device cuda
check encoder_small_train 25 "$PY" bench/encoder_throughput.py --variant egovideo_small --batch 64 --dtype bf16 --backward --text --dual --device cuda
# 3. one pretraining step as training runs it (AdamW included), B and dual path
check pretrain_step_b 30 "$PY" bench/pretrain_step.py --model egovideo_b --batch 128 --device cuda --precision bf16
check pretrain_step_b_dual 30 "$PY" bench/pretrain_step.py --model egovideo_b --batch 64 --slow-frames 16 --device cuda --precision bf16
# 4. BC: cached features vs in-loop encoder, and kitchen rendering with NVIDIA EGL
check bc_pipeline 30 "$PY" bench/bc_pipeline.py --encoder egovideo_b --steps 5000 --inloop-steps 100 --device cuda
check kitchen_render 20 "$PY" bench/kitchen_render.py --steps 100
# 5. HOD: 100DOH detector speed (random weights: timing only)
check hod_100doh 15 "$PY" bench/hod_throughput.py --detector 100doh --random-weights --device cuda --fp16
# 6. action segmentation: MS-TCN on one GTEA-sized fold (21 train videos, ~1,000 frames, 2048-d); training
#    stops after the epoch that passes 3 s (the JSON says how many of the 50 epochs ran and s/epoch)
check head_segmentation_gtea 10 "$PY" bench/head_segmentation.py --device cuda --max-seconds 3
# 7. optional, run when the checks above left time (install skipped or fast; limits above are upper bounds).
# Fine-tuning EgoVideo-B (pretrain/finetune, RANDOM WEIGHTS: timing only): up to 300 EK-100 CLS steps
#    (batch 16 x 16 frames, bf16, layer decay) within 35 s and 100 MIR steps within 15 s; the JSON projects
#    one EK-100 epoch (67,217 clips) on one GPU
check finetune_step_b_cls 60 "$PY" bench/finetune_step.py --model egovideo_b --task ek100-cls --batch 16 --steps 300 \
  --max-seconds 35 --device cuda
check finetune_step_b_mir 40 "$PY" bench/finetune_step.py --model egovideo_b --task ek100-mir --batch 16 --steps 100 \
  --max-seconds 15 --device cuda
# Ego4D NLQ / MQ heads at full size (VSLNet batch 32 x 128 positions; ActionFormer batch 2 x 1024
#    features, 110 classes): seconds per training step on random inputs
check head_ego4d 30 "$PY" bench/head_ego4d.py --device cuda --steps 10
# One real BC cell of egovideo_b (RANDOM WEIGHTS: timing only) with its render / encode / policy /
#    train split and the projected classic cell, then a 2-task x 2-camera x 1-seed sweep (robot/sweep.py)
check bc_cell_b 75 "$PY" bench/bc_pipeline.py --cell --encoder egovideo_b --device cuda --eval-precision bf16 \
  --steps 1000 --episodes 32 --num-envs 16
check bc_sweep_b 120 bash -c '"$0" -m robot.sweep encoder=egovideo_b tasks=microwave,slide_cabinet cameras=left,right \
  demos=5 seeds=0 workers=4 train.steps=500 eval.every=250 eval.episodes=8 eval.heldout_episodes=8 eval.videos=0 \
  eval.precision=bf16 device=cuda wandb.mode=disabled out="$1/bc_sweep" >&2 && cat "$1/bc_sweep/sweep.json"' "$PY" "$OUT"

{
  echo "{\"seconds\": $(( $(date +%s) - START )), \"host\": \"$(hostname)\", \"checks\": ["
  (IFS=,; echo "${RESULTS[*]}")
  echo "]}"
} > "$OUT/summary.json"
cat "$OUT/summary.json"
