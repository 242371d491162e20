#!/usr/bin/env bash
# The main job end to end: export mamba-130m with the SelectiveScan custom op, check it
# against the PyTorch model, and generate a continuation on ONNX Runtime (CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/mamba-130m}

MODEL=$(python3 - <<'PY'
# The real checkpoint when the hub answers, else the published configuration with random weights.
try:
    from huggingface_hub import model_info
    model_info("state-spaces/mamba-130m-hf", timeout=5)
    print("state-spaces/mamba-130m-hf")
except Exception:
    print("preset:mamba-130m")
PY
)
echo "== exporting $MODEL to $OUT"
mamba-export export --model "$MODEL" "$OUT" --force
echo "== info"
mamba-export info "$OUT"
echo "== generate (CPU)"
if [ -f "$OUT/tokenizer.json" ]; then
    echo "Plants create energy through a process known as" | mamba-export generate "$OUT" --max-new-tokens 24
else
    mamba-export generate "$OUT" --ids 0,510,3158,1617,2010 --max-new-tokens 24
fi
