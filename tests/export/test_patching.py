"""routed_through_op changes only the given model, and only inside the block."""

from __future__ import annotations

import pytest
import torch

from mamba_export.errors import MambaExportError
from mamba_export.export.patching import routed_through_op
from tests.support.tiny_models import tiny_model


def _forwards(model):
    return [layer.mixer.forward for layer in model.backbone.layers]


def test_mixers_take_explicit_states_inside_and_are_restored_after():
    model, other = tiny_model("default"), tiny_model("default")
    ids = torch.randint(0, model.config.vocab_size, (1, 5))
    before = model(ids, use_cache=False).logits
    mixer = model.backbone.layers[0].mixer
    hidden = torch.randn(1, 5, model.config.hidden_size)
    conv = torch.zeros(1, model.config.intermediate_size, model.config.conv_kernel - 1)
    ssm = torch.zeros(1, model.config.intermediate_size, model.config.state_size)
    with routed_through_op(model):
        out, new_conv, new_ssm = mixer(hidden, torch.ones(1, 5, dtype=torch.long), conv, ssm)
        assert out.shape == hidden.shape and new_conv.shape == conv.shape and new_ssm.shape == ssm.shape
        assert "forward" not in other.backbone.layers[0].mixer.__dict__
    assert all("forward" not in layer.mixer.__dict__ for layer in model.backbone.layers)
    torch.testing.assert_close(model(ids, use_cache=False).logits, before)


def test_restored_after_an_error():
    model = tiny_model("default")
    with pytest.raises(RuntimeError, match="boom"), routed_through_op(model):
        raise RuntimeError("boom")
    assert all("forward" not in layer.mixer.__dict__ for layer in model.backbone.layers)


def test_unknown_backend_is_refused():
    model = tiny_model("default")
    with pytest.raises(MambaExportError, match="backend"), routed_through_op(model, "tensorrt"):
        pass
