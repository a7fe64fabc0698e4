#!/usr/bin/env bash
# Fetch Intel MKL through pip into a folder that `--features mkl` links against:
#
#   bash scripts/fetch-mkl.sh            # into target/mkl (or give a folder)
#   MKLROOT=$PWD/target/mkl cargo build --release --features mkl
#
# Why: on Intel CPUs MKL's sgemm outruns the gemm crate that candle uses by default (README,
# performance section). Linux x86-64 only; the wheels unpack to about 1.1 GB.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
dest="${1:-$root/target/mkl}"
source "$here/fetch-wheels.sh"
fetch_wheels "$here/mkl-requirements.txt" "$dest" MKL
# intel-mkl-src links whichever libiomp5 the linker meets first. Without the shared one it takes
# the static one, so the binary runs without LD_LIBRARY_PATH.
find "$dest" -name 'libiomp5*.so*' -delete
if ! find "$dest" -name libmkl_core.a | grep -q . || ! find "$dest" -name mkl.h | grep -q .; then
  echo "error: $dest has no libmkl_core.a or mkl.h after unpacking; delete it and run again" >&2
  exit 1
fi
echo "MKL is in $dest. Build with:"
echo "  MKLROOT=$dest cargo build --release --features mkl"
