"""The parity oracle: the reference model's math in float64, with explicit states.

Running the transformers model with ``.double()`` is not a float64 computation
throughout: its RMS norms compute in float32 and the causal-LM head casts the
logits to float32, and its cache cannot continue a sequence with more than one
token. So the oracle is a short re-implementation of the Mamba forward pass
(transformers' eval path: pre-norm blocks, masked mixer input and conv output,
causal conv, selective scan, gated output) over the model's own weights in
float64, with the scan done by :func:`mamba_export.ops.reference.selective_scan`
on float64 inputs. It takes and returns states in the exported graph's layout
(conv_state: the last conv_kernel - 1 conv inputs; ssm_state: the scan state),
which gives the float64 states the exported ones are compared with, and lets a
sequence be continued from any point. ``tests/parity/test_oracle.py`` checks it
against the transformers model run in float64.

A = -exp(A_log) is taken in float64 from the stored weights, where transformers
and the export take it in float32; that one rounding of A is far below every
tolerance. FalconMamba's weightless RMS norms on dt, B and C are applied when the
mixer has them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mamba_export.ops.reference import selective_scan

DTYPE = torch.float64


def _rms_norm(x: torch.Tensor, weight: torch.Tensor | None, eps: float) -> torch.Tensor:
    normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return normed if weight is None else normed * weight


def _weight(module, name: str = "weight"):
    """A float64 CPU copy of a parameter (the reference may live on a GPU, in any dtype)."""
    value = getattr(module, name, None)
    return None if value is None else value.detach().to(device="cpu", dtype=DTYPE).clone()


class _Layer:
    """One block's weights in float64: the pre-norm and the mixer."""

    def __init__(self, block):
        mixer = block.mixer
        self.norm_weight = _weight(block.norm)
        self.norm_eps = float(block.norm.variance_epsilon)
        self.in_proj = (_weight(mixer.in_proj), _weight(mixer.in_proj, "bias"))
        self.conv_weight = _weight(mixer.conv1d)  # (intermediate, 1, kernel)
        self.conv_bias = _weight(mixer.conv1d, "bias")
        self.activation = mixer.act
        self.x_proj = _weight(mixer.x_proj)
        self.dt_proj = (_weight(mixer.dt_proj), _weight(mixer.dt_proj, "bias"))
        self.a = -torch.exp(_weight(mixer, "A_log"))
        self.d = _weight(mixer, "D")
        self.out_proj = (_weight(mixer.out_proj), _weight(mixer.out_proj, "bias"))
        self.state_size = self.a.shape[1]
        self.bcdt_eps = float(mixer.b_layernorm.eps) if hasattr(mixer, "b_layernorm") else None

    def _conv(self, x, conv_state):
        """x: (batch, intermediate, L); conv_state: (batch, intermediate, kernel - 1)."""
        window = torch.cat([conv_state, x], dim=-1)
        kept = self.conv_weight.shape[-1] - 1
        out = F.conv1d(window, self.conv_weight, self.conv_bias, groups=self.conv_weight.shape[0])
        return self.activation(out), window[:, :, window.shape[-1] - kept:]

    def mixer(self, hidden, mask, conv_state, ssm_state):
        """hidden: (batch, L, hidden) -> (out (batch, L, hidden), conv_state, ssm_state)."""
        projected = F.linear(hidden * mask[:, :, None], *self.in_proj).transpose(1, 2)
        x, gate = projected.chunk(2, dim=1)
        x, conv_state = self._conv(x, conv_state)
        x = x * mask[:, None, :]  # (batch, intermediate, L)
        n = self.state_size
        rank = self.x_proj.shape[0] - 2 * n
        time_step, b, c = torch.split(F.linear(x.transpose(1, 2), self.x_proj), [rank, n, n], dim=-1)
        if self.bcdt_eps is not None:
            time_step, b, c = (_rms_norm(t, None, self.bcdt_eps) for t in (time_step, b, c))
        delta = self.dt_proj[0] @ time_step.transpose(1, 2)
        y, ssm_state = selective_scan(x, delta, self.a, b.transpose(1, 2), c.transpose(1, 2), self.d, gate,
                                      self.dt_proj[1], ssm_state, delta_softplus=True)
        return F.linear(y.transpose(1, 2), *self.out_proj), conv_state, ssm_state

    def forward(self, hidden, mask, conv_state, ssm_state):
        normed = _rms_norm(hidden, self.norm_weight, self.norm_eps)
        out, conv_state, ssm_state = self.mixer(normed, mask, conv_state, ssm_state)
        return hidden + out, conv_state, ssm_state


class Float64Mamba:
    """A transformers Mamba (or FalconMamba) model's forward pass in float64.

    ``model``: a ``*ForCausalLM`` or ``*Model`` instance (any dtype; its weights are
    copied to float64). ``with_head``: return logits (needs an lm_head) rather than
    the last hidden state.
    """

    def __init__(self, model, with_head: bool = True):
        base = getattr(model, "backbone", model)
        self.embeddings = _weight(base.embeddings)
        self.layers = [_Layer(block) for block in base.layers]
        self.norm_f = (_weight(base.norm_f), float(base.norm_f.variance_epsilon))
        self.lm_head = _weight(model.lm_head) if with_head else None
        first = self.layers[0]
        self.intermediate_size = first.conv_weight.shape[0]
        self.conv_kernel = first.conv_weight.shape[-1]
        self.state_size = first.state_size
        # Without an in_proj bias a masked position feeds exact zeros to the conv and the scan,
        # so a left-padded row computes exactly what the row alone does.
        self.padding_is_neutral = all(layer.in_proj[1] is None for layer in self.layers)

    def zero_states(self, batch: int) -> list:
        """Per layer: conv_state (batch, intermediate, kernel - 1), ssm_state (batch, intermediate, N)."""
        return [(torch.zeros(batch, self.intermediate_size, self.conv_kernel - 1, dtype=DTYPE),
                 torch.zeros(batch, self.intermediate_size, self.state_size, dtype=DTYPE))
                for _ in self.layers]

    @torch.no_grad()
    def __call__(self, input_ids, attention_mask=None, states=None):
        """input_ids, attention_mask: (batch, L) -> (logits or hidden (batch, L, V or H), states), float64."""
        ids = torch.as_tensor(input_ids, dtype=torch.long)
        mask = torch.ones(ids.shape, dtype=DTYPE) if attention_mask is None else \
            torch.as_tensor(attention_mask).to(DTYPE)
        states = self.zero_states(ids.shape[0]) if states is None else \
            [(torch.as_tensor(c).to(DTYPE), torch.as_tensor(s).to(DTYPE)) for c, s in states]
        hidden = F.embedding(ids, self.embeddings)
        new_states = []
        for layer, (conv_state, ssm_state) in zip(self.layers, states, strict=True):
            hidden, conv_state, ssm_state = layer.forward(hidden, mask, conv_state, ssm_state)
            new_states.append((conv_state, ssm_state))
        hidden = _rms_norm(hidden, *self.norm_f)
        head = hidden if self.lm_head is None else F.linear(hidden, self.lm_head)
        return head, new_states
