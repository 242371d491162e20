"""Loading what a replica serves: the causal LM of an export folder and its tokenizer.

Kept apart from the HTTP code so that scripts/load_test.py's in-process mode loads the
model exactly as a replica does, on a machine without Ray or Starlette.
"""

from __future__ import annotations

from mamba_export.errors import MambaExportError
from mamba_export.serve.options import ServeOptions

TOKENIZER_FILE = "tokenizer.json"


def load_model(folder, options: ServeOptions):
    """The causal LM of ``folder`` on the options' provider, and its tokenizer (None without tokenizer.json)."""
    from mamba_export.options import RuntimeOptions
    from mamba_export.runtime.folder import load_export_folder
    from mamba_export.runtime.model import ORTMambaForCausalLM

    export = load_export_folder(folder)
    if not export.is_causal_lm:
        raise MambaExportError(f"{export.path} is a base-model export (no logits); serve a causal LM export")
    # Threads that sleep between calls leave the cores to the HTTP and scheduling threads.
    runtime = RuntimeOptions(provider=options.provider, intra_op_threads=options.intra_op_threads, spin=False)
    model = ORTMambaForCausalLM.from_pretrained(export.path, options=runtime)
    tokenizer = None
    if (export.path / TOKENIZER_FILE).is_file():
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(export.path / TOKENIZER_FILE))
    return model, tokenizer
