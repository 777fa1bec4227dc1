#!/usr/bin/env bash
# Set up, then run the test suite (including the notebooks end to end through papermill
# on tiny settings), one test file per CPU core at a time (pytest-xdist, at most 4 workers;
# measured on 2 cores: 18 min instead of 28). Extra arguments go to pytest (`-n 0`: one process).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
python -m pytest -q --durations=15 -n auto --maxprocesses 4 --dist loadfile "$@"
