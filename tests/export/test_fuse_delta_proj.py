"""ExportOptions(fuse_delta_proj=True): SelectiveScan projects the time step itself.

The custom backend's layer loses its dt_proj MatMul (6 nodes instead of 7): the scan reads x_dt
from the x_proj output at delta_offset 0 and takes dt_proj's weight as a float32 delta_weight.
The fused export must compute what the unfused one does (float32 rounding apart: the projection
runs in the op with a float32 weight instead of a MatMul) and pass the exporter's parity check.
The standard backend ignores the option.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from mamba_export.cli import export as export_cli
from mamba_export.export.convert import export
from mamba_export.export.graph_nodes import layer_nodes_of_file
from mamba_export.folder_format import read_info
from mamba_export.ops.selective_scan import INPUT_NAMES, OP_TYPE
from mamba_export.options import ExportOptions
from mamba_export.runtime.model import ORTMambaForCausalLM
from tests.support.tiny_models import tiny_model

# Logits of two float32 graphs that differ only in how delta is summed (float32 rounding,
# carried through two layers): far below any difference a wrong projection would make.
LOGITS_TOLERANCE = 1e-4


def _export(tmp_path_factory, name: str, fuse: bool, backend: str = "custom", validate: bool = False,
            dtype: str = "fp32"):
    folder = tmp_path_factory.mktemp(f"{name}_{backend}_{dtype}_{'fused' if fuse else 'plain'}") / "out"
    export(tiny_model(name), folder, ExportOptions(backend=backend, validate=validate, show_progress=False,
                                                    fuse_delta_proj=fuse, dtype=dtype))
    return folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {fuse: _export(tmp_path_factory, "default", fuse, validate=fuse) for fuse in (False, True)}


def _layers(folder, name="default"):
    return layer_nodes_of_file(folder / "model.onnx", tiny_model(name).config.num_hidden_layers)


def test_fused_layer_has_one_matmul_fewer(folders):
    plain, fused = _layers(folders[False]), _layers(folders[True])
    assert plain.counts == (7,) * len(plain.per_layer)
    assert fused.counts == (6,) * len(fused.per_layer)
    for before, after in zip(plain.per_layer, fused.per_layer, strict=True):
        assert after["MatMul"] == before["MatMul"] - 1 == 3, after  # in_proj, x_proj, out_proj
        assert after["SelectiveScan"] == 1, after


def test_info_counts_six_nodes_per_layer(folders):
    out = subprocess.run([sys.executable, "-m", "mamba_export", "info", str(folders[True])], capture_output=True,
                         text=True, check=True).stdout
    assert "6 per layer" in out, out


@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
def test_half_precision_fused_layer_is_six_nodes(tmp_path_factory, dtype):
    """x_dt in T, the weight float32: no Cast appears. fp16 is checked for parity on the CPU (ONNX
    Runtime has no bfloat16 CPU kernels: bf16 is checked on the GPU)."""
    folder = _export(tmp_path_factory, "default", True, validate=dtype == "fp16", dtype=dtype)
    layers = _layers(folder)
    assert layers.counts == (6,) * tiny_model("default").config.num_hidden_layers
    assert all(layer["Cast"] == 0 for layer in layers.per_layer), layers.per_layer
    if dtype == "fp16":
        assert read_info(folder)["parity"]["status"] == "passed"


def test_fused_scan_reads_x_proj_at_offset_0_with_dt_proj_weight(folders):
    model = onnx.load(folders[True] / "model.onnx")
    initializers = {t.name: t for t in model.graph.initializer}
    constants = {n.output[0]: n.attribute[0].t for n in model.graph.node if n.op_type == "Constant"}
    rank = tiny_model("default").config.time_step_rank
    dim = tiny_model("default").config.intermediate_size
    scans = [n for n in model.graph.node if n.op_type == OP_TYPE]
    assert len(scans) == tiny_model("default").config.num_hidden_layers
    for node in scans:
        attributes = {a.name: a.i for a in node.attribute}
        assert attributes["delta_offset"] == 0 and attributes["b_offset"] == rank
        inputs = dict(zip(INPUT_NAMES, node.input, strict=False))
        assert inputs["delta"] == inputs["B"] == inputs["C"]  # the x_proj output, as it is
        weight = initializers.get(inputs["delta_weight"]) or constants[inputs["delta_weight"]]
        assert weight.data_type == onnx.TensorProto.FLOAT
        assert tuple(weight.dims) == (dim, rank)
    weights = {tuple(numpy_helper.to_array(initializers.get(n.input[9]) or constants[n.input[9]]).ravel()[:3])
               for n in scans}
    assert len(weights) == len(scans), "each layer has its own dt_proj weight"


def test_fused_export_passes_the_parity_check(folders):
    assert read_info(folders[True])["parity"]["status"] == "passed"
    assert read_info(folders[True])["options"]["fuse_delta_proj"] is True


def test_fused_and_plain_exports_agree(folders):
    plain, fused = (ORTMambaForCausalLM.from_pretrained(folders[flag]) for flag in (False, True))
    ids = np.random.default_rng(0).integers(1, 61, (2, 9))
    mask = np.ones_like(ids)
    mask[1, :3] = 0  # left padding
    logits = [model(ids, mask).logits for model in (plain, fused)]
    scale = np.max(np.abs(logits[0]))
    assert np.max(np.abs(logits[1] - logits[0])) / scale <= LOGITS_TOLERANCE
    greedy = [model.generate(ids, attention_mask=mask, max_new_tokens=12, eos_token_id=[]) for model in (plain, fused)]
    np.testing.assert_array_equal(greedy[1], greedy[0])


def test_falcon_mamba_fused_layer_has_one_matmul_fewer(tmp_path_factory):
    """B, C and dt are normed first: the scan projects the normed dt (its own (B, L, R) tensor)."""
    plain = _layers(_export(tmp_path_factory, "falcon_mamba", False), "falcon_mamba")
    fused_folder = _export(tmp_path_factory, "falcon_mamba", True, validate=True)
    fused = _layers(fused_folder, "falcon_mamba")
    for before, after in zip(plain.per_layer, fused.per_layer, strict=True):
        assert after["MatMul"] == before["MatMul"] - 1, (before, after)
        assert sum(after.values()) == sum(before.values()) - 1
    assert read_info(fused_folder)["parity"]["status"] == "passed"


def test_standard_backend_ignores_the_option(tmp_path_factory):
    plain = _layers(_export(tmp_path_factory, "default", False, backend="standard"))
    fused = _layers(_export(tmp_path_factory, "default", True, backend="standard"))
    assert fused.per_layer == plain.per_layer


def test_cli_flag_sets_the_option():
    parser = argparse.ArgumentParser()
    export_cli.add_arguments(parser)
    assert parser.parse_args(["-m", "x", "out", "--fuse-delta-proj"]).fuse_delta_proj is True
    assert parser.parse_args(["-m", "x", "out"]).fuse_delta_proj is False
    with pytest.raises(Exception, match="fuse_delta_proj"):
        ExportOptions(fuse_delta_proj="yes")


def _cuda_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_available(), reason="needs onnxruntime-gpu with CUDAExecutionProvider and a GPU")
@pytest.mark.parametrize("length", [1, 17, 300], ids=["decode_path", "chunked_17", "chunked_300"])
def test_fused_export_on_cuda_matches_the_cpu(folders, length):
    """On CUDA the fused graph runs the in-kernel projection (decode, captured in CUDA graphs by
    generate()) and the projection kernel with scratch memory (prompts over 16 tokens)."""
    from mamba_export.options import RuntimeOptions

    cpu = ORTMambaForCausalLM.from_pretrained(folders[True])
    cuda = ORTMambaForCausalLM.from_pretrained(folders[True], options=RuntimeOptions(provider="cuda"))
    ids = np.random.default_rng(length).integers(1, 61, (2, length))
    logits = [np.asarray(model(ids).logits) for model in (cpu, cuda)]
    assert np.max(np.abs(logits[1] - logits[0])) / np.max(np.abs(logits[0])) <= LOGITS_TOLERANCE
    tokens = [model.generate(ids, max_new_tokens=12, eos_token_id=[]) for model in (cpu, cuda)]
    np.testing.assert_array_equal(tokens[1], tokens[0])
