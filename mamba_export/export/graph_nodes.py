"""How many nodes each layer of an exported graph has, and of which types.

Every node is a kernel launch and some host work per call, so the node count per
layer is the graph's cost floor on a GPU; ``mamba-export info`` prints it and the
tests hold the custom backend to its budget. The exporter records for each node
the module scopes it was traced in (``pkg.torch.onnx.name_scopes``); a node traced
in ``....layers.<i>...`` belongs to layer i. Nodes traced outside any module (the
Splits, the fused norms) or written later by a rewrite belong to the layer of the
node before them: a fused norm that adds a layer's output to the residual stream
counts with that layer, the first norm (before any layer) and the head count
outside.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import onnx

SCOPES_KEY = "pkg.torch.onnx.name_scopes"
# The traced module is StatefulModel; its model's submodules are scoped "model.<path>".
_MODULE_PREFIX = "model."
_LAYER = re.compile(r"\.layers\.(\d+)(?:\.|$)")


@dataclass(frozen=True)
class LayerNodes:
    """Node counts of one graph: per layer (by index) and outside the layers."""

    per_layer: tuple[Counter, ...]
    outside: Counter

    @property
    def counts(self) -> tuple[int, ...]:
        return tuple(sum(c.values()) for c in self.per_layer)

    @property
    def max_per_layer(self) -> int:
        return max(self.counts, default=0)

    def summary(self) -> str:
        """One line, e.g. ``7 per layer (24 layers), 3 outside``."""
        counts = sorted(set(self.counts))
        per_layer = str(counts[0]) if len(counts) == 1 else f"{counts[0]} to {counts[-1]}"
        return f"{per_layer} per layer ({len(self.per_layer)} layers), {sum(self.outside.values())} outside"


def _scope_layer(node: onnx.NodeProto):
    """The node's layer index, "outside" for another module, or None when it has no module scope."""
    for prop in node.metadata_props:
        if prop.key != SCOPES_KEY:
            continue
        modules = [s for s in re.findall(r"'([^']*)'", prop.value) if s.startswith(_MODULE_PREFIX)]
        for module in reversed(modules):
            match = _LAYER.search(module)
            if match:
                return int(match.group(1))
        return "outside" if modules else None
    return None


def layer_nodes(model: onnx.ModelProto, num_layers: int) -> LayerNodes:
    """Count the top-level nodes of ``model`` per layer (see the module docstring for the rule)."""
    per_layer = tuple(Counter() for _ in range(num_layers))
    outside: Counter = Counter()
    current = None
    for node in model.graph.node:
        scope = _scope_layer(node)
        if scope is not None:
            current = scope if isinstance(scope, int) and scope < num_layers else None
        (outside if current is None else per_layer[current])[node.op_type] += 1
    return LayerNodes(per_layer, outside)


def layer_nodes_of_file(path, num_layers: int) -> LayerNodes:
    """:func:`layer_nodes` of a saved graph (its external weights are not read)."""
    return layer_nodes(onnx.load(str(Path(path)), load_external_data=False), num_layers)
