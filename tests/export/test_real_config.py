"""The real mamba-130m-hf configuration (random weights) exported with both backends and checked.

The tiny configs cover the variations; this covers the real sizes (24 layers, D = 1536,
vocab 50280), where float32 error accumulates the most. It takes a few minutes on a
2-core machine, so it is marked slow, and CI runs it.
"""

from __future__ import annotations

import json

import pytest
import torch

from mamba_export.export.convert import export
from mamba_export.options import ExportOptions
from tests.conftest import SHARED_DATA

CONFIG = SHARED_DATA / "mamba-130m-hf-transcribed" / "config.json"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not CONFIG.is_file(), reason=f"the real 130m config is not at {CONFIG}"),
]


@pytest.fixture(scope="module")
def real_config_checkpoint(tmp_path_factory):
    from transformers import MambaConfig, MambaForCausalLM

    torch.manual_seed(0)
    model = MambaForCausalLM(MambaConfig.from_json_file(str(CONFIG))).eval()
    folder = tmp_path_factory.mktemp("mamba_130m_config") / "checkpoint"
    model.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("backend", ["custom", "standard"])
def test_real_config_exports_and_passes_the_parity_suite(real_config_checkpoint, tmp_path, backend):
    if backend == "custom":
        from mamba_export.runtime.library import build_library

        build_library()
    options = ExportOptions(backend=backend, validate=True, show_progress=False, check_lengths=(1, 64))
    out = export(real_config_checkpoint, tmp_path / "out", options)
    info = json.loads((out / "export_info.json").read_text())
    assert (info["num_layers"], info["intermediate_size"], info["vocab_size"]) == (24, 1536, 50280)
    assert info["parity"]["passed"] is True, info["parity"]
