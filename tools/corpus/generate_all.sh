#!/usr/bin/env bash
# Regenerate the whole real-model corpus, one heavy step at a time, then lint it and
# write the review.  Idempotent: existing model files and lint results are kept.
#   bash tools/corpus/generate_all.sh [--quick]
# Corpus: $CNKIT_CORPUS_DIR (default ~/.cache/keras-cnnkit/corpus).  Needs keras-hub and
# kimm in the Python that runs it (pip install keras-hub kimm); torch only inside the
# tox env corpus-onnx.
set -uo pipefail
cd "$(dirname "$0")/../.."
QUICK="${1:-}"
export TF_CPP_MIN_LOG_LEVEL=3
nice -n 10 python tools/corpus/gen_keras.py --source keras $QUICK
nice -n 10 python tools/corpus/gen_keras.py --source tf_keras $QUICK
nice -n 10 python tools/corpus/gen_hub_kimm.py
nice -n 10 python -m tox -e corpus-onnx -q
nice -n 10 python tools/corpus/run_lint.py
python tools/corpus/review.py --write-md tools/corpus/REVIEW.md --json "${CNKIT_CORPUS_DIR:-$HOME/.cache/keras-cnnkit/corpus}/review.json"
