#!/usr/bin/env bash
# Make the reference venv for `lab bench-host --compare` under target/bench-venv (or $1).
# Run from anywhere; idempotent (pip skips what is already installed).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/bench-venv}"
python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null; then
  echo "error: $python not found; install Python 3.10+ or set PYTHON=/path/to/python" >&2
  exit 1
fi
if [ ! -x "$venv/bin/python" ]; then
  echo "creating venv $venv"
  "$python" -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install -r "$here/requirements.txt"
"$venv/bin/python" -c "import torch, transformers, peft, sentence_transformers, gguf; print('reference venv ready:', torch.__version__, transformers.__version__)"
