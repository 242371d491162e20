#!/usr/bin/env bash
# The main job end to end: export a Mamba checkpoint with the SelectiveScan custom op, check it
# against the PyTorch model, and generate a continuation on ONNX Runtime (CPU).
#
#   bash scripts/demo.sh                              # models/fortunes-mamba, trained by this project
#   bash scripts/demo.sh MODEL [OUT]                  # a local folder, a hub id, or preset:NAME
#   bash scripts/demo.sh preset:mamba-370m            # a published size with random weights (prints ids)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-models/fortunes-mamba}
OUT=${2:-out/$(basename "${MODEL#preset:}")}
PROMPT=${PROMPT:-"The meaning of life is"}

echo "== exporting $MODEL to $OUT"
mamba-export export --model "$MODEL" "$OUT" --force
echo "== info"
mamba-export info "$OUT"
echo "== generate (CPU, greedy)"
if [ -f "$OUT/tokenizer.json" ]; then
    mamba-export generate "$OUT" --prompt "$PROMPT" --max-new-tokens 32
else
    # The presets have no tokenizer (and random weights): show token ids.
    mamba-export generate "$OUT" --ids 0,510,3158,1617,2010 --max-new-tokens 24
fi
