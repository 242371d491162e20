#!/usr/bin/env python3
"""Rewrite an export's next_tokens from one LastArgMax node back to ONNX's Gather/Cast/ArgMax.

Custom-backend exports with ``next_tokens`` compute it with our LastArgMax op
(``docs/last_argmax_op.md``); the standard backend writes ONNX's nodes
(``mamba_export/export/next_tokens.py``, ``add_onnx_nodes``). To time both forms of the same
export on a GPU, this replaces the LastArgMax node of a folder's ``model.onnx`` by ONNX's nodes:
in place, or in a copy of the folder (``--out``). The output's name, shape and dtype do not
change, so the runtime reads either folder the same way. Weights kept in an external data file
are not read: only the graph's own file is rewritten.

Usage: python scripts/onnx_next_tokens.py FOLDER [--out COPY]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="an export folder whose graph has next_tokens")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the rewritten export here (a copy of FOLDER; must not exist) instead of in place")
    return parser.parse_args(argv)


def rewrite(model) -> None:
    """Replace the LastArgMax node that writes next_tokens by ONNX's nodes, in place."""
    from mamba_export import graph_io
    from mamba_export.export.next_tokens import add_onnx_nodes
    from mamba_export.ops import last_argmax as contract

    graph = model.graph
    nodes = [node for node in graph.node if graph_io.NEXT_TOKENS in node.output]
    if not nodes:
        raise SystemExit(f"the graph has no {graph_io.NEXT_TOKENS!r} output")
    (node,) = nodes
    if (node.op_type, node.domain) != (contract.OP_TYPE, contract.DOMAIN):
        raise SystemExit(f"{graph_io.NEXT_TOKENS} is written by {node.op_type}, not {contract.OP_TYPE}: "
                         f"nothing to rewrite")
    head = node.input[0]
    outputs = {output.name: output for output in graph.output}
    if head not in outputs:
        raise SystemExit(f"LastArgMax reads {head!r}, which is not a graph output")
    graph.node.remove(node)
    add_onnx_nodes(model, head, outputs[head])


def main(argv=None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO))
    import onnx

    from mamba_export.folder_format import MODEL_FILE

    folder = args.folder
    if args.out is not None:
        if args.out.exists():
            raise SystemExit(f"{args.out} exists; --out must be a new folder")
        shutil.copytree(folder, args.out)
        folder = args.out
    path = folder / MODEL_FILE
    model = onnx.load(path, load_external_data=False)
    rewrite(model)
    onnx.save(model, path)
    print(f"rewrote {path}: next_tokens from ONNX's nodes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
