# Sourced by fetch-mkl.sh and fetch-cuda.sh: `fetch_wheels REQUIREMENTS DEST WHAT` downloads the
# pinned Linux x86-64 wheels of REQUIREMENTS (hashes required) and unpacks them into DEST.
fetch_wheels() {
  local requirements="$1" dest="$2" what="$3"
  local python="${PYTHON:-python3}"
  if ! command -v "$python" >/dev/null; then
    echo "error: $python not found; install Python 3 with pip, or set PYTHON=/path/to/python" >&2
    exit 1
  fi
  if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
    echo "error: the $what wheels pinned here are for Linux x86-64; this is $(uname -s)-$(uname -m)" >&2
    exit 1
  fi
  mkdir -p "$dest/wheels"
  "$python" -m pip download --quiet --no-deps --require-hashes -r "$requirements" -d "$dest/wheels"
  local wheel
  for wheel in "$dest"/wheels/*.whl; do
    "$python" -m zipfile -e "$wheel" "$dest"
  done
  rm -rf "$dest/wheels"
}
