"""--dtype fp16 / bf16: the SSM state and (where the config asks) the residual stay float32, as in
transformers, and float16 exports of both backends are value-checked against the float64 oracle.

The model here is tiny but at realistic scale: embeddings of unit variance give logits of
order 10, as a trained model's are, instead of the +-0.1 of transformers' initialisation,
where float16 rounding would be hidden below every tolerance. bfloat16 runs only on CUDA
(ONNX Runtime has no bfloat16 CPU kernels): those tests are marked gpu.
"""

from __future__ import annotations

import ast

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto

from mamba_export.dtypes import EXPORT_DTYPES, STATE_DTYPE
from mamba_export.export.convert import export
from mamba_export.ops import residual_norm
from mamba_export.options import ExportOptions, RuntimeOptions
from mamba_export.parity.oracle import Float64Mamba
from mamba_export.parity.tolerances import FAILED, relative_error
from mamba_export.parity.validate import validate
from mamba_export.runtime.model import ORTMambaForCausalLM
from tests.support.tiny_models import tiny_model

QUICK = ExportOptions(check_lengths=(1, 9, 64), show_progress=False)
HAS_CUDA = "CUDAExecutionProvider" in ort.get_available_providers()
# float16 keeps 11 significant bits (2**-11 = 4.9e-4 relative); a 2-layer model rounds each
# activation a few dozen times, so a few 1e-3 of max|logits| is float16 doing its best, and a
# wiring mistake (a state rounded through float16, a dropped skip) is of order 1e-1.
FP16_LOGITS = 1e-2
# bfloat16 keeps 8 significant bits (2**-8 = 3.9e-3 relative), 8 times float16's spacing.
BF16_LOGITS = 8 * FP16_LOGITS


def realistic_tiny(name: str = "default"):
    model = tiny_model(name)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        model.backbone.embeddings.weight.normal_(0.0, 1.0)  # tied: the head's logits reach ~10
    return model


@pytest.fixture(scope="module")
def half_exports(tmp_path_factory):
    cache = {}

    def get(backend: str, dtype: str = "fp16", name: str = "default"):
        key = (backend, dtype, name)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{backend}_{dtype}_{name}") / "out"
            cache[key] = export(realistic_tiny(name), out, ExportOptions(backend=backend, dtype=dtype,
                                                                          validate=False, show_progress=False))
        return cache[key]

    return get


def _residual_add_types(folder) -> list:
    """Element types of the residual sums, one per layer: the traced model's own top-level Adds
    (the exporter's name scope holds only the model; norms and the standard scan add inside their
    own scopes), or, where a fused norm adds the residual (custom backend), the type of the
    ``skip`` input of each SkipSimplifiedLayerNormalization node or the ``residual`` input of each
    ResidualRMSNorm node."""
    model = onnx.shape_inference.infer_shapes(onnx.load(folder / "model.onnx"))
    types = {v.name: v.type.tensor_type.elem_type
             for v in [*model.graph.value_info, *model.graph.output, *model.graph.input]}
    types.update({n.output[0]: next(a.i for a in n.attribute if a.name == "to")
                  for n in model.graph.node if n.op_type == "Cast"})
    adds = []
    for node in model.graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), "")
        if node.op_type == "Add" and scopes and len(ast.literal_eval(scopes)) == 2:
            adds.append(types[node.output[0]])
        elif node.op_type == "SkipSimplifiedLayerNormalization":
            adds.append(types[node.input[1]])
        elif node.op_type == residual_norm.OP_TYPE and len(node.input) > 2 and node.input[2]:
            adds.append(types[node.input[2]])  # ResidualRMSNorm's residual stream
    return adds


@pytest.mark.parametrize("backend", ["custom", "standard"])
def test_fp16_keeps_state_and_residual_float32(half_exports, backend):
    folder = half_exports(backend)
    graph = onnx.load(folder / "model.onnx").graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]}
    assert types["logits"] == EXPORT_DTYPES["fp16"].onnx_type
    assert types["past.0.conv_state"] == types["present.1.conv_state"] == TensorProto.FLOAT16
    assert types["past.0.ssm_state"] == types["present.1.ssm_state"] == STATE_DTYPE.onnx_type
    assert _residual_add_types(folder) == [TensorProto.FLOAT] * 2  # residual_in_fp32=True, 2 layers


def test_fp16_residual_follows_the_config(half_exports):
    assert _residual_add_types(half_exports("custom", name="residual_model_dtype")) == [TensorProto.FLOAT16] * 2


@pytest.mark.parametrize("backend", ["custom", "standard"])
def test_fp16_values_against_the_float64_oracle(half_exports, backend):
    model = realistic_tiny()
    ids = np.random.default_rng(3).integers(0, 61, (2, 48))
    logits = ORTMambaForCausalLM.from_pretrained(half_exports(backend))(ids).logits
    oracle = Float64Mamba(model, True)(ids)[0].numpy()
    assert np.abs(oracle).max() > 3  # realistic scale, not the initialisation's tiny logits
    error = relative_error(logits, oracle)
    assert error <= FP16_LOGITS, f"{backend} fp16 logits {error:.2e} off float64"
    report = validate(half_exports(backend), reference=model, options=QUICK)  # the whole suite, CPU provider
    assert report.passed and report.provider == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu with CUDAExecutionProvider and a GPU")
@pytest.mark.parametrize("backend", ["custom", "standard"])
def test_fp16_on_cuda(half_exports, backend):
    report = validate(half_exports(backend), reference=realistic_tiny(), options=QUICK,
                      runtime=RuntimeOptions(provider="cuda"))
    assert report.passed and report.provider == "cuda"


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu with CUDAExecutionProvider and a GPU")
@pytest.mark.parametrize("backend", ["custom", "standard"])
def test_bf16_on_cuda_against_the_float64_oracle(half_exports, backend):
    """bfloat16 logits against float64, and no parity check failed.

    On this tiny model PyTorch's own bfloat16 states are about 1.4e-2 off float64, so
    FACTOR times that is above the bfloat16 ceiling and the state checks are
    inconclusive (the suite says so rather than pass them); the trained model's bfloat16
    export must pass outright (tests/models/test_fortunes_mamba.py).
    """
    model = realistic_tiny()
    ids = np.random.default_rng(3).integers(0, 61, (2, 48))
    logits = ORTMambaForCausalLM.from_pretrained(half_exports(backend, "bf16"), provider="cuda")(ids).logits
    error = relative_error(np.asarray(logits, np.float64), Float64Mamba(model, True)(ids)[0].numpy())
    assert error <= BF16_LOGITS, f"{backend} bf16 logits {error:.2e} off float64"
    report = validate(half_exports(backend, "bf16"), reference=model, options=QUICK,
                      runtime=RuntimeOptions(provider="cuda"))
    assert report.provider == "cuda" and report.status != FAILED, report.format_table()


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason="needs onnxruntime-gpu with CUDAExecutionProvider and a GPU")
@pytest.mark.parametrize("dtype", ["fp32", "fp16"])
def test_int4_on_cuda(tmp_path, dtype):
    model = realistic_tiny()
    out = export(model, tmp_path / "int4", ExportOptions(dtype=dtype, quantize="int4", block_size=32,
                                                          validate=False, show_progress=False))
    report = validate(out, reference=model, options=QUICK, runtime=RuntimeOptions(provider="cuda"))
    assert report.passed and any(r.check == "int4 weights" for r in report.results)
