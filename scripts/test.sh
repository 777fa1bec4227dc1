#!/usr/bin/env bash
# Set up, then run the test suite (including the notebooks end to end through papermill
# on tiny settings). Extra arguments go to pytest.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
python -m pytest -q --durations=15 "$@"
