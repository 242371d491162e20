"""check_inputs: what the SelectiveScan contract accepts, and the errors for what it does not."""

import pytest

from mamba_export.errors import InputShapeError
from mamba_export.ops import selective_scan as contract
from mamba_export.ops.selective_scan import check_inputs

BATCH, DIM, LENGTH, STATE = 2, 6, 5, 4


def _shapes(**overrides):
    shapes = dict(
        u=(BATCH, DIM, LENGTH), delta=(BATCH, DIM, LENGTH), A=(DIM, STATE),
        B=(BATCH, STATE, LENGTH), C=(BATCH, STATE, LENGTH), D=(DIM,), z=(BATCH, DIM, LENGTH),
        delta_bias=(DIM,), initial_state=(BATCH, DIM, STATE),
    )
    shapes.update(overrides)
    return shapes


def _dtypes(io="float32", **overrides):
    dtypes = {name: io for name in ("u", "delta", "B", "C", "z")}
    dtypes.update({name: "float32" for name in ("A", "D", "delta_bias", "initial_state")})
    dtypes.update(overrides)
    return dtypes


def test_the_input_order_is_the_abi():
    assert contract.INPUT_NAMES == ("u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state",
                                    "delta_weight")
    assert contract.OUTPUT_NAMES == ("y", "last_state")
    assert contract.REQUIRED_INPUTS == ("u", "delta", "A", "B", "C")


@pytest.mark.parametrize("io", ["float32", "float16", "bfloat16"])
def test_accepts_every_input_in_every_io_dtype(io):
    dims = check_inputs(_shapes(), _dtypes(io))
    assert dims == contract.ScanDims(BATCH, DIM, LENGTH, STATE, groups_b=0, groups_c=0)


@pytest.mark.parametrize("groups_b, groups_c", [(3, 0), (0, 2), (6, 1), (2, 3)])
def test_b_and_c_choose_their_rank_independently(groups_b, groups_c):
    def proj(groups):
        return (BATCH, groups, STATE, LENGTH) if groups else (BATCH, STATE, LENGTH)

    dims = check_inputs(_shapes(B=proj(groups_b), C=proj(groups_c)))
    assert (dims.groups_b, dims.groups_c) == (groups_b, groups_c)


def test_optional_inputs_may_be_missing_or_none():
    shapes = _shapes(D=None, z=None)
    del shapes["delta_bias"], shapes["initial_state"]
    assert check_inputs(shapes).dim == DIM


def test_empty_sequence_is_valid():
    dims = check_inputs(_shapes(u=(BATCH, DIM, 0), delta=(BATCH, DIM, 0), z=(BATCH, DIM, 0),
                                B=(BATCH, STATE, 0), C=(BATCH, 1, STATE, 0)))
    assert dims.length == 0


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(u=(BATCH, DIM)), "u has rank 2 (2, 6), expected rank 3 (B, D, L)"),
        (dict(A=(DIM + 1, STATE)), "A is (7, 4), expected (D, N) = (6, N)"),
        (dict(A=(DIM,)), "A is (6,), expected (D, N)"),
        (dict(delta=(BATCH, DIM, LENGTH + 1)), "delta is (2, 6, 6), expected (2, 6, 5)"),
        (dict(B=(BATCH, STATE)), "B has rank 2 (2, 4), expected rank 3 (B, N, L) or 4 (B, G, N, L)"),
        (dict(B=(BATCH, STATE + 1, LENGTH)), "B is (2, 5, 5), expected (2, 4, 5)"),
        (dict(C=(BATCH, 4, STATE, LENGTH)), "C has 4 groups, which does not divide D = 6"),
        (dict(C=(BATCH, 0, STATE, LENGTH)), "C has 0 groups, which does not divide D = 6"),
        (dict(C=(BATCH + 1, 2, STATE, LENGTH)), "C is (3, 2, 4, 5), expected (2, 2, 4, 5)"),
        (dict(D=(DIM + 1,)), "D is (7,), expected (6,)"),
        (dict(z=(BATCH, DIM, LENGTH - 1)), "z is (2, 6, 4), expected (2, 6, 5)"),
        (dict(delta_bias=(1, DIM)), "delta_bias is (1, 6), expected (6,)"),
        (dict(initial_state=(BATCH, DIM, STATE + 1)), "initial_state is (2, 6, 5), expected (2, 6, 4)"),
        (dict(B=None), "required input B is missing"),
        (dict(gate=(BATCH, DIM, LENGTH)), "unknown inputs ['gate']"),
    ],
)
def test_shape_errors_name_the_input(overrides, message):
    with pytest.raises(InputShapeError) as error:
        check_inputs(_shapes(**overrides))
    assert message in str(error.value)
    assert str(error.value).startswith("SelectiveScan: ")


def test_a_missing_required_input_is_named():
    shapes = _shapes()
    del shapes["u"]
    with pytest.raises(InputShapeError, match="required input u is missing"):
        check_inputs(shapes)


@pytest.mark.parametrize(
    "dtypes, message",
    [
        (_dtypes("float64"), "u is float64, expected one of float32, float16, bfloat16"),
        (_dtypes("float16", delta="float32"), "delta is float32, expected float16 to match u"),
        (_dtypes("bfloat16", C="float16"), "C is float16, expected bfloat16 to match u"),
        (_dtypes("float16", A="float16"), "A is float16, expected float32 (parameters and state"),
        (_dtypes(initial_state="float64"), "initial_state is float64, expected float32"),
    ],
)
def test_dtype_errors_name_the_input(dtypes, message):
    with pytest.raises(InputShapeError) as error:
        check_inputs(_shapes(), dtypes)
    assert message in str(error.value)


def test_dtypes_of_absent_inputs_are_ignored():
    dims = check_inputs(_shapes(z=None), _dtypes("float16", z="float64"))
    assert dims.batch == BATCH


# ---- the projected delta (delta_weight, delta_offset) -----------------------------------

RANK, WIDE = 3, 3 + 2 * STATE


def _projected(**overrides):
    """Layout 1 shapes with delta the (B, L, R + 2N) x_proj output, x_dt at offset 0."""
    shapes = dict(
        u=(BATCH, LENGTH, DIM), delta=(BATCH, LENGTH, WIDE), A=(DIM, STATE),
        B=(BATCH, LENGTH, WIDE), C=(BATCH, LENGTH, WIDE), D=(DIM,), z=(BATCH, LENGTH, 2 * DIM),
        delta_bias=(DIM,), initial_state=(BATCH, DIM, STATE), delta_weight=(DIM, RANK),
    )
    shapes.update(overrides)
    return shapes


PROJECTED_OFFSETS = dict(b_offset=RANK, c_offset=RANK + STATE, z_offset=DIM, delta_offset=0)


def test_projected_delta_is_accepted_and_gives_its_rank():
    dims = check_inputs(_projected(), _dtypes("float16", delta_weight="float32"), layout=1,
                        offsets=PROJECTED_OFFSETS)
    assert dims == contract.ScanDims(BATCH, DIM, LENGTH, STATE, 0, 0, rank=RANK)
    assert "delta_weight" in contract.FLOAT32_INPUTS
    assert contract.ATTRIBUTES["delta_offset"] == ("int", contract.WHOLE)


@pytest.mark.parametrize("shapes, layout, offsets, message", [
    (_shapes(delta_weight=(DIM, RANK)), 0, {}, "delta_weight needs layout 1 (channels last), the layout is 0"),
    (_projected(), 1, dict(PROJECTED_OFFSETS, delta_offset=-1),
     "delta_weight is given but attribute delta_offset is -1"),
    (_projected(delta_weight=None), 1, PROJECTED_OFFSETS,
     "attribute delta_offset is 0 but input delta_weight is absent"),
    (_projected(), 1, dict(PROJECTED_OFFSETS, delta_offset=-2), "attribute delta_offset is -2, expected -1"),
    (_projected(), 1, dict(PROJECTED_OFFSETS, delta_offset=WIDE - RANK + 1),
     f"delta is (2, 5, {WIDE}): delta_offset = {WIDE - RANK + 1} with R = {RANK} needs W >= {WIDE + 1}"),
    (_projected(delta=(BATCH, LENGTH, RANK - 1)), 1, PROJECTED_OFFSETS,
     f"delta is (2, 5, {RANK - 1}): delta_offset = 0 with R = {RANK} needs W >= {RANK}"),
    (_projected(delta_weight=(DIM + 1, RANK)), 1, PROJECTED_OFFSETS,
     f"delta_weight is ({DIM + 1}, {RANK}), expected (D, R) = ({DIM}, R) to match u"),
    (_projected(delta_weight=(DIM,)), 1, PROJECTED_OFFSETS, f"delta_weight is ({DIM},), expected (D, R)"),
    (_projected(delta=(BATCH, LENGTH + 1, WIDE)), 1, PROJECTED_OFFSETS,
     f"delta is (2, 6, {WIDE}) with delta_weight given, expected (B, L, W) with (B, L) = (2, 5)"),
])
def test_projected_delta_errors_name_the_problem(shapes, layout, offsets, message):
    with pytest.raises(InputShapeError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_inputs(shapes, layout=layout, offsets=offsets)


def test_projected_delta_weight_must_be_float32():
    with pytest.raises(InputShapeError, match="delta_weight is float16, expected float32"):
        check_inputs(_projected(), _dtypes("float16", delta_weight="float16"), layout=1, offsets=PROJECTED_OFFSETS)
