"""The whole standard-ops export on every runtime docs/deploy.md names: logits and carried states vs float64.

A prompt runs from zero states, then one more token continues from the states the
graph returned, on ONNX Runtime, onnx.reference and OpenVINO alike. The float64
oracle (mamba_export.parity.oracle) gives the expected logits and states for both
calls. The graphs compute in float32; on these tiny models their error is about
1e-7 relative, and 1e-4 leaves room for float32 rounding while a runtime that
misreads the Scan (a wrong axis, a state not carried) gives errors of order 1.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from mamba_export import graph_io
from mamba_export.parity.oracle import Float64Mamba
from tests.export.test_convert import feeds_for, relative_error, tokens
from tests.support import standard_runtimes
from tests.support.tiny_models import tiny_config, tiny_model

FLOAT32_GRAPH = 1e-4


def _states_by_layer(outputs: dict, layers: int) -> list:
    return [(outputs[graph_io.present_name(i, "conv_state")], outputs[graph_io.present_name(i, "ssm_state")])
            for i in range(layers)]


@pytest.mark.parametrize("runtime", standard_runtimes.RUNTIMES)
@pytest.mark.parametrize("name", ["default", "falcon_mamba"])
def test_prompt_then_one_token_match_the_oracle(export_tiny, name, runtime):
    folder = export_tiny(name, backend="standard")
    assert all(node.domain == "" for node in onnx.load(folder / "model.onnx").graph.node)
    config, oracle = tiny_config(name), Float64Mamba(tiny_model(name))
    layers = config.num_hidden_layers
    prompt = tokens(config, 2, 6, seed=3)
    first = standard_runtimes.run(runtime, folder / "model.onnx", feeds_for(config, prompt))
    expected_logits, expected_states = oracle(prompt)
    assert relative_error(first[graph_io.LOGITS], expected_logits.numpy()) < FLOAT32_GRAPH
    states = _states_by_layer(first, layers)
    for (conv, ssm), (conv_ref, ssm_ref) in zip(states, expected_states, strict=True):
        assert relative_error(conv, conv_ref.numpy()) < FLOAT32_GRAPH
        assert relative_error(ssm, ssm_ref.numpy()) < FLOAT32_GRAPH

    step = tokens(config, 2, 1, seed=4)
    carried = [state for pair in states for state in pair]
    second = standard_runtimes.run(runtime, folder / "model.onnx", feeds_for(config, step, states=carried))
    expected_logits, expected_states = oracle(step, states=expected_states)
    assert relative_error(second[graph_io.LOGITS], expected_logits.numpy()) < FLOAT32_GRAPH
    for (conv, ssm), (conv_ref, ssm_ref) in zip(_states_by_layer(second, layers), expected_states, strict=True):
        assert relative_error(conv, conv_ref.numpy()) < FLOAT32_GRAPH
        assert relative_error(ssm, ssm_ref.numpy()) < FLOAT32_GRAPH
    assert np.isfinite(second[graph_io.LOGITS]).all()
