"""``mamba-export info``: describe an exported folder (backend, dtype, I/O, versions, parity), or
with ``--library`` say where the custom-op library is (for C++ and other hosts that load it)."""

from __future__ import annotations

HELP = ("Describe an exported folder: backend, dtype, graph nodes per layer, graph inputs and outputs, "
        "versions, parity summary; or with --library print the custom-op library's path.")


def add_arguments(parser) -> None:
    parser.add_argument("folder", metavar="DIR", nargs="?", help="folder written by `mamba-export export`")
    parser.add_argument("--json", action="store_true",
                        help="print export_info.json as it is (with --library: the path and whether the "
                             "library has CUDA kernels, as JSON)")
    parser.add_argument("--library", action="store_true",
                        help="print the path of the SelectiveScan library this installation uses (the one a "
                             "wheel carries, a development build, or $MAMBA_EXPORT_OPS_LIBRARY)")


def run(args) -> int:
    import json

    if args.library:
        return _print_library(args.json)
    if args.folder is None:
        from mamba_export.errors import ExportFolderError

        raise ExportFolderError("no folder given: `mamba-export info DIR` describes an export folder, "
                                "`mamba-export info --library` prints the custom-op library's path")
    from mamba_export.export.graph_nodes import layer_nodes_of_file
    from mamba_export.runtime.folder import load_export_folder

    folder = load_export_folder(args.folder)
    info = folder.info
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(format_info(info, layer_nodes_of_file(folder.model_path, folder.num_layers)))
    return 0


def _print_library(as_json: bool) -> int:
    import json

    from mamba_export.runtime.library import get_library_path, has_cuda_kernels

    path = get_library_path()
    if as_json:
        print(json.dumps({"path": path, "cuda_kernels": has_cuda_kernels(path)}, indent=2))
    else:
        print(path)
    return 0


def format_info(info: dict, nodes=None) -> str:
    """The folder's description; ``nodes`` (a graph_nodes.LayerNodes) adds the graph's node counts."""
    source = info.get("source", {})
    weights = "RANDOM weights (preset)" if source.get("random_weights") else "checkpoint weights"
    lines = [
        f"model        {source.get('model')} ({source.get('class') or info.get('architecture')}, {weights})",
        f"output       {_output_line(info)}",
        f"backend      {info.get('backend')} (custom op needed: {info.get('needs_custom_ops')})",
        f"dtype        {info.get('dtype')}   opset {info.get('opset')}   logits {info.get('logits')}",
        f"layers       {info.get('num_layers')}   hidden {info.get('hidden_size')}   "
        f"inner {info.get('intermediate_size')}   state {info.get('state_size')}   conv {info.get('conv_kernel')}",
    ]
    if nodes is not None:
        first = nodes.per_layer[0] if nodes.per_layer else {}
        types = ", ".join(f"{op} {count}" for op, count in sorted(first.items()))
        lines.append(f"nodes        {nodes.summary()}")
        lines.append(f"             layer 0: {types}")
    lines.append("inputs:")
    lines += [f"  {io['name']:<28} {io['dtype']:<8} {io['shape']}" for io in _shorten(info.get("inputs", []))]
    lines.append("outputs:")
    lines += [f"  {io['name']:<28} {io['dtype']:<8} {io['shape']}" for io in _shorten(info.get("outputs", []))]
    versions = info.get("versions", {})
    lines.append("versions     " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    parity = info.get("parity")
    if parity is None:
        lines.append("parity       not checked")
    else:
        status = "passed" if parity.get("passed") else "FAILED"
        lines.append(f"parity       {status} on {parity.get('provider', 'cpu')}")
    return "\n".join(lines)


def _output_line(info: dict) -> str:
    if info.get("head_output") == "last_hidden_state":
        return "last_hidden_state (base model: features/embeddings, no generation)"
    return f"logits (causal LM, {info.get('logits')} positions)"


def _shorten(items: list) -> list:
    """Keep the first layer's states and say how many more there are."""
    kept = [io for io in items if not io["name"].startswith(("past.", "present.")) or ".0." in io["name"]]
    hidden = len(items) - len(kept)
    if hidden:
        kept.append({"name": f"... {hidden} more per-layer states", "dtype": "", "shape": ""})
    return kept
