#!/usr/bin/env bash
# Install the third-party peer server for `make test-peers`: llama-cpp-python (its OpenAI-compatible
# server; llama.cpp is compiled from PyPI's source distribution with the machine's cmake and gcc)
# into its own venv, .venv-peers at the repository root, and write its tiny random-weight model.
# Idempotent: a second run reinstalls nothing, and pip's wheel cache makes a rebuild of a fresh
# venv on the same machine take seconds. Nothing but PyPI is reached; no model is downloaded.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
venv=${CONTINUUM_PEERS_VENV:-$repo/.venv-peers}
python=${PYTHON:-python3}
req=$here/requirements.txt
model=${CONTINUUM_PEERS_MODEL:-$venv/model/tiny.gguf}

# Only what the tests need, compiled without optimisation: a 64-wide model needs no speed,
# and this is ~3x quicker to build on 2 cores than the default -O3 (llava/mtmd and
# llamafile's sgemm are left out too). The server and its behaviour are the same.
export CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_LLAMAFILE=OFF -DCMAKE_C_FLAGS_RELEASE=-DNDEBUG -DCMAKE_CXX_FLAGS_RELEASE=-DNDEBUG"
stamp_text="$(cat "$req")
CMAKE_ARGS=$CMAKE_ARGS"

if [ ! -x "$venv/bin/python" ]; then
  "$python" -m venv "$venv"
fi
if [ "$(cat "$venv/.installed" 2>/dev/null)" != "$stamp_text" ]; then
  echo "peers: installing $(grep -c '==' "$req") pinned packages into $venv" \
       "(llama.cpp is compiled unless pip has the wheel cached: minutes on 2 cores)"
  start=$(date +%s)
  # (this machine's pip configuration names local find-links folders that may be absent: not ours)
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --progress-bar off -r "$req" 2>&1 |
    { grep -v "^WARNING: Location 'file://.*' is ignored" || true; }
  printf '%s' "$stamp_text" >"$venv/.installed"
  echo "peers: installed in $(($(date +%s) - start)) s"
fi

start=$(date +%s)
"$venv/bin/python" "$here/make_model.py" "$model" --check
"$venv/bin/python" -c "import llama_cpp, llama_cpp.server.app; print('peers: llama-cpp-python', llama_cpp.__version__)"
echo "peers: ready in $(($(date +%s) - start)) s ($(du -sh "$venv" | cut -f1) in $venv)"
