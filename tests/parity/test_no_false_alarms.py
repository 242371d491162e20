"""No false alarms: the default export of every model the suite knows passes its own check.

A parity suite that rejects correct exports teaches users to pass ``--no-check``. So the
default export (custom backend, float32, the default check lengths) of every tiny config
in ``tests/support/tiny_models.py``, and of the published mamba-130m config with random
weights under several seeds, must come out with ``parity.status == "passed"``. The 130m
exports take minutes each on a 2-core machine, so they are marked slow (CI runs them).
"""

from __future__ import annotations

import json

import pytest
import torch

from mamba_export.export.convert import export
from mamba_export.options import ExportOptions
from tests.conftest import SHARED_DATA
from tests.support.tiny_models import TINY_CONFIGS, tiny_model

REAL_CONFIG = SHARED_DATA / "mamba-130m-hf-transcribed" / "config.json"
# 1234 is the seed a correct export was first rejected with (the padding check).
REAL_CONFIG_SEEDS = (1234, 0, 1)


def _parity(folder) -> dict:
    return json.loads((folder / "export_info.json").read_text())["parity"]


def _explain(parity: dict) -> str:
    return "\n".join(f"{r['check']}: {r['output']} {r['error']:.3g} vs {r['tolerance']:.3g} ({r['status']})"
                     for r in parity["results"] if not r["passed"])


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_default_export_of_every_tiny_config_passes(name, tmp_path, ops_library):
    out = export(tiny_model(name), tmp_path / "out", ExportOptions(show_progress=False))
    parity = _parity(out)
    assert parity["status"] == "passed", _explain(parity)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_CONFIG.is_file(), reason=f"the real 130m config is not at {REAL_CONFIG}")
@pytest.mark.parametrize("seed", REAL_CONFIG_SEEDS)
def test_default_export_of_the_130m_config_passes(seed, tmp_path, ops_library):
    """As a user would: a saved checkpoint folder, ``export(folder, out)`` with the defaults."""
    from transformers import MambaConfig, MambaForCausalLM

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MambaForCausalLM(MambaConfig.from_json_file(str(REAL_CONFIG))).eval()
    model.save_pretrained(tmp_path / "checkpoint")
    del model
    out = export(tmp_path / "checkpoint", tmp_path / "out", ExportOptions(show_progress=False))
    parity = _parity(out)
    assert parity["status"] == "passed", _explain(parity)
