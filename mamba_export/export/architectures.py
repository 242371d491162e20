"""Declarative descriptions of the model architectures the exporter knows.

The generic code (``mixer.py``, ``stateful.py``, ``loading.py``) never asks which
class it holds: it reads where things live and how the mixer is built from the
:class:`Architecture` registered for the checkpoint's ``model_type``. Supporting a
new Mamba-like family is one subclass with ``@register_architecture`` (see
docs/adding_an_architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from mamba_export.errors import UnsupportedModelError

_REGISTRY: dict[str, "Architecture"] = {}


@dataclass(frozen=True)
class ModelDims:
    """The sizes an exported graph's I/O depends on."""

    num_layers: int
    hidden_size: int
    intermediate_size: int
    state_size: int
    conv_kernel: int
    vocab_size: int


class Architecture:
    """Where the parts of a model live and how its mixer is built.

    Attribute values are attribute names on the transformers modules (dotted paths
    are allowed), so the exporter reuses the model's own submodules and weights.
    """

    name = ""  # set by @register_architecture
    model_types: tuple = ()  # config.model_type values this entry handles
    causal_lm_class = ""  # class with a language-model head
    base_model_class = ""  # class without a head (output: last_hidden_state)

    # Model layout.
    backbone = "backbone"  # the base model inside the causal-LM class
    embeddings = "embeddings"
    layers = "layers"
    final_norm = "norm_f"
    lm_head = "lm_head"
    # Block layout.
    block_norm = "norm"
    mixer = "mixer"
    # Mixer layout.
    in_proj = "in_proj"
    conv1d = "conv1d"
    activation = "act"
    x_proj = "x_proj"
    dt_proj = "dt_proj"
    a_log = "A_log"
    d_skip = "D"
    out_proj = "out_proj"
    # Whether dt, B and C go through a weightless RMS norm before the scan, and the
    # config field holding its epsilon.
    normalized_bcdt = False
    bcdt_norm_eps = ""

    # Config fields.
    residual_in_fp32 = "residual_in_fp32"
    num_layers_field = "num_hidden_layers"

    def base_model(self, model):
        """The head-less model: the backbone of a causal LM, or the model itself."""
        return getattr(model, self.backbone) if hasattr(model, self.backbone) else model

    def has_lm_head(self, model) -> bool:
        return type(model).__name__ == self.causal_lm_class or (
            hasattr(model, self.backbone) and hasattr(model, self.lm_head))

    def blocks(self, model) -> list:
        return list(get_path(self.base_model(model), self.layers))

    def mixers(self, model) -> list:
        return [get_path(block, self.mixer) for block in self.blocks(model)]

    def dims(self, config) -> ModelDims:
        return ModelDims(
            num_layers=int(getattr(config, self.num_layers_field)),
            hidden_size=int(config.hidden_size),
            intermediate_size=int(config.intermediate_size),
            state_size=int(config.state_size),
            conv_kernel=int(config.conv_kernel),
            vocab_size=int(config.vocab_size),
        )

    def keeps_residual_in_fp32(self, config) -> bool:
        return bool(getattr(config, self.residual_in_fp32, False))


def get_path(obj, dotted: str):
    """``getattr`` along a dotted path."""
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def register_architecture(name: str):
    """Class decorator: make an :class:`Architecture` subclass known under ``name``."""

    def decorate(cls):
        if name in _REGISTRY:
            raise ValueError(f"architecture {name!r} is registered twice")
        cls.name = name
        _REGISTRY[name] = cls()
        return cls

    return decorate


def registered_architectures() -> dict[str, Architecture]:
    return dict(_REGISTRY)


def supported_model_types() -> list[str]:
    return sorted(t for arch in _REGISTRY.values() for t in arch.model_types)


def architecture_for_model_type(model_type: str) -> Architecture:
    for arch in _REGISTRY.values():
        if model_type in arch.model_types:
            return arch
    raise UnsupportedModelError(
        f"model type {model_type!r} is not supported; supported model types: "
        f"{', '.join(supported_model_types())}")


def architecture_for_model(model) -> Architecture:
    """The architecture of an in-memory transformers model, checked by its class name too."""
    arch = architecture_for_model_type(getattr(model.config, "model_type", type(model).__name__))
    class_name = type(model).__name__
    if class_name not in (arch.causal_lm_class, arch.base_model_class):
        raise UnsupportedModelError(
            f"model class {class_name} is not supported for model type {arch.name!r}; expected "
            f"{arch.causal_lm_class} or {arch.base_model_class}")
    return arch


@register_architecture("mamba")
class MambaArchitecture(Architecture):
    """state-spaces/mamba-*-hf and compatible checkpoints."""

    model_types = ("mamba",)
    causal_lm_class = "MambaForCausalLM"
    base_model_class = "MambaModel"


@register_architecture("falcon_mamba")
class FalconMambaArchitecture(Architecture):
    """Mamba with a weightless RMS norm on dt, B and C (tiiuae/falcon-mamba-*)."""

    model_types = ("falcon_mamba",)
    causal_lm_class = "FalconMambaForCausalLM"
    base_model_class = "FalconMambaModel"
    normalized_bcdt = True
    bcdt_norm_eps = "mixer_rms_eps"
