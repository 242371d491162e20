"""LoRA adapters merged before export: parity against the PEFT model in PyTorch, and clear
errors for adapters that do not fit.

The adapters are randomly initialised (``init_lora_weights=False``, so B is not zero)
on the modules of the transformers Mamba docs' example that PEFT accepts on Mamba:
``x_proj``, ``embeddings`` and ``in_proj``. The float32 graph is compared with the
unmerged PEFT model run in float64; 1e-4 leaves room for float32 rounding (about 1e-7
here) while a missing or wrongly scaled adapter moves the logits by more than 1e-2
(checked: the adapter's own effect is asserted to be that large).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

peft = pytest.importorskip("peft", reason="peft is not installed (pip install 'mamba-export[lora]')")

from mamba_export.errors import CheckpointError, UnsupportedModelError  # noqa: E402
from mamba_export.export.convert import export  # noqa: E402
from mamba_export.options import ExportOptions  # noqa: E402
from mamba_export.runtime.model import ORTMambaForCausalLM  # noqa: E402
from tests.cli.test_commands import one_line_error, run_cli  # noqa: E402
from tests.support.tiny_models import save_tiny_model  # noqa: E402

TARGETS = ["x_proj", "embeddings", "in_proj"]
FLOAT32_GRAPH = 1e-4
ADAPTER_EFFECT = 1e-2


def rel(actual, expected) -> float:
    expected = np.asarray(expected, np.float64)
    return float(np.abs(np.asarray(actual, np.float64) - expected).max() / np.abs(expected).max())


def make_adapter(base_dir, adapter_dir, seed=0):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=TARGETS, init_lora_weights=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_peft_model(base, config)
    model.save_pretrained(adapter_dir)
    return adapter_dir


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("lora_base") / "base", "untied_head", seed=2)


@pytest.fixture(scope="module")
def adapter_dir(base_dir, tmp_path_factory):
    return make_adapter(base_dir, tmp_path_factory.mktemp("lora") / "adapter")


def peft_logits(base_dir, adapter_dir, ids):
    """The PEFT model (adapter not merged) in float64, and the base model alone."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_dir).double().eval()
    with torch.no_grad():
        plain = base(torch.as_tensor(ids)).logits.numpy()
        adapted = PeftModel.from_pretrained(base, adapter_dir).eval()(torch.as_tensor(ids)).logits.numpy()
    return adapted, plain


def test_adapter_targets_every_module_asked_for(adapter_dir):
    from safetensors import safe_open

    with safe_open(str(adapter_dir / "adapter_model.safetensors"), "pt") as handle:
        keys = list(handle.keys())
    for target in TARGETS:
        assert any(f".{target}.lora_" in key for key in keys), (target, keys[:6])


def test_merged_export_matches_the_peft_model(base_dir, adapter_dir, tmp_path):
    out = export(str(base_dir), tmp_path / "export",
                 ExportOptions(backend="standard", adapter=str(adapter_dir), show_progress=False))
    info = json.loads((out / "export_info.json").read_text())
    assert info["parity"]["passed"] is True
    assert info["source"]["adapter"] == str(adapter_dir.absolute())
    assert info["source"]["adapter_base"] == str(base_dir)
    ids = np.random.default_rng(3).integers(0, 61, (2, 9))
    adapted, plain = peft_logits(base_dir, adapter_dir, ids)
    assert rel(plain, adapted) > ADAPTER_EFFECT, "the guard: the adapter must change the logits"
    logits = ORTMambaForCausalLM.from_pretrained(out)(ids).logits
    assert rel(logits, adapted) < FLOAT32_GRAPH


def test_in_memory_model_is_left_as_given(adapter_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    base_dir = json.loads((adapter_dir / "adapter_config.json").read_text())["base_model_name_or_path"]
    model = AutoModelForCausalLM.from_pretrained(base_dir)
    before = {name: value.clone() for name, value in model.state_dict().items()}
    export(model, tmp_path / "export", ExportOptions(backend="standard", adapter=str(adapter_dir),
                                                     validate=False, show_progress=False))
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_adapter_for_another_base_model(adapter_dir, tmp_path):
    other = save_tiny_model(tmp_path / "other", "odd_hidden")
    out = tmp_path / "export"
    with pytest.raises(CheckpointError, match="does not fit") as caught:
        export(str(other), out, ExportOptions(adapter=str(adapter_dir), validate=False, show_progress=False))
    assert "made for base model" in str(caught.value) and "size mismatch" in str(caught.value)
    assert not out.exists() and not list(tmp_path.glob(".export*"))


def test_not_an_adapter_folder(base_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no adapter_config.json"):
        export(str(base_dir), tmp_path / "out", ExportOptions(adapter=str(tmp_path / "empty"), validate=False))
    with pytest.raises(CheckpointError, match="is not a folder"):
        export(str(base_dir), tmp_path / "out", ExportOptions(adapter=str(tmp_path / "nowhere"), validate=False))
    assert not (tmp_path / "out").exists()


def test_other_peft_types_are_refused(base_dir, tmp_path):
    folder = tmp_path / "prefix"
    folder.mkdir()
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    with pytest.raises(UnsupportedModelError, match="PREFIX_TUNING adapter; only LoRA"):
        export(str(base_dir), tmp_path / "out", ExportOptions(adapter=str(folder), validate=False))


def test_cli_adapter(base_dir, adapter_dir, tmp_path):
    out = tmp_path / "export"
    result = run_cli("export", "--model", base_dir, out, "--backend", "standard", "--adapter", adapter_dir,
                     "--quiet")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "export_info.json").read_text())["parity"]["passed"] is True
    other = save_tiny_model(tmp_path / "other", "odd_hidden")
    refused = run_cli("export", "--model", other, tmp_path / "refused", "--adapter", adapter_dir, "--quiet")
    one_line_error(refused, "does not fit", str(other))
    assert not (tmp_path / "refused").exists()
