"""Greedy tokens of an exported folder on ONNX Runtime CUDA against transformers on the same GPU.

Both run in float32 from the same weights (the folder's recorded source, e.g. a seeded
preset). transformers decodes with its own cache, one token per call. Prints the two
sequences, where they first differ (with the float32 logit margin of the reference's
choice there, to tell a near tie from a real difference), and writes JSON.

    python3 scripts/gpu_greedy_check.py out/mamba-130m --tokens 64 --json $OUT/greedy.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--prompt-length", type=int, default=8)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from mamba_export.parity.reference import resolve_reference
    from mamba_export.runtime.folder import load_export_folder
    from mamba_export.runtime.model import ORTMambaForCausalLM

    folder = load_export_folder(args.folder)
    reference = resolve_reference(None, folder).model.to(device="cuda", dtype=torch.float32).eval()
    vocab = int(folder.info["vocab_size"])
    prompt = np.random.default_rng(3).integers(2, vocab, size=(1, args.prompt_length), dtype=np.int64)

    exported = ORTMambaForCausalLM.from_pretrained(args.folder, provider="cuda")
    ort_tokens = exported.generate(prompt, max_new_tokens=args.tokens, eos_token_id=[])[0, args.prompt_length:]
    with torch.inference_mode():
        ids = torch.from_numpy(prompt).cuda()
        out = reference.generate(ids, max_new_tokens=args.tokens, min_new_tokens=args.tokens, do_sample=False,
                                 pad_token_id=0, use_cache=True)
        torch_tokens = out[0, args.prompt_length:].cpu().numpy()
        differ = np.nonzero(ort_tokens != torch_tokens)[0]
        first = int(differ[0]) if differ.size else None
        margin = None
        if first is not None:
            context = torch.from_numpy(np.concatenate([prompt[0], torch_tokens[:first]])[None]).cuda()
            logits = reference(context).logits[0, -1].float()
            top = torch.topk(logits, 2).values
            margin = float((top[0] - top[1]) / logits.abs().max())
    result = {"tokens": args.tokens, "identical": first is None, "first_difference": first,
              "relative_top2_margin_at_difference": margin, "onnxruntime_cuda": ort_tokens.tolist(),
              "transformers_cuda": torch_tokens.tolist(), "gpu": torch.cuda.get_device_name(0),
              "folder_info": {k: folder.info[k] for k in ("backend", "dtype", "source")}}
    print(f"ORT CUDA    : {ort_tokens.tolist()}")
    print(f"transformers: {torch_tokens.tolist()}")
    print("greedy tokens identical" if first is None else f"first difference at token {first}, margin {margin}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0 if first is None else 1


if __name__ == "__main__":
    sys.exit(main())
