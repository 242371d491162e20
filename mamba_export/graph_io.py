"""Names, shapes and dtypes of an exported graph's inputs and outputs.

One graph serves prefill and decode. The runtime, the exporter, the parity suite
and the embedding examples (docs/deploy.md) all read the names from here.

Inputs:
    input_ids            (batch, sequence) int64
    attention_mask       (batch, sequence) int64, 1 for real tokens, 0 for padding
    past.{i}.conv_state  (batch, intermediate_size, conv_kernel - 1) in the export dtype
    past.{i}.ssm_state   (batch, intermediate_size, state_size) float32
Outputs:
    logits               (batch, sequence or 1, vocab) in the export dtype
                         (last_hidden_state (batch, sequence, hidden) for MambaModel)
    present.{i}.conv_state, present.{i}.ssm_state: as the past ones
    next_tokens          (batch, 1) int64, only in exports made with next_tokens (after the
                         presents): the greedy choice, the argmax of the last position's logits

Zeros are the state of a fresh prompt; feeding the presents of one call as the
pasts of the next continues the sequence (decode, or a long prompt in chunks).
"""

from __future__ import annotations

INPUT_IDS = "input_ids"
ATTENTION_MASK = "attention_mask"
LOGITS = "logits"
LAST_HIDDEN_STATE = "last_hidden_state"
NEXT_TOKENS = "next_tokens"
NEXT_TOKENS_SHAPE = ("batch", 1)  # int64
STATE_KINDS = ("conv_state", "ssm_state")


def past_name(layer: int, kind: str) -> str:
    return f"past.{layer}.{kind}"


def present_name(layer: int, kind: str) -> str:
    return f"present.{layer}.{kind}"


def past_names(num_layers: int) -> list[str]:
    return [past_name(i, k) for i in range(num_layers) for k in STATE_KINDS]


def present_names(num_layers: int) -> list[str]:
    return [present_name(i, k) for i in range(num_layers) for k in STATE_KINDS]


def input_names(num_layers: int) -> list[str]:
    return [INPUT_IDS, ATTENTION_MASK] + past_names(num_layers)


def output_names(num_layers: int, head_output: str = LOGITS) -> list[str]:
    return [head_output] + present_names(num_layers)


def state_shapes(batch: int, intermediate_size: int, conv_kernel: int, state_size: int) -> dict:
    """Shape of each state kind for one layer."""
    return {
        "conv_state": (batch, intermediate_size, conv_kernel - 1),
        "ssm_state": (batch, intermediate_size, state_size),
    }
