#!/usr/bin/env bash
# One-time set-up, sourced by main.sh and test.sh: a virtual environment in .venv with
# PyTorch (the CPU build where there is no NVIDIA GPU) and cellnb with its extras, plus the
# system libraries for headless 3D rendering (EGL) where this user may install them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-python3}
VENV=${CELLNB_VENV:-.venv}

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# System packages (Debian/Ubuntu names): EGL for headless pyvista renders, g++ for
# torch.compile's CPU kernels (the quick profile's train.compile).
packages=()
ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' || packages+=(libegl1 libegl-mesa0 libgl1-mesa-dri libgomp1)
command -v "${CXX:-g++}" >/dev/null || packages+=(g++)
if [ ${#packages[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "setup: installing ${packages[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
  else
    echo "setup: warning: missing ${packages[*]}: 3D renders need EGL, compiled training needs g++" >&2
  fi
fi

if ! "$PY" -c "import torch" 2>/dev/null; then
  if command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; then
    echo "setup: NVIDIA GPU found, installing the default (CUDA) PyTorch build"
    "$PY" -m pip install -q torch
  else
    # No GPU: take the CPU build, never the multi-GB CUDA build that PyPI serves for Linux.
    # A local CPU wheel (in pip's find-links) is used when present, else PyTorch's CPU index.
    echo "setup: no GPU, installing the CPU build of PyTorch"
    TORCH_CPU="torch==2.13.0"  # the CPU wheel this workplace keeps on disk
    if "$PY" -m pip install -q --no-deps --no-index "$TORCH_CPU" 2>/dev/null; then
      "$PY" -m pip install -q "$TORCH_CPU"  # its dependencies, from the package index
    else
      "$PY" -m pip install -q torch --index-url https://download.pytorch.org/whl/cpu \
        --extra-index-url https://pypi.org/simple
    fi
  fi
fi

if ! "$PY" -c "import cellnb, papermill, pytest" 2>/dev/null || [ pyproject.toml -nt "$VENV/.cellnb-installed" ]; then
  echo "setup: installing cellnb and its dependencies"
  "$PY" -m pip install -q -e ".[notebooks,dev]"
  "$PY" -m ipykernel install --sys-prefix --name python3 >/dev/null  # the kernel papermill runs
  touch "$VENV/.cellnb-installed"
fi
export PATH="$PWD/$VENV/bin:$PATH"
