"""``mamba-export serve``: serve an exported folder over HTTP on Ray Serve (docs/serving.md)."""

from __future__ import annotations

HELP = "Serve an exported folder over an OpenAI-style HTTP API on Ray Serve, with continuous batching."


def add_arguments(parser) -> None:
    from mamba_export.serve.options import ServeOptions

    defaults = ServeOptions()
    parser.add_argument("folder", metavar="DIR", help="folder written by `mamba-export export` (a causal LM)")
    parser.add_argument("--replicas", type=int, default=1, help="model replicas behind Serve's router")
    parser.add_argument("--max-batch", type=int, default=defaults.max_batch, help="rows decoded together per replica")
    parser.add_argument("--max-waiting", type=int, default=defaults.max_waiting,
                        help="requests queued per replica beyond the batch before answering 503")
    parser.add_argument("--prefill-chunk", type=int, default=defaults.prefill_chunk,
                        help="prompt tokens read per scheduler step")
    parser.add_argument("--max-prompt-tokens", type=int, default=defaults.max_prompt_tokens)
    parser.add_argument("--max-tokens", type=int, default=defaults.max_tokens,
                        help="largest max_tokens a request may ask")
    parser.add_argument("--provider", choices=("cpu", "cuda"), default=defaults.provider)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--address", default=None, help="join this Ray cluster (e.g. auto, or ray://HEAD:10001) "
                                                        "instead of starting a local one")


def run(args) -> int:
    from mamba_export.errors import MambaExportError
    from mamba_export.runtime.folder import load_export_folder
    from mamba_export.serve.options import ServeOptions

    if args.replicas < 1:
        raise MambaExportError(f"--replicas must be at least 1, got {args.replicas}")
    if not load_export_folder(args.folder).is_causal_lm:
        raise MambaExportError(f"{args.folder} is a base-model export (no logits); serve a causal LM export")
    options = ServeOptions(provider=args.provider, max_batch=args.max_batch, max_waiting=args.max_waiting,
                           prefill_chunk=args.prefill_chunk, max_prompt_tokens=args.max_prompt_tokens,
                           max_tokens=args.max_tokens)
    try:
        from mamba_export.serve.app import serve_forever
    except ImportError as error:
        raise MambaExportError(f"serving needs Ray Serve ({error}); install it with "
                               "pip install 'mamba-export[serve]'") from error
    serve_forever(args.folder, options, args.replicas, args.host, args.port, args.address)
    return 0
