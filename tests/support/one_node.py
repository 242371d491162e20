"""One-node ONNX models around SelectiveScan, for tests of the custom op.

The graph inputs carry the contract's names (u, delta, A, ...), so any error the
runtime raises about an input names it the way the contract does. Dimensions are
symbolic (batch, dim, length, state, groups) so one model serves every size, or
left out entirely (``shaped=False``) so malformed tensors reach the kernel's own
checks instead of ONNX Runtime's input validation.
"""

from __future__ import annotations

import onnx
from onnx import TensorProto, helper

from mamba_export.ops.selective_scan import (
    DOMAIN,
    FLOAT32_INPUTS,
    INPUT_NAMES,
    OP_TYPE,
    OP_VERSION,
    OUTPUT_NAMES,
)

OPTIONAL_INPUTS = ("D", "z", "delta_bias", "initial_state")
ONNX_DTYPES = {
    "float32": TensorProto.FLOAT,
    "float16": TensorProto.FLOAT16,
    "bfloat16": TensorProto.BFLOAT16,
    "float64": TensorProto.DOUBLE,
    "int64": TensorProto.INT64,
}
OPSET = 17
IR_VERSION = 10


def _symbolic_shape(name: str, groups_b: int, groups_c: int, layout: int = 0) -> list[str]:
    groups = {"B": groups_b, "C": groups_c}.get(name, 0)
    if layout == 1 and name in ("u", "delta", "z", "y"):
        return ["batch", "length", "dim"]
    if layout == 1 and name in ("B", "C"):
        return ["batch", "length", f"groups_{name}", "state"] if groups else ["batch", "length", "state"]
    shapes = {
        "u": ["batch", "dim", "length"],
        "delta": ["batch", "dim", "length"],
        "z": ["batch", "dim", "length"],
        "A": ["dim", "state"],
        "D": ["dim"],
        "delta_bias": ["dim"],
        "initial_state": ["batch", "dim", "state"],
        "y": ["batch", "dim", "length"],
        "last_state": ["batch", "dim", "state"],
    }
    if name in ("B", "C"):
        return ["batch", f"groups_{name}", "state", "length"] if groups else ["batch", "state", "length"]
    return shapes[name]


def io_dtypes(io_dtype: str) -> dict:
    """The dtype of every input and output for the I/O dtype T."""
    names = INPUT_NAMES + OUTPUT_NAMES
    return {name: ("float32" if name in FLOAT32_INPUTS + ("last_state",) else io_dtype) for name in names}


def selective_scan_model(io_dtype: str = "float32", present=OPTIONAL_INPUTS, groups_b: int = 0,
                         groups_c: int = 0, delta_softplus: int | None = 0, dtypes: dict | None = None,
                         shaped: bool = True, required=("u", "delta", "A", "B", "C"),
                         layout: int | None = None, offsets: dict | None = None,
                         shared_bc: bool = False) -> onnx.ModelProto:
    """A model whose only node is SelectiveScan.

    present: the optional inputs the node receives; absent ones become "" (or are
    dropped when trailing). groups_b / groups_c: 0 for (B, N, L), else the rank-4 form.
    delta_softplus: the attribute value, or None to leave the attribute out.
    layout: the layout attribute's value (0 channels first, 1 channels last), or None to
    leave the attribute out (channels first).
    dtypes: overrides of the declared dtype per tensor name (for wrong-dtype tests).
    required: the required inputs wired to the node (drop one to test its absence).
    offsets: offset attributes (b_offset, c_offset, z_offset) to set; an input read at an
    offset is declared (batch, length, packed_<name>). shared_bc: the node reads B and C
    from the one graph input B (the x_proj output of a layer).
    """
    declared = io_dtypes(io_dtype) | (dtypes or {})
    offsets = offsets or {}
    node_inputs = [name if (name in required or name in present) else "" for name in INPUT_NAMES]
    while node_inputs and node_inputs[-1] == "":
        node_inputs.pop()
    attributes = {} if delta_softplus is None else {"delta_softplus": delta_softplus}
    if layout is not None:
        attributes["layout"] = layout
    attributes |= offsets
    graph_inputs = [name for name in node_inputs if name and not (shared_bc and name == "C")]
    if shared_bc:
        node_inputs[INPUT_NAMES.index("C")] = "B"
    node = helper.make_node(OP_TYPE, node_inputs, list(OUTPUT_NAMES), domain=DOMAIN, **attributes)
    packed = {name for name in ("B", "C", "z") if f"{name.lower()}_offset" in offsets}

    def value_info(name):
        shape = _symbolic_shape(name, groups_b, groups_c, layout or 0) if shaped else None
        if shaped and name in packed:
            shape = ["batch", "length", f"packed_{name}"]
        return helper.make_tensor_value_info(name, ONNX_DTYPES[declared[name]], shape)

    graph = helper.make_graph(
        [node], "selective_scan",
        [value_info(name) for name in graph_inputs],
        [value_info(name) for name in OUTPUT_NAMES],
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(DOMAIN, OP_VERSION)],
    )
    model.ir_version = IR_VERSION
    return model
