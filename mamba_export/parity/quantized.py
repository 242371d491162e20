"""The parity check of a weight-only quantized export (``--quantize int4``).

The float rule (error <= 8 x baseline + floor, ``tolerances.py``) cannot judge a 4-bit
export against the original weights: 16 levels per block move every weight by up to
half a step (about 3 % of the block's range), so the logits move by percents by
design, and no float baseline says how much is right. A quantized export is
therefore judged in two parts, and the report says which row is which:

1. **Implementation** (judged): does the graph compute *its own* quantized model?
   The 4-bit weights are read back from the graph and dequantized
   (:func:`mamba_export.ops.int4.dequantize`) into a copy of the reference, and the
   whole float suite runs against that copy (float64 oracle and PyTorch baseline on
   the dequantized weights): logits, decode, chunked, padding, greedy, states, on a
   twin of the graph whose MatMulNBits compute in float (accuracy level 0), so the
   float rule applies unchanged. Any wiring mistake (wrong packing, a transposed
   weight, a state not carried) shows up here as in a float export.
   Because that part reads the weights from the graph, a separate row checks the
   weights themselves: every dequantized weight lies within half a quantization
   step of the reference's float weight (the step is the block's own min-max range
   over 15 levels, with 0 in the range), plus the rounding of the scales in the
   export dtype. A damaged or misplaced 4-bit block is off by whole steps.
2. **Quantization cost** (judged against stated ceilings): with ``accuracy_level`` 4,
   MatMulNBits rounds each block of activations to int8; the shipped graph against its
   float-compute twin must stay within :data:`MAX_INT8_COMPUTE`. Then logits against
   the float64 oracle of the *original* weights, and next-token top-1 agreement over
   :data:`COST_POSITIONS` positions. The ceilings (:data:`MAX_COST_ERROR`,
   :data:`MIN_TOP1_AGREEMENT`) catch a quantization that destroys the model, not the
   usual 4-bit cost; ``scripts/bench_quality.py`` measures that cost (perplexity,
   agreement) on a trained model, where it means something. On random weights these
   rows fail, and say why (:data:`RANDOM_WEIGHTS_NOTE`): rounding changes a random
   network's output wholesale, so a random-weight int4 export cannot be judged.
"""

from __future__ import annotations

import contextlib
import copy
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from mamba_export.dtypes import export_dtype
from mamba_export.errors import CheckpointError
from mamba_export.ops import int4
from mamba_export.ops.ort_norm_nodes import MS_DOMAIN
from mamba_export.parity.checks import CHECKS, ParityContext
from mamba_export.parity.oracle import Float64Mamba
from mamba_export.parity.report import CheckResult, ParityReport
from mamba_export.parity.tolerances import FAILED, PASSED, relative_error
from mamba_export.parity.torch_runs import TorchRunner

# int8 activations (accuracy_level 4) round each block to 2**-8 of its largest value: about
# 1e-2 relative per MatMul (measured on mamba-130m shapes), a few 1e-3 to 1e-2 on the logits of
# the tiny test models. A trained model damps that rounding; a random network amplifies it.
MAX_INT8_COMPUTE = 5e-2
RANDOM_WEIGHTS_NOTE = ("random weights: a random network amplifies rounding (its own float16 run is "
                       "tens of % off float64), so this row cannot pass; judge int4 on a trained model")
# The cost of 4 bits on the original model's logits: block 128 on mamba-130m shapes
# moves them by about 10 % relative (measured, docs/benchmarks.md); 50 % or less than
# half the tokens agreeing means the weights were damaged, not rounded.
MAX_COST_ERROR = 0.5
MIN_TOP1_AGREEMENT = 0.5
COST_POSITIONS = 256
# A scale stored in the export dtype moves a code's value by up to 15 codes x its rounding.
SCALE_ROUNDING = {"fp32": 2.0**-24, "fp16": 2.0**-11}


def quantization(folder) -> dict | None:
    """The ``quantization`` record of an export folder (None for a float export)."""
    return folder.info.get("quantization")


def _layer_weights(model: torch.nn.Module, model_path, record: dict):
    """(source, reference weight (K, N) float64, graph weight (K, N) float64) per quantized layer.

    The graph's dt_proj weight is the padded one the exporter writes (export/mixer.py): its
    rows past dt_proj's R inputs meet B and C and must be 0, so the reference is compared
    zero-padded to the graph's K."""
    graph = onnx.load(str(model_path)).graph
    initializers = {init.name: init for init in graph.initializer}
    for layer in record["quantized"]:
        arrays = [numpy_helper.to_array(initializers[f"{layer['weights']}.{name}"])
                  for name in ("B", "scales", "zero_points")]
        packed = int4.PackedWeight(*arrays, k=layer["K"], n=layer["N"], block_size=record["block_size"])
        try:
            original = model.get_submodule(layer["source"]).weight.detach().to(torch.float64).cpu().numpy().T
        except AttributeError as error:
            raise CheckpointError(f"the reference has no weight at {layer['source']!r}, which the export's "
                                  f"quantization record names for node {layer['node']}") from error
        if layer.get("kind") == "dt_proj" and original.shape[1] == layer["N"] and original.shape[0] < layer["K"]:
            original = np.concatenate([original, np.zeros((layer["K"] - original.shape[0], layer["N"]))])
        if original.shape != (layer["K"], layer["N"]):
            raise CheckpointError(f"the reference's {layer['source']} weight is {original.shape[::-1]}, the "
                                  f"export quantized ({layer['N']}, {layer['K']}): it is not the exported model")
        yield layer["source"], original, int4.dequantize(packed)


def weight_check(model: torch.nn.Module, model_path, record: dict, dtype: str) -> CheckResult:
    """The worst distance of a graph weight from the reference's, in quantization steps."""
    block, worst, where = record["block_size"], 0.0, ""
    for source, original, graph in _layer_weights(model, model_path, record):
        k, n = original.shape
        padded = np.zeros((-(-k // block) * block, n))
        padded[:k] = original
        blocks = padded.reshape(-1, block, n)
        span = np.maximum(blocks.max(axis=1), 0) - np.minimum(blocks.min(axis=1), 0)  # (blocks, N)
        step = np.repeat(span / int4.LEVELS, block, axis=0)[:k]
        distance = np.abs(graph - original) / np.where(step > 0, step, 1.0)
        if distance.max() > worst:
            worst, where = float(distance.max()), source
    allowed = 0.5 + int4.LEVELS * SCALE_ROUNDING[dtype]
    return CheckResult("int4 weights", f"{len(record['quantized'])} layers", worst, None, allowed,
                       _status(worst <= allowed), f"in steps of each block's grid; worst {where}")


def dequantized_reference(model: torch.nn.Module, model_path, record: dict) -> torch.nn.Module:
    """A copy of ``model`` whose quantized weights are the graph's 4-bit weights, dequantized.

    A weight tied to another module (the LM head and the embeddings) is untied in the
    copy: only the MatMul was quantized, the embedding table stays float.
    """
    copied = copy.deepcopy(model)
    for source, _, graph in _layer_weights(model, model_path, record):
        module = copied.get_submodule(source)
        # dt_proj's graph weight is padded (see _layer_weights): the module keeps its own R inputs.
        weight = torch.from_numpy(graph[:module.weight.shape[1]].T.copy())
        module.weight = torch.nn.Parameter(weight.to(module.weight.dtype), requires_grad=False)
    return copied.eval()


@contextlib.contextmanager
def float_compute_twin(folder, provider: str):
    """The same export with every MatMulNBits computing in the activation dtype (accuracy
    level 0): the same 4-bit weights without the int8 rounding of the activations."""
    from mamba_export.runtime.model import ORTMambaForCausalLM, ORTMambaModel

    model = onnx.load(str(folder.model_path))
    for node in model.graph.node:
        if node.op_type == int4.OP_TYPE and node.domain == MS_DOMAIN:
            for attribute in node.attribute:
                if attribute.name == "accuracy_level":
                    attribute.i = 0
    external = folder.info.get("external_data")
    with tempfile.TemporaryDirectory(prefix="float-compute-") as twin:
        for path in folder.path.iterdir():
            if path.is_file() and path.name != folder.model_path.name and path.name != external:
                shutil.copyfile(path, Path(twin) / path.name)
        onnx.save(model, str(Path(twin) / folder.model_path.name), save_as_external_data=bool(external),
                  location=external)
        model_class = ORTMambaForCausalLM if folder.is_causal_lm else ORTMambaModel
        yield model_class.from_pretrained(twin, provider=provider)


def compute_checks(export, twin, context: ParityContext, note: str) -> list:
    """The shipped graph (int8 activations) against its float-compute twin, at each length."""
    results = []
    for length in context.lengths:
        ids = context.tokens(1, length, salt=11)
        shipped = getattr(export(ids), context.head)
        exact = getattr(twin(ids), context.head)
        error = relative_error(shipped, exact)
        results.append(CheckResult("int4 compute", f"{context.head} L={length}", error, None, MAX_INT8_COMPUTE,
                                   _status(error <= MAX_INT8_COMPUTE),
                                   _join("accuracy_level 4 vs the same weights in float compute", note)))
    return results


def run_quantized_suite(folder, export, reference, lengths: tuple, names, provider: str,
                        greedy_tokens: int) -> ParityReport:
    """All three parts on a quantized export folder; ``reference`` is the float model it came from."""
    record = quantization(folder)
    with_head = folder.is_causal_lm
    dequantized = dequantized_reference(reference.model, folder.model_path, record)
    torch_dtype = TorchRunner(dequantized, export_dtype(folder.dtype).torch, with_head)
    note = RANDOM_WEIGHTS_NOTE if (folder.info.get("source") or {}).get("random_weights") else ""
    report = QuantizedParityReport(str(folder.path), folder.info["backend"], folder.dtype, provider,
                                   reference.description)
    with torch.no_grad(), float_compute_twin(folder, provider) as twin:
        context = ParityContext(
            export=twin, oracle=Float64Mamba(dequantized, with_head), torch_dtype=torch_dtype,
            dtype=folder.dtype, head=folder.head_output, last_only=with_head and folder.logits_mode == "last",
            vocab_size=int(folder.info["vocab_size"]), lengths=lengths, greedy_tokens=greedy_tokens)
        report.add([weight_check(reference.model, folder.model_path, record, folder.dtype)])
        report.add(implementation_checks(context, names))
        if record["accuracy_level"] != 0:
            report.add(compute_checks(export, twin, context, note))
        if not context.last_only:
            report.add(cost_checks(export, Float64Mamba(reference.model, with_head), context.vocab_size,
                                   context.head, note))
    return report


def implementation_checks(context: ParityContext, names) -> list:
    """The float checks against the dequantized model, each row marked as such."""
    results = []
    for name in names:
        results += [replace(r, check=f"{r.check} (int4)", detail=_join(r.detail, "vs the dequantized weights"))
                    for r in CHECKS[name](context)]
    return results


def cost_checks(export, oracle, vocab_size: int, head: str, note: str = "") -> list:
    """Logits and top-1 agreement of the export against the original weights' oracle."""
    if head != "logits":
        return []
    ids = np.random.default_rng([7, COST_POSITIONS]).integers(0, vocab_size, (1, COST_POSITIONS), dtype=np.int64)
    exported = np.asarray(export(ids).logits, dtype=np.float64)
    want = oracle(ids)[0].numpy()
    error = relative_error(exported, want)
    agreement = float((exported.argmax(-1) == want.argmax(-1)).mean())
    detail = _join(f"vs the original weights over {COST_POSITIONS} positions", note)
    return [
        CheckResult("int4 cost", "logits", error, None, MAX_COST_ERROR, _status(error <= MAX_COST_ERROR), detail),
        CheckResult("int4 cost", "top-1 disagreement", 1 - agreement, None, 1 - MIN_TOP1_AGREEMENT,
                    _status(agreement >= MIN_TOP1_AGREEMENT), f"{agreement:.1%} agree; {detail}"),
    ]


class QuantizedParityReport(ParityReport):
    """A parity report whose header states the quantized rule."""

    rule = (f"weights within half a 4-bit step; implementation: the float rule on the dequantized weights "
            f"(float compute); cost: int8 compute <= {MAX_INT8_COMPUTE:g}, logits <= {MAX_COST_ERROR:g}, "
            f"top-1 agreement >= {MIN_TOP1_AGREEMENT:.0%}")

    def to_dict(self) -> dict:
        return {**super().to_dict(), "rule": self.rule}

    def format_table(self) -> str:
        lines = super().format_table().split("\n")
        return "\n".join([f"{lines[0].split('; rule:')[0]}; rule: {self.rule}", *lines[1:]])


def _status(within: bool) -> str:
    return PASSED if within else FAILED


def _join(first: str, second: str) -> str:
    return "; ".join(part for part in (first, second) if part)
