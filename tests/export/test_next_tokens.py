"""--next-tokens: the graph's own greedy choice (export/next_tokens.py).

The output must be the argmax of the last position's logits in either head mode and either form
(one LastArgMax node in a custom-backend graph, ONNX's Gather/Cast/ArgMax in a standard one), come
after the presents and be recorded in export_info.json (generate() reading it:
tests/runtime/test_in_graph_tokens.py). The custom form runs on ONNX Runtime's CPU provider with our
op library (skipped where it is not built).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from mamba_export import graph_io
from mamba_export.cli.main import build_parser
from mamba_export.errors import CustomOpsNotFoundError, ExportFolderError, MambaExportError, UnsupportedModelError
from mamba_export.export.next_tokens import add_to_model
from mamba_export.folder_format import INFO_FILE, read_info
from mamba_export.ops import last_argmax as argmax_contract
from mamba_export.ops.reference import last_argmax as reference_argmax
from mamba_export.options import ExportOptions
from tests.support.prompts import tokens


@pytest.fixture(scope="module", params=["all", "last"])
def folder(request, export_tiny):
    return export_tiny(backend="standard", logits=request.param, next_tokens=True)


@pytest.fixture(scope="module")
def ops_library() -> str:
    from mamba_export.runtime.library import get_library_path

    try:
        return get_library_path()
    except CustomOpsNotFoundError as error:
        pytest.skip(f"custom-op library not built: {error}")


def session_for(model, library: str | None = None) -> ort.InferenceSession:
    """A CPU session, with our op library when ``library`` is given."""
    options = ort.SessionOptions()
    if library is not None:
        options.register_custom_ops_library(library)
    source = model if isinstance(model, str) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def check_the_graphs_argmax(folder, library: str | None = None) -> onnx.ModelProto:
    """The folder's next_tokens come last, are recorded, and equal the argmax of its last logits."""
    model = onnx.load(folder / "model.onnx")
    names = [output.name for output in model.graph.output]
    info = read_info(folder)
    assert names[-1] == graph_io.NEXT_TOKENS and names[:-1] == graph_io.output_names(info["num_layers"])
    assert info["next_tokens"] is True and info["outputs"][-1] == {
        "name": graph_io.NEXT_TOKENS, "shape": ["batch", 1], "dtype": "int64"}
    session = session_for(str(folder / "model.onnx"), library)
    ids = tokens(3, 9, seed=2)
    feeds = {graph_io.INPUT_IDS: ids, graph_io.ATTENTION_MASK: np.ones_like(ids)}
    for meta in session.get_inputs()[2:]:
        shape = [ids.shape[0] if isinstance(d, str) else d for d in meta.shape]
        feeds[meta.name] = np.zeros(shape, np.float32)
    logits, chosen = session.run([graph_io.LOGITS, graph_io.NEXT_TOKENS], feeds)
    assert chosen.shape == (3, 1) and chosen.dtype == np.int64
    np.testing.assert_array_equal(chosen[:, 0], logits[:, -1].astype(np.float32).argmax(-1))
    return model


def test_the_graph_outputs_the_argmax_of_the_last_logits(folder):
    model = check_the_graphs_argmax(folder)
    # One position kept (--logits last): the ArgMax reads the head output itself, no Gather.
    ours = [node.op_type for node in model.graph.node if node.name.startswith("next_tokens/")]
    assert ("Gather" in ours) == (read_info(folder)["logits"] == "all") and ours[-1] == "ArgMax"
    assert argmax_contract.OP_TYPE not in {node.op_type for node in model.graph.node}


@pytest.mark.parametrize("logits", ["all", "last"])
def test_a_custom_backend_graph_takes_them_with_one_last_argmax_node(export_tiny, ops_library, logits):
    """The custom backend loads our library anyway: next_tokens is one LastArgMax node on the head
    output, whatever positions it keeps, and ONNX's nodes are not written."""
    folder = export_tiny(backend="custom", logits=logits, next_tokens=True)
    model = check_the_graphs_argmax(folder, ops_library)
    ours = [(node.op_type, node.domain) for node in model.graph.node if node.name.startswith("next_tokens/")]
    assert ours == [(argmax_contract.OP_TYPE, argmax_contract.DOMAIN)]
    (node,) = [node for node in model.graph.node if node.op_type == argmax_contract.OP_TYPE]
    assert list(node.input) == [graph_io.LOGITS] and list(node.output) == [graph_io.NEXT_TOKENS]
    assert argmax_contract.DOMAIN in {opset.domain for opset in model.opset_import}


def _identity_head(element, positions) -> onnx.ModelProto:
    graph = helper.make_graph([helper.make_node("Identity", ["x"], [graph_io.LOGITS])], "g",
                              [helper.make_tensor_value_info("x", element, ["batch", positions, 5])],
                              [helper.make_tensor_value_info(graph_io.LOGITS, element, ["batch", positions, 5])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)


def _tied_logits(dtype, positions) -> np.ndarray:
    """Ties in the last position (answers 0 and 2); the earlier position would give 1 and 0."""
    x = np.array([[[0, 1, 0, 0, 0], [3, 1, 3, 2, 3]], [[9, 9, 9, 9, 9], [1, 2, 7, 7, 0]]], dtype)
    return x[:, -1:] if positions == 1 else x


@pytest.mark.parametrize("positions", ["sequence", 1])
@pytest.mark.parametrize("element", [TensorProto.FLOAT16, TensorProto.FLOAT])
def test_half_logits_are_widened_and_ties_take_the_first_index(element, positions):
    dtype = {TensorProto.FLOAT16: np.float16, TensorProto.FLOAT: np.float32}[element]
    model = _identity_head(element, positions)
    add_to_model(model)
    ops = [node.op_type for node in model.graph.node]
    assert ("Cast" in ops) == (element == TensorProto.FLOAT16) and ("Gather" in ops) == (positions != 1)
    onnx.checker.check_model(model, full_check=True)
    chosen = session_for(model).run([graph_io.NEXT_TOKENS], {"x": _tied_logits(dtype, positions)})[0]
    assert chosen.shape == (2, 1)
    np.testing.assert_array_equal(chosen, [[0], [2]])
    with pytest.raises(ValueError, match="already has a 'next_tokens' output"):
        add_to_model(model)


@pytest.mark.parametrize("positions", ["sequence", 1])
@pytest.mark.parametrize("element", [TensorProto.FLOAT16, TensorProto.FLOAT])
def test_the_custom_node_gives_the_same_tokens(ops_library, element, positions):
    """add_to_model(custom_op=True): one LastArgMax node, its domain imported, and the tokens of
    ONNX's nodes and of the reference (ties: the first index; NaN: the first NaN)."""
    dtype = {TensorProto.FLOAT16: np.float16, TensorProto.FLOAT: np.float32}[element]
    model = _identity_head(element, positions)
    add_to_model(model, custom_op=True)
    assert [node.op_type for node in model.graph.node] == ["Identity", argmax_contract.OP_TYPE]
    assert [o.version for o in model.opset_import if o.domain == argmax_contract.DOMAIN] == [1]
    onnx.checker.check_model(model)
    session = session_for(model, ops_library)
    x = _tied_logits(dtype, positions)
    np.testing.assert_array_equal(session.run([graph_io.NEXT_TOKENS], {"x": x})[0], [[0], [2]])
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, x.shape[1], 5)).astype(dtype)
    x[0, -1, 3] = x[1, -1, 1] = x[1, -1, 4] = np.nan
    chosen = session.run([graph_io.NEXT_TOKENS], {"x": x})[0]
    np.testing.assert_array_equal(chosen, reference_argmax(x))
    assert chosen[0, 0] == 3 and chosen[1, 0] == 1
    with pytest.raises(ValueError, match="already has a 'next_tokens' output"):
        add_to_model(model, custom_op=True)


def test_a_graph_without_logits_is_refused():
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2])])
    with pytest.raises(ValueError, match="no 'logits' output"):
        add_to_model(helper.make_model(graph))


def test_a_base_model_has_no_next_tokens(export_tiny):
    with pytest.raises(UnsupportedModelError, match="next_tokens needs a model with a language-model head"):
        export_tiny(base=True, backend="standard", next_tokens=True)


def test_the_option_and_the_flag():
    with pytest.raises(MambaExportError, match="next_tokens must be True, False or None, got 'yes'"):
        ExportOptions(next_tokens="yes")
    for flags, value in ((["--next-tokens"], True), (["--no-next-tokens"], False), ([], None)):
        assert build_parser().parse_args(["export", "--model", "m", "out", *flags]).next_tokens is value


@pytest.mark.parametrize(("options", "has_lm_head", "writes"), [
    ({}, True, False), ({"device": "cuda"}, True, True), ({"device": "cuda"}, False, False),
    ({"device": "cuda", "next_tokens": False}, True, False), ({"next_tokens": True}, True, True)])
def test_by_default_cuda_exports_of_language_models_write_the_output(options, has_lm_head, writes):
    """Left unset, next_tokens goes into CUDA exports of models with a language-model head (a base
    model's CUDA export simply has none; only an explicit True is refused for it)."""
    assert ExportOptions(**options).writes_next_tokens(has_lm_head) is writes


def test_the_record_follows_the_default(export_tiny):
    """build_info records what the graph has, not the option as given: a CPU export left unset
    records False, and reading the folder back agrees with the graph's outputs."""
    import onnx

    folder = export_tiny(backend="standard", logits="last")
    info = json.loads((folder / INFO_FILE).read_text())
    outputs = [o.name for o in onnx.load(str(folder / "model.onnx"), load_external_data=False).graph.output]
    assert info["next_tokens"] is False and "next_tokens" not in outputs
    assert info["options"]["next_tokens"] is None


def test_a_record_that_contradicts_itself_is_refused(folder, tmp_path):
    for head, value in (("last_hidden_state", True), ("logits", "yes")):
        copy = tmp_path / f"{head}_{value}"
        copy.mkdir()
        info = json.loads((folder / INFO_FILE).read_text())
        (copy / INFO_FILE).write_text(json.dumps({**info, "head_output": head, "next_tokens": value}))
        with pytest.raises(ExportFolderError, match="next_tokens"):
            read_info(copy)
