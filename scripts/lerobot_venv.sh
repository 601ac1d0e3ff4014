#!/usr/bin/env bash
# A separate virtual environment with the real LeRobot, for checking egohod's LeRobot export and
# policy plugin against it. LeRobot cannot share egohod's environment: 0.4.4 (the newest for
# Python 3.11) needs torch 2.10 and huggingface-hub < 0.36, 0.5+ needs Python >= 3.12.
#
#   scripts/lerobot_venv.sh [VENV_DIR]          # default .venv-lerobot (git-ignored)
#   LEROBOT_VERSION=0.6.1 PYTHON=python3.12 scripts/lerobot_venv.sh
#
# Installs lerobot from the default package index, then egohod without its training extras
# (--no-deps: the encoder only needs torch, numpy, safetensors, omegaconf, ftfy, regex, tqdm, rich
# and open_clip_torch for the tokenizer, installed explicitly), then the plugin package
# robot/integrations/lerobot_policy_egohod. Re-running it reuses the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${1:-.venv-lerobot}
LEROBOT_VERSION=${LEROBOT_VERSION:-0.6.1}
find_python() {
  if [[ -n "${PYTHON:-}" ]]; then echo "$PYTHON"; return; fi
  for p in python3.13 python3.12 /root/.pyenv/versions/3.12*/bin/python3.12 /usr/bin/python3.12; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      command -v "$p"; return
    fi
  done
  echo "no Python >= 3.12 found (LeRobot >= 0.5 needs it); set PYTHON=/path/to/python3.12" >&2
  exit 1
}
PY=$(find_python)
if [[ ! -x "$VENV/bin/python" ]]; then
  "$PY" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --upgrade pip >/dev/null
"$VENV/bin/python" -m pip install "lerobot[dataset,training]==${LEROBOT_VERSION}"
"$VENV/bin/python" -m pip install safetensors omegaconf hydra-core ftfy regex tqdm rich open_clip_torch
"$VENV/bin/python" -m pip install --no-deps -e .
"$VENV/bin/python" -m pip install --no-deps -e robot/integrations/lerobot_policy_egohod
"$VENV/bin/python" -c "import lerobot, torch; print('lerobot', lerobot.__version__, 'torch', torch.__version__)"
