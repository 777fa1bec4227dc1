#!/usr/bin/env bash
# The main job: set up, then run every notebook (quick profile, built-in data) and
# regenerate figures/ and the README's results section. Extra arguments go to `cellnb run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cellnb run --profile quick --overwrite "$@"
