"""The module that is traced: a transformers Mamba model with its states as plain tensors.

``StatefulModel.forward(input_ids, attention_mask, *past_states)`` returns
``(logits or last_hidden_state, *present_states)`` with the states in the order of
``mamba_export.graph_io`` (per layer: conv_state, ssm_state). It reuses the
model's own embeddings, blocks, norms and head, follows transformers' block math
(pre-norm, residual kept in float32 when the config says so), and never touches
transformers' cache classes. Use it inside ``routed_through_op``, which gives the
mixers their explicit-state form.

With ``fused_norms`` (graphs for ONNX Runtime, the custom backend) each block's
residual sum and norm are one ONNX Runtime node (``mamba_export.ops.ort_norms``): the
sum of a block's residual and mixer output is formed by the next block's norm (the
final norm after the last block), which hands it on as the next residual. A
half-precision model whose residual stream is float32 uses our own
``ResidualRMSNorm`` (``mamba_export.ops.residual_norm``) instead: it takes the block's
half-precision output and the float32 stream as they are, so the layer has no Cast.
"""

from __future__ import annotations

import torch

from mamba_export.export.architectures import Architecture, get_path
from mamba_export.ops import ort_norms, torch_op  # noqa: F401  (register torch.ops.mamba_export.*rms_norm)


class StatefulModel(torch.nn.Module):
    """input_ids, attention_mask: (batch, sequence) int64; past_states: per layer
    conv_state (batch, intermediate_size, conv_kernel - 1) in the model dtype and
    ssm_state (batch, intermediate_size, state_size) float32."""

    def __init__(self, model, arch: Architecture, logits: str = "all", fused_norms: bool = False):
        super().__init__()
        self.model = model
        self.arch = arch
        self.last_logits_only = logits == "last"
        self.with_lm_head = arch.has_lm_head(model)
        self.residual_in_fp32 = arch.keeps_residual_in_fp32(model.config)
        self.fused_norms = fused_norms

    @property
    def dtype(self) -> torch.dtype:
        return get_path(self.arch.base_model(self.model), self.arch.embeddings).weight.dtype

    def _block(self, block, hidden, attention_mask, conv_state, ssm_state):
        norm = get_path(block, self.arch.block_norm)
        residual = hidden.to(torch.float32) if self.residual_in_fp32 else hidden
        normed = norm(hidden.to(norm.weight.dtype))
        out, conv_state, ssm_state = get_path(block, self.arch.mixer)(
            normed, attention_mask, conv_state, ssm_state)
        return residual + out, conv_state, ssm_state

    def _fused_norm(self, norm, out, residual):
        """The residual stream after a mixer output ``out`` (None before the first block),
        normed by ``norm`` in one ORT node: returns (normed in the norm's dtype, residual)."""
        residual_dtype = torch.float32 if self.residual_in_fp32 else norm.weight.dtype
        if residual_dtype == torch.float32 and norm.weight.dtype in (torch.float16, torch.bfloat16):
            # Our node: half-precision in and out, the float32 stream beside it, no Cast.
            return torch.ops.mamba_export.residual_rms_norm(
                out.to(norm.weight.dtype), norm.weight, residual, norm.variance_epsilon)
        # ORT has no bfloat16 CPU kernel for its norms: bfloat16 models norm in float32.
        compute = torch.float32 if residual_dtype == torch.bfloat16 else residual_dtype
        weight = norm.weight.to(compute)
        if residual is None:
            residual = out.to(residual_dtype)
            normed = torch.ops.mamba_export.rms_norm(out.to(compute), weight, norm.variance_epsilon)
        else:
            normed, total = torch.ops.mamba_export.skip_rms_norm(
                out.to(compute), residual.to(compute), weight, norm.variance_epsilon)
            residual = total.to(residual_dtype)
        return normed.to(norm.weight.dtype), residual

    def _fused_forward(self, base, hidden, attention_mask, past_states):
        out, residual, presents = hidden, None, []
        for index, block in enumerate(self.arch.blocks(self.model)):
            normed, residual = self._fused_norm(get_path(block, self.arch.block_norm), out, residual)
            out, conv_state, ssm_state = get_path(block, self.arch.mixer)(
                normed, attention_mask, past_states[2 * index], past_states[2 * index + 1])
            presents += [conv_state, ssm_state]
        hidden, _ = self._fused_norm(get_path(base, self.arch.final_norm), out, residual)
        return hidden, presents

    def forward(self, input_ids, attention_mask, *past_states):
        base = self.arch.base_model(self.model)
        hidden = get_path(base, self.arch.embeddings)(input_ids)
        if self.fused_norms:
            hidden, presents = self._fused_forward(base, hidden, attention_mask, past_states)
        else:
            presents = []
            for index, block in enumerate(self.arch.blocks(self.model)):
                conv_state, ssm_state = past_states[2 * index], past_states[2 * index + 1]
                hidden, conv_state, ssm_state = self._block(block, hidden, attention_mask, conv_state,
                                                            ssm_state)
                presents += [conv_state, ssm_state]
            hidden = get_path(base, self.arch.final_norm)(hidden)
        if self.last_logits_only:
            hidden = hidden[:, -1:, :]
        if self.with_lm_head:
            lm_head = get_path(self.model, self.arch.lm_head)
            hidden = lm_head(hidden.to(lm_head.weight.dtype))
        return (hidden.to(self.dtype), *presents)

    def zero_states(self, batch: int, device=None) -> list[torch.Tensor]:
        """Fresh-prompt states for ``batch`` rows, in graph_io order."""
        states = []
        for mixer in self.arch.mixers(self.model):
            conv = get_path(mixer, self.arch.conv1d)
            channels, kernel = conv.weight.shape[0], conv.kernel_size[0]
            state_size = get_path(mixer, self.arch.a_log).shape[1]
            states.append(torch.zeros(batch, channels, kernel - 1, dtype=self.dtype, device=device))
            states.append(torch.zeros(batch, channels, state_size, dtype=torch.float32, device=device))
        return states
