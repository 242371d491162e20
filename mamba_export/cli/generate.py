"""``mamba-export generate``: continue a prompt with an exported folder.

The prompt comes from ``--prompt``, or from standard input when it is not a
terminal, or as token ids with ``--ids`` (no tokenizer needed). The prompt is printed
once the model has taken it (a rejected prompt prints nothing but the error), then each
new token as soon as it is known, so a long generation shows its progress (and Ctrl-C
keeps what was printed).
"""

from __future__ import annotations

from mamba_export.errors import MambaExportError

HELP = "Generate text (or token ids) from an exported folder on ONNX Runtime."


def add_arguments(parser) -> None:
    parser.add_argument("folder", metavar="DIR", help="folder written by `mamba-export export`")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--prompt", "-p", help="prompt text (default: read standard input)")
    source.add_argument("--ids", help="prompt as comma-separated token ids; prints ids instead of text")
    parser.add_argument("--tokenizer", help="tokenizer.json or a folder holding one (default: DIR)")
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--do-sample", action="store_true", help="sample instead of greedy decoding")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0, help="0 keeps every token")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--provider", choices=("cpu", "cuda"), default="cpu")


def run(args) -> int:
    import numpy as np

    from mamba_export.cli.text import load_tokenizer, parse_ids, read_prompt
    from mamba_export.runtime.folder import load_export_folder
    from mamba_export.runtime.model import ORTMambaForCausalLM

    folder = load_export_folder(args.folder)
    if not folder.is_causal_lm:
        raise MambaExportError(
            f"{folder.path} is a base-model export (its graph outputs {folder.head_output}, no logits), "
            "so it cannot generate text; use it for features (ORTMambaModel in Python, or `mamba-export "
            "check`), or export the causal LM (e.g. MambaForCausalLM) to generate")

    tokenizer = None
    if args.ids is not None:
        prompt_ids = parse_ids(args.ids)
    else:
        tokenizer = load_tokenizer(args.tokenizer or args.folder)
        prompt_ids = tokenizer.encode(read_prompt(args.prompt)).ids
    model = ORTMambaForCausalLM.from_pretrained(args.folder, provider=args.provider)
    printer = _TokenPrinter(tokenizer, prompt_ids)
    model.generate(
        np.asarray([prompt_ids], dtype=np.int64), max_new_tokens=args.max_new_tokens,
        do_sample=args.do_sample, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        seed=args.seed, on_tokens=lambda tokens: printer.add(int(tokens[0])),
    )
    printer.finish()
    return 0


class _TokenPrinter:
    """Prints the prompt, then each token as it comes: ids separated by spaces, or text deltas."""

    def __init__(self, tokenizer, prompt_ids):
        from mamba_export.serve.text import CompletionText

        self.text = None if tokenizer is None else CompletionText(tokenizer)
        self.first = True
        self.prompt = list(prompt_ids)  # printed with the first new token, or at the end

    def add(self, token: int) -> None:
        self._print_prompt()
        self._print(token)

    def finish(self) -> None:
        self._print_prompt()
        print(self.text.finish() if self.text is not None else "", flush=True)

    def _print_prompt(self) -> None:
        prompt, self.prompt = self.prompt, []
        for token in prompt:
            self._print(token)

    def _print(self, token: int) -> None:
        if self.text is None:
            piece, self.first = ("" if self.first else " ") + str(token), False
        else:
            piece = self.text.add(token)
        print(piece, end="", flush=True)
