"""The architecture registry, and a tiny test model for every registered architecture."""

from __future__ import annotations

import pytest

from mamba_export.errors import UnsupportedModelError
from mamba_export.export.architectures import (
    Architecture,
    architecture_for_model,
    architecture_for_model_type,
    register_architecture,
    registered_architectures,
    supported_model_types,
)
from tests.support.tiny_models import TINY_CONFIGS, tiny_model


def test_every_registered_architecture_has_a_tiny_model():
    covered = {architecture for architecture, _ in TINY_CONFIGS.values()}
    assert set(registered_architectures()) <= covered


@pytest.mark.parametrize("name", sorted(TINY_CONFIGS))
def test_tiny_models_resolve_to_their_architecture(name):
    model = tiny_model(name)
    arch = architecture_for_model(model)
    assert arch.name == TINY_CONFIGS[name][0]
    assert len(arch.mixers(model)) == model.config.num_hidden_layers
    dims = arch.dims(model.config)
    assert dims.intermediate_size == 2 * model.config.hidden_size


def test_base_model_is_found_with_and_without_head():
    lm, base = tiny_model("default"), tiny_model("default", base=True)
    arch = architecture_for_model(lm)
    assert arch.has_lm_head(lm) and not arch.has_lm_head(base)
    assert arch.base_model(lm) is lm.backbone and arch.base_model(base) is base


def test_unknown_model_type_names_the_supported_ones():
    with pytest.raises(UnsupportedModelError) as error:
        architecture_for_model_type("llama")
    assert "llama" in str(error.value)
    for model_type in supported_model_types():
        assert model_type in str(error.value)


def test_unknown_class_is_rejected():
    import torch

    class Other(torch.nn.Module):
        config = tiny_model("default").config

    with pytest.raises(UnsupportedModelError, match="Other"):
        architecture_for_model(Other())


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="twice"):
        register_architecture("mamba")(type("Again", (Architecture,), {}))
