#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: build the GPU path, run the CUDA parity tests (the tiny
# models of every family must score, generate, train and embed on the GPU as on the CPU), then
# run one small experiment on each device and check that both pick the same items.
#
#   bash scripts/cuda-check.sh          # after `bash scripts/fetch-cuda.sh` if nvcc is missing
#
# Needs the driver (nvidia-smi) and libcublas/libcurand/libnvrtc on LD_LIBRARY_PATH.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
if ! command -v nvcc >/dev/null && [ -f target/cuda/env.sh ]; then
  source target/cuda/env.sh
fi
command -v nvcc >/dev/null || { echo "error: no nvcc; run bash scripts/fetch-cuda.sh first" >&2; exit 1; }
nvidia-smi -L
cargo test --release --features cuda --lib cuda_tests -- --test-threads 1
cargo build --release --features cuda
work="$(mktemp -d)"
for device in cuda cpu; do
  cat >"$work/tiny-$device.toml" <<TOML
name = "tiny-$device"
seeds = [0, 1]
results_dir = "$work/results"

[data]
path = "$root/data/aeslc"
input_field = "email"
output_field = "subject"
test_size = 8
pool_size = 40
max_input_chars = 300

[model]
name = "tiny-random-llama"
max_input_tokens = 96
max_new_tokens = 6
device = "$device"

[encoder]
path = "$work/unused-encoder"

[train]
epochs = 2
batch_size = 4

[al]
init_size = 4
query_size = 4
iterations = 3

[eval]
metrics = ["rouge1"]

[[strategy]]
name = "random"
script = "$root/strategies/random.rhai"

[[strategy]]
name = "mnlp"
script = "$root/strategies/mnlp.rhai"
TOML
  LAB_QUIET=1 cargo run --release --features cuda --quiet -- bench "$work/tiny-$device.toml" --fresh --profile | tail -6
done
python3 - "$work/results" <<'PY'
import json, pathlib, sys
results = pathlib.Path(sys.argv[1])
ok = True
for cell in ["random/seed-0", "random/seed-1", "mnlp/seed-0", "mnlp/seed-1"]:
    gpu, cpu = ([json.loads(l) for l in open(results / f"tiny-{d}" / cell / "selected.jsonl")]
                for d in ("cuda", "cpu"))
    same = len(gpu) == len(cpu) and all(g["ids"] == c["ids"] for g, c in zip(gpu, cpu))
    diff = max((abs(p - q) for g, c in zip(gpu, cpu)
                for p, q in zip(g.get("scores") or [], c.get("scores") or [])), default=0.0)
    print(f"{cell}: {len(gpu)} iterations, same items on GPU and CPU: {same}, "
          f"largest score difference {diff:.3g}")
    ok &= same
sys.exit(0 if ok else 1)
PY
rm -rf "$work"
