"""Broken exports on purpose: for every defect, at least one parity check must fail.

Each defect is made one of three ways, whichever is closest to how the bug would
really arise: an edit of a copy of the PyTorch model before export (a weight
loaded wrong), a patch of the exporter's math while it traces (a state or mask
handled wrong), or an edit of the written ONNX graph (an attribute or constant
wrong). The export is then checked against the unbroken model, and the test
names the checks that caught it (``pytest -s`` prints them).

The subjects are tiny random configs, plus every trained checkpoint folder found
under ``models/`` at the repository root (a transformers folder with a
config.json), so a realistic model joins the suite as soon as one is committed.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import onnx
import pytest
import torch
from onnx import helper

from mamba_export.errors import ParityError
from mamba_export.export import mixer as mixer_module
from mamba_export.export import patching
from mamba_export.export.convert import export
from mamba_export.ops import onnx_standard
from mamba_export.ops.causal_conv import WHOLE, take_window
from mamba_export.ops.selective_scan import OP_TYPE
from mamba_export.options import ExportOptions
from mamba_export.parity.validate import validate
from tests.support.tiny_models import tiny_model

QUICK = ExportOptions(check_lengths=(1, 9), show_progress=False)
MODELS_DIR = Path(__file__).resolve().parents[2] / "models"
TINY_SUBJECTS = ("default", "use_bias")


def _trained_checkpoints() -> list:
    if not MODELS_DIR.is_dir():
        return []
    return sorted(str(p.parent) for p in MODELS_DIR.glob("*/config.json")) + \
        ([str(MODELS_DIR)] if (MODELS_DIR / "config.json").is_file() else [])


def _load_subject(subject: str):
    """A fresh float32 model (eval mode) for ``subject``: a tiny config name or a folder."""
    if subject in TINY_SUBJECTS:
        return tiny_model(subject)
    from mamba_export.export.loading import load

    return load(subject).model.float().eval()


# -- edits of the PyTorch model (weights loaded wrong) ------------------------------------

def _mixers(model):
    return [block.mixer for block in getattr(model, "backbone", model).layers]


def _swap_first_two_layers(model) -> None:
    first, second = _mixers(model)[:2]
    a, b = copy.deepcopy(first.state_dict()), copy.deepcopy(second.state_dict())
    first.load_state_dict(b)
    second.load_state_dict(a)


def _drop_d_skip(model) -> None:
    for mixer in _mixers(model):
        mixer.D.zero_()


def _transpose_lm_head(model) -> None:
    """The head's (vocab, hidden) matrix read in the other memory order."""
    weight = model.lm_head.weight
    vocab, hidden = weight.shape
    model.lm_head.weight = torch.nn.Parameter(weight.detach().reshape(hidden, vocab).t().contiguous())


def _reverse_conv_kernel(model) -> None:
    for mixer in _mixers(model):
        mixer.conv1d.weight.copy_(mixer.conv1d.weight.flip(-1))


def _swap_x_and_gate(model) -> None:
    """in_proj's two halves (x, gate) taken in the wrong order."""
    for mixer in _mixers(model):
        for name in ("weight", "bias"):
            value = getattr(mixer.in_proj, name)
            if value is not None:
                value.copy_(torch.cat(value.chunk(2, dim=0)[::-1], dim=0))


# -- patches of the exporter while it traces (states and mask handled wrong) -------------

def _shift_conv_state(monkeypatch) -> list:
    """The present conv_state taken one step too early: the CausalConv1d node's new state
    is replaced by the window (past state ++ masked x) ending one input before the last."""
    real = mixer_module.causal_conv
    calls = []

    def shifted(mixer, arch, x, conv_state, attention_mask, x_offset=WHOLE):
        out, new_state = real(mixer, arch, x, conv_state, attention_mask, x_offset)
        calls.append(1)
        x = take_window(x, x_offset, new_state.shape[1])  # the conv's input within a packed in_proj output
        xm = x if attention_mask is None else x * attention_mask[:, :, None].to(x.dtype)
        window = torch.cat([conv_state.to(x.dtype), xm.transpose(1, 2)], dim=-1)  # (B, C, K-1+L)
        end = window.shape[-1] - 1  # one step too early
        return out, window[:, :, end - new_state.shape[-1]:end].to(new_state.dtype)

    monkeypatch.setattr(mixer_module, "causal_conv", shifted)
    return calls


def _zero_ssm_state_between_calls(monkeypatch) -> None:
    real = patching.mixer_forward

    def forgetting(mixer, arch, hidden, attention_mask, conv_state, ssm_state, bcdt_eps=0.0, **options):
        return real(mixer, arch, hidden, attention_mask, conv_state, ssm_state * 0.0, bcdt_eps, **options)

    monkeypatch.setattr(patching, "mixer_forward", forgetting)


def _ignore_attention_mask(monkeypatch) -> list:
    """Every CausalConv1d node loses its mask input, and any mask Mul (a biased in_proj) keeps
    the hidden states as they are. The mask still reaches the graph (times 0), so the inputs stay."""
    real = mixer_module.causal_conv
    calls = []

    def unmasked_conv(mixer, arch, x, conv_state, attention_mask, x_offset=WHOLE):
        if attention_mask is not None:
            calls.append("conv")
            x = x + 0 * attention_mask[:, :, None].to(x.dtype)
        return real(mixer, arch, x, conv_state, None, x_offset)

    def unmasked(hidden, attention_mask):
        calls.append("mul")
        return hidden + 0 * attention_mask[:, :, None].to(hidden.dtype)

    monkeypatch.setattr(mixer_module, "causal_conv", unmasked_conv)
    monkeypatch.setattr(mixer_module, "_mask", unmasked)
    return calls


def _round_states_through_float16(monkeypatch) -> None:
    real = patching.mixer_forward

    def half_states(*args, **kwargs):
        out, conv_state, ssm_state = real(*args, **kwargs)
        return out, conv_state.half().to(conv_state.dtype), ssm_state.half().to(ssm_state.dtype)

    monkeypatch.setattr(patching, "mixer_forward", half_states)


def _wrong_softplus_threshold(monkeypatch) -> None:
    # Random-init dt_proj biases put softplus's input near -7 to -2; a threshold there makes
    # dt the raw (negative) value above it, as a threshold compared the wrong way would.
    monkeypatch.setattr(onnx_standard, "SOFTPLUS_THRESHOLD", -4.0)


# -- edits of the written graph ----------------------------------------------------------

def _drop_softplus_attribute(graph: onnx.ModelProto) -> None:
    nodes = [node for node in graph.graph.node if node.op_type == OP_TYPE]
    assert nodes, "the custom backend graph has no SelectiveScan node"
    for node in nodes:
        kept = [a for a in node.attribute if a.name != "delta_softplus"]
        del node.attribute[:]
        node.attribute.extend(kept + [helper.make_attribute("delta_softplus", 0)])


@dataclass(frozen=True)
class Defect:
    name: str
    backend: str = "custom"
    break_model: Callable | None = None  # edits a copy of the model before export
    patch_exporter: Callable | None = None  # monkeypatches the exporter while it traces; may
    # return a list its patches append to when they run, which must not stay empty
    break_graph: Callable | None = None  # edits the written model.onnx


DEFECTS = (
    Defect("two layers' weights swapped", break_model=_swap_first_two_layers),
    Defect("D skip dropped", break_model=_drop_d_skip),
    Defect("LM head transposed", break_model=_transpose_lm_head),
    Defect("conv kernel reversed", break_model=_reverse_conv_kernel),
    Defect("x and gate halves of in_proj swapped", break_model=_swap_x_and_gate),
    Defect("conv state shifted by one step", patch_exporter=_shift_conv_state),
    Defect("SSM state zeroed between calls", patch_exporter=_zero_ssm_state_between_calls),
    Defect("attention mask ignored", patch_exporter=_ignore_attention_mask),
    Defect("states stored in float16", patch_exporter=_round_states_through_float16),
    Defect("softplus threshold wrong (standard backend)", backend="standard",
           patch_exporter=_wrong_softplus_threshold),
    Defect("softplus dropped from the SelectiveScan node", break_graph=_drop_softplus_attribute),
)

SUBJECTS = TINY_SUBJECTS + tuple(_trained_checkpoints())


def export_broken(defect: Defect, reference, folder: Path) -> Path:
    """Export ``reference`` with ``defect`` into ``folder`` (unchecked); ``reference`` is left intact."""
    model = copy.deepcopy(reference)
    with torch.no_grad():
        if defect.break_model:
            defect.break_model(model)
    with pytest.MonkeyPatch.context() as monkeypatch:
        applied = defect.patch_exporter(monkeypatch) if defect.patch_exporter else None
        options = ExportOptions(backend=defect.backend, validate=False, show_progress=False)
        out = export(model, folder, options)
    assert applied is None or applied, (
        f"'{defect.name}' was not applied: the exporter never called the patched function")
    if defect.break_graph:
        graph = onnx.load(str(out / "model.onnx"))
        defect.break_graph(graph)
        onnx.save(graph, str(out / "model.onnx"))
    return out


def caught_by(folder: Path, reference) -> list:
    """The checks that fail on ``folder`` (empty when the suite passes it)."""
    try:
        validate(folder, reference=reference, options=QUICK)
    except ParityError as error:
        return sorted({result.check for result in error.report.failures})
    return []


def test_every_listed_example_defect_is_covered():
    assert len(DEFECTS) >= 8 and len({d.name for d in DEFECTS}) == len(DEFECTS)


@pytest.mark.parametrize("subject", SUBJECTS)
@pytest.mark.parametrize("defect", DEFECTS, ids=lambda d: d.name.split(" (")[0].replace(" ", "_"))
def test_a_parity_check_catches_the_defect(defect, subject, tmp_path, ops_library):
    reference = _load_subject(subject)
    checks = caught_by(export_broken(defect, reference, tmp_path / "broken"), reference)
    print(f"\n{subject}: {defect.name}: caught by {', '.join(checks) or 'NOTHING'}")
    assert checks, f"no parity check caught '{defect.name}' on {subject}"


@pytest.mark.parametrize("subject", SUBJECTS)
def test_the_unbroken_export_passes(subject, tmp_path, ops_library):
    """The control: the same route with no defect passes, so the failures above are the defects'."""
    reference = _load_subject(subject)
    assert caught_by(export_broken(Defect("none"), reference, tmp_path / "good"), reference) == []
