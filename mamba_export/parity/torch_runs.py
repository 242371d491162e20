"""The PyTorch model run the ways the parity checks need, in a chosen dtype.

These runs give the *baseline*: how far transformers itself is from the float64
oracle in the export's dtype. They use only what transformers does correctly: a
full forward, a cache advanced one token at a time (transformers 5.x restarts the
SSM from zero when a cache is continued with more than one token), and the states
in its cache after one prefill. A run that cannot carry the cache raises
:class:`BaselineUnavailable`, and the check that needed it fails.
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from mamba_export.dtypes import EXPORT_DTYPES
from mamba_export.parity import hf_cache

TORCH_DTYPES = {name: dtype.torch for name, dtype in EXPORT_DTYPES.items()}


class BaselineUnavailable(RuntimeError):
    """transformers could not produce a baseline run (e.g. it returned no cache): the check
    that needed it fails, since without a baseline it could not fail on its own."""


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().to(torch.float64).cpu().numpy()


class TorchRunner:
    """A copy of the reference in ``dtype`` on the CPU; ``with_head`` gives logits, else the
    last hidden state. Every method takes and returns NumPy arrays (outputs in float64)."""

    def __init__(self, model: torch.nn.Module, dtype: torch.dtype, with_head: bool):
        first = next(model.parameters())
        same = first.dtype == dtype and first.device.type == "cpu"
        self.model = (model if same else copy.deepcopy(model).to(device="cpu", dtype=dtype)).eval()
        self.with_head = with_head
        self.base = self.model if with_head else getattr(self.model, "backbone", self.model)

    def _forward(self, ids, mask=None, cache=None, use_cache=False):
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
        mask = None if mask is None else torch.as_tensor(np.asarray(mask), dtype=torch.long)
        keyword = {hf_cache.cache_keyword(self.base): cache} if cache is not None else {}
        out = self.base(input_ids=ids, attention_mask=mask, use_cache=use_cache, **keyword)
        head = out.logits if self.with_head else out.last_hidden_state
        return head, hf_cache.output_cache(out)

    @torch.no_grad()
    def full(self, input_ids, attention_mask=None) -> np.ndarray:
        """(batch, L) -> (batch, L, vocab or hidden)."""
        return _numpy(self._forward(input_ids, attention_mask)[0])

    @torch.no_grad()
    def decode(self, input_ids, prompt_length: int) -> np.ndarray:
        """Prefill ``prompt_length`` tokens, then feed the rest one at a time through the cache.

        Returns the outputs of the single-token steps: (batch, L - prompt_length, width).
        """
        ids = np.asarray(input_ids)
        _, cache = self._forward(ids[:, :prompt_length], use_cache=True)
        steps = []
        for position in range(prompt_length, ids.shape[1]):
            head, cache = self._forward(ids[:, position:position + 1], cache=_required(cache), use_cache=True)
            steps.append(_numpy(head[:, -1]))
        return np.stack(steps, axis=1)

    @torch.no_grad()
    def states(self, input_ids, attention_mask=None) -> list:
        """[(conv_state, ssm_state)] per layer after one prefill, in the exported graph's layout
        (the cache keeps conv_kernel inputs; the graph keeps the last conv_kernel - 1)."""
        _, cache = self._forward(input_ids, attention_mask, use_cache=True)
        cache = _required(cache)
        num_layers = len(getattr(self.model, "backbone", self.model).layers)
        states = [hf_cache.layer_states(cache, layer) for layer in range(num_layers)]
        return [(_numpy(conv[:, :, 1:]), _numpy(ssm)) for conv, ssm in states]


def _required(cache):
    if cache is None:
        raise BaselineUnavailable("transformers returned no cache with use_cache=True, so its run could not "
                                  "carry the states")
    return cache
