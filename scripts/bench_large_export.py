"""Export the published Mamba sizes for real and check the result loads and matches PyTorch.

For each run (a preset size and an export dtype: the shapes of state-spaces/mamba-*-hf,
random weights), two fresh child processes, as a user would run export and then load:

The export process
1. builds the model directly in the export dtype: the modules are created on the meta
   device, given storage in that dtype and initialised with transformers' own
   initialisation from a fixed seed, so no float32 copy of a float16 model ever exists;
2. runs PyTorch in the export dtype on a short prompt, and the float64 oracle one
   module at a time (each module cast to float64 for its call and back, which is exact);
3. exports with ``mamba_export.export`` (custom backend, no parity suite: its float64
   oracle would hold the weights twice more), weights in ``model.onnx.data`` for every size
   (the exporter's threshold is lowered to 0, so the small sizes take the large ones' path).

The load process loads the folder with ``ORTMambaForCausalLM`` (the external data really
loads) and runs the same prompt. The export passes when its error against the oracle is
within the parity suite's rule, ``FACTOR * (PyTorch's own error) + FLOOR[dtype]``
(``mamba_export/parity/tolerances.py``).

Peak resident memory is read per phase from the kernel (VmHWM, reset at each phase
through /proc/self/clear_refs); the export phase's peak shows whether a second full copy
of the weights was held. Prints a table and writes JSON (default
results/bench_large_export.json).

    nice python3 scripts/bench_large_export.py                       # every size, float32
    nice python3 scripts/bench_large_export.py mamba-1.4b:fp32 mamba-2.8b:fp16

A run needs about twice its weight size in free memory (the export, then ONNX Runtime);
the script refuses a run when /proc/meminfo's MemAvailable is below that, unless --force.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = ("mamba-130m:fp32", "mamba-370m:fp32", "mamba-790m:fp32", "mamba-1.4b:fp32", "mamba-2.8b:fp16")
PROMPT_LENGTH = 8
SEED = 0
EXPORT_PHASES = ("build", "pytorch_logits", "float64_logits", "export")
LOAD_PHASES = ("ort_load", "ort_logits")


def mem_available_gb() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


class Phases:
    """Time and peak RSS of each phase of the child (VmHWM reset at each phase start)."""

    def __init__(self):
        self.record: dict = {}

    def run(self, name: str, function):
        gc.collect()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset the peak to the current RSS
        except OSError:
            pass
        rss_before = _status_kb("VmRSS")
        start = time.perf_counter()
        result = function()
        self.record[name] = {"seconds": round(time.perf_counter() - start, 1),
                             "rss_before_gb": round(rss_before / 1024**2, 2),
                             "peak_rss_gb": round(_status_kb("VmHWM") / 1024**2, 2)}
        return result


def build_in_dtype(name: str, dtype: str):
    """The preset's MambaForCausalLM, initialised by transformers from SEED, in ``dtype`` only."""
    import torch
    from transformers import MambaForCausalLM

    from mamba_export.export.presets import preset_config
    from mamba_export.options import TORCH_DTYPE_NAMES

    with torch.device("meta"):
        model = MambaForCausalLM(preset_config(name))
    model = model.to(getattr(torch, TORCH_DTYPE_NAMES[dtype]))
    model.to_empty(device="cpu")
    for module in model.modules():
        module._is_hf_initialized = False
    torch.manual_seed(SEED)
    model.init_weights()
    model.tie_weights()
    return model.eval()


def float64_logits(model, ids):
    """The logits in float64, one module at a time: each is cast to float64 for its own call
    and back (exact), so at most one layer exists twice. Residuals stay float64 (a float32
    residual would round the oracle)."""
    import torch

    dtype = next(model.parameters()).dtype
    backbone = model.backbone

    def run(module, *args):
        module.double()
        try:
            with torch.no_grad():
                return module(*args)
        finally:
            module.to(dtype)

    hidden = run(backbone.embeddings, torch.as_tensor(ids))
    for block in backbone.layers:
        keep, block.residual_in_fp32 = block.residual_in_fp32, False
        try:
            hidden = run(block, hidden)
        finally:
            block.residual_in_fp32 = keep
    hidden = run(backbone.norm_f, hidden)
    return run(model.lm_head, hidden).numpy()


def sibling(out: Path, what: str) -> Path:
    """A file beside the export folder (``mamba-1.4b-fp32.ids.npy``): names hold dots."""
    return out.parent / f"{out.name}.{what}.npy"


def export_child(run: str, workdir: Path) -> dict:
    """Build, reference logits (float64 oracle and PyTorch in the export dtype), export."""
    import numpy as np
    import torch

    from mamba_export.export import convert
    from mamba_export.options import ExportOptions

    name, dtype = run.split(":")
    # Every size takes the path the sizes over 2 GB must take: weights in model.onnx.data.
    convert.EXTERNAL_DATA_THRESHOLD = 0
    torch.set_num_threads(os.cpu_count() or 1)
    phases = Phases()
    model = phases.run("build", lambda: build_in_dtype(name, dtype))
    tensors = {id(t): t for t in [*model.parameters(), *model.buffers()]}.values()
    weight_bytes = sum(t.numel() * t.element_size() for t in tensors)
    ids = np.random.default_rng(SEED).integers(0, model.config.vocab_size, (1, PROMPT_LENGTH))

    def in_dtype():
        with torch.no_grad():
            return model(torch.as_tensor(ids)).logits.double().numpy()

    out = workdir / f"{name}-{dtype}"
    out.mkdir(parents=True, exist_ok=True)
    np.save(sibling(out, "ids"), ids)
    np.save(sibling(out, "torch"), phases.run("pytorch_logits", in_dtype))
    np.save(sibling(out, "oracle"), phases.run("float64_logits", lambda: float64_logits(model, ids)))
    options = ExportOptions(backend="custom", dtype=dtype, validate=False, show_progress=False, force=True)
    phases.run("export", lambda: convert.export(model, out, options))
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.name.startswith("model.onnx")}
    return {"weights_gb": round(weight_bytes / 1024**3, 2), "files_gb": {k: round(v / 1024**3, 3) for k, v in
                                                                          files.items()},
            "external_data": "model.onnx.data" in files, "phases": phases.record,
            "export_peak_over_weights": round(phases.record["export"]["peak_rss_gb"] * 1024**3 / weight_bytes, 2)}


def load_child(run: str, workdir: Path) -> dict:
    """Load the folder in ONNX Runtime (a fresh process, as a user would) and compare the logits."""
    import numpy as np

    from mamba_export.parity.tolerances import relative_error, tolerance
    from mamba_export.runtime.model import ORTMambaForCausalLM

    name, dtype = run.split(":")
    out = workdir / f"{name}-{dtype}"
    phases = Phases()
    model = phases.run("ort_load", lambda: ORTMambaForCausalLM.from_pretrained(out))
    ids = np.load(sibling(out, "ids"))
    logits = phases.run("ort_logits", lambda: model(ids).logits)
    oracle, in_dtype = np.load(sibling(out, "oracle")), np.load(sibling(out, "torch"))
    error, baseline = relative_error(logits, oracle), relative_error(in_dtype, oracle)
    return {"phases": phases.record, "logits_rel_error": error, "pytorch_rel_error": baseline,
            "tolerance": tolerance(baseline, dtype),
            "passed": bool(np.isfinite(error) and error <= tolerance(baseline, dtype)),
            "finite_logits": bool(np.isfinite(logits).all()),
            "finite_pytorch_logits": bool(np.isfinite(in_dtype).all()),
            "argmax_agrees": bool((logits.argmax(-1) == oracle.argmax(-1)).all())}


def child(run: str, workdir: Path, part: str) -> dict:
    return export_child(run, workdir) if part == "export" else load_child(run, workdir)


def environment() -> dict:
    from mamba_export import folder_format

    return {"machine": platform.machine(), "cpus": os.cpu_count(),
            "mem_total_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
            "python": platform.python_version(), "versions": folder_format.versions(),
            "command": " ".join(["python3", "scripts/bench_large_export.py", *sys.argv[1:]])}


def estimated_need_gb(run: str) -> float:
    from mamba_export.export.presets import preset_config

    name, dtype = run.split(":")
    config = preset_config(name)
    d, inner = config.hidden_size, config.intermediate_size
    per_layer = d * 2 * inner + inner * config.conv_kernel + inner * (config.time_step_rank + 2 * config.state_size)
    per_layer += config.time_step_rank * inner + inner * config.state_size + inner * d
    params = per_layer * config.num_hidden_layers + config.vocab_size * d
    return 2 * params * (4 if dtype == "fp32" else 2) / 1024**3


def table(results: list) -> str:
    head = (f"{'run':<18} {'weights':>8} {'onnx+data':>10} {'export s':>9} {'export peak':>12} "
            f"{'ort load s':>11} {'ort peak':>9} {'ort err':>9} {'torch err':>9} {'ok':>3}")
    lines = [head, "-" * len(head)]
    for r in results:
        if "error" in r:
            lines.append(f"{r['run']:<18} {r['error']}")
            continue
        p = r["phases"]
        lines.append(
            f"{r['run']:<18} {r['weights_gb']:>6.2f}GB {sum(r['files_gb'].values()):>8.2f}GB "
            f"{p['export']['seconds']:>9.1f} {r['peak_rss_gb']['export_process']:>10.2f}GB "
            f"{p['ort_load']['seconds']:>11.1f} {r['peak_rss_gb']['load_process']:>7.2f}GB "
            f"{r['logits_rel_error']:>9.1e} {r['pytorch_rel_error']:>9.1e} {'yes' if r['passed'] else 'NO':>3}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", default=list(DEFAULT_RUNS), help="NAME:DTYPE, e.g. mamba-1.4b:fp32")
    parser.add_argument("--json", default=str(REPO / "results" / "bench_large_export.json"))
    parser.add_argument("--workdir", default=None, help="where the exports go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the exported folders")
    parser.add_argument("--force", action="store_true", help="run even when MemAvailable looks too small")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(child(args.child, Path(args.workdir), args.part)))
        return 0

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_large_export-"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for run in args.runs:
        need, available = estimated_need_gb(run), mem_available_gb()
        if need > available and not args.force:
            results.append({"run": run, "error": f"skipped: needs about {need:.1f} GB, {available:.1f} GB available"})
            print(results[-1]["error"], file=sys.stderr)
            continue
        record = {"run": run, "model": f"preset:{run.split(':')[0]}", "dtype": run.split(":")[1],
                  "prompt_length": PROMPT_LENGTH, "mem_available_before_gb": round(available, 1)}
        for part in ("export", "load"):
            command = [sys.executable, __file__, "--child", run, "--part", part, "--workdir", str(workdir)]
            proc = subprocess.run(command, capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO)})
            if proc.returncode != 0:
                record = {"run": run, "error": f"{part} failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}"}
                break
            child_record = json.loads(proc.stdout.strip().splitlines()[-1])
            record = {**record, **child_record, "phases": {**record.get("phases", {}), **child_record["phases"]}}
        if "phases" in record:
            record["peak_rss_gb"] = {part: max(record["phases"][p]["peak_rss_gb"] for p in phase_names)
                                     for part, phase_names in (("export_process", EXPORT_PHASES),
                                                               ("load_process", LOAD_PHASES))}
        results.append(record)
        print(table(results[-1:]).splitlines()[-1], file=sys.stderr)
        if not args.keep:
            for path in workdir.glob(run.replace(":", "-") + "*"):
                subprocess.run(["rm", "-rf", str(path)])
    print(table(results))
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps({"environment": environment(), "results": results}, indent=2) + "\n")
    return 0 if all(r.get("passed") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
