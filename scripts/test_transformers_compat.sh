#!/usr/bin/env bash
# Run the exporter, runtime and parity tests under an older transformers 5.x release
# (default 5.17.0, the GPU machine's), installed beside the current one in a private
# folder, so both releases the project supports are tested on every run.
set -euo pipefail
cd "$(dirname "$0")/.."
version=${1:-5.17.0}
target=build/transformers-${version}
if [ ! -f "${target}/transformers/__init__.py" ]; then
    # Only what differs from the current environment: 5.17 needs huggingface-hub 1.x and httpx.
    python3 -m pip install -q --no-deps --target "${target}" "transformers==${version}" \
        "huggingface-hub>=1.5,<2" httpx httpcore certifi sniffio
fi
PYTHONPATH="${PWD}/${target}${PYTHONPATH:+:${PYTHONPATH}}" python3 - "${version}" <<'PY'
import sys, transformers
assert transformers.__version__ == sys.argv[1], f"expected transformers {sys.argv[1]}, got {transformers.__version__}"
print("testing with transformers", transformers.__version__, "from", transformers.__file__)
PY
# The slow tests (the real 130m configuration under several seeds) exercise no transformers API
# that the fast ones do not, and run once, under the current release, in the main test run.
PYTHONPATH="${PWD}/${target}${PYTHONPATH:+:${PYTHONPATH}}" python3 -m pytest -q -p no:cacheprovider -m "not slow" \
    tests/export tests/parity tests/runtime tests/ops/test_torch_op.py
