"""``validate()``: check an export folder against its PyTorch model, and fail loudly.

The export is run on ONNX Runtime and compared with a float64 re-implementation
of the reference model (the oracle), next to the PyTorch model in the export's
dtype (the baseline); see :mod:`mamba_export.parity.tolerances` for the rule and
:mod:`mamba_export.parity.checks` for what is compared. ``mamba-export check``
and ``export()`` (when ``ExportOptions.validate``) both call this.

A failed output raises :class:`ParityError`. An inconclusive one (PyTorch itself
too far from float64 in the export dtype for the rule to mean anything) does not
raise: the report comes back with status ``inconclusive`` and ``passed`` False,
and the caller decides (``export()`` keeps the folder and warns; ``mamba-export
check`` exits with code 3).
"""

from __future__ import annotations

import torch

from mamba_export.errors import CheckpointError, MambaExportError, ParityError
from mamba_export.options import ExportOptions, RuntimeOptions
from mamba_export.parity.checks import CHECKS, ParityContext
from mamba_export.parity.oracle import Float64Mamba
from mamba_export.parity.quantized import quantization, run_quantized_suite
from mamba_export.parity.reference import resolve_reference
from mamba_export.parity.report import ParityReport
from mamba_export.parity.torch_runs import TORCH_DTYPES, TorchRunner
from mamba_export.runtime.folder import ExportFolder, load_export_folder

# The full suite adds long prompts: rounding grows with the length, and 1024 is the
# length where float32 errors of Mamba models become visible (about 1e-4 on mamba-130m).
FULL_LENGTHS = (1, 7, 64, 256, 1024)
GREEDY_TOKENS = 64


def _lengths(folder: ExportFolder, options: ExportOptions | None, full: bool) -> tuple:
    if options is not None:
        lengths = tuple(options.check_lengths)
    else:
        recorded = (folder.info.get("options") or {}).get("check_lengths")
        lengths = tuple(recorded) if recorded else ExportOptions().check_lengths
    if any(int(n) < 1 for n in lengths):
        raise MambaExportError(f"check_lengths must be positive token counts, got {lengths}")
    return tuple(sorted({int(n) for n in lengths} | (set(FULL_LENGTHS) if full else set())))


def _selected(checks) -> list:
    if checks is None:
        return list(CHECKS)
    names = [checks] if isinstance(checks, str) else list(checks)
    unknown = [name for name in names if name not in CHECKS]
    if unknown:
        raise MambaExportError(f"unknown parity checks {unknown}; the checks are {', '.join(CHECKS)}")
    return names


def _check_reference_shapes(model: torch.nn.Module, folder: ExportFolder, with_head: bool, name: str):
    config = model.config
    for key in ("hidden_size", "intermediate_size", "state_size", "conv_kernel", "vocab_size"):
        if int(getattr(config, key)) != int(folder.info[key]):
            raise CheckpointError(f"the reference {name} has {key} = {getattr(config, key)}, the export "
                                  f"{folder.path} has {folder.info[key]}: it is not the exported model")
    if with_head and not hasattr(model, "lm_head"):
        raise CheckpointError(f"the reference {name} has no language-model head; the export has logits")


def _context(folder, export, reference, lengths: tuple) -> ParityContext:
    with_head = folder.is_causal_lm
    _check_reference_shapes(reference.model, folder, with_head, reference.description)
    torch_dtype = TorchRunner(reference.model, TORCH_DTYPES[folder.dtype], with_head)
    return ParityContext(
        export=export, oracle=Float64Mamba(reference.model, with_head), torch_dtype=torch_dtype,
        dtype=folder.dtype, head=folder.head_output,
        last_only=folder.is_causal_lm and folder.logits_mode == "last",
        vocab_size=int(folder.info["vocab_size"]), lengths=lengths, greedy_tokens=GREEDY_TOKENS)


def _failure_message(report: ParityReport) -> str:
    lines = [f"{report.folder} does not match {report.reference}:"]
    lines += [f"  {result.describe_failure()}" for result in report.failures]
    return "\n".join(lines)


def validate(output_dir, reference=None, options: ExportOptions | None = None,
             runtime: RuntimeOptions | None = None, checks=None, full: bool = False) -> ParityReport:
    """Run the parity suite on ``output_dir``; returns the report or raises ParityError.

    reference: hub id, folder, ``preset:NAME`` or a model object; None uses the source recorded
    in export_info.json. options: its ``check_lengths`` are the prompt lengths of the quick
    suite (default: the ones recorded at export). runtime: how ONNX Runtime runs the export
    (provider, IO binding, ...; default: CPU). full: add prompts up to 1024 tokens.
    checks: names from ``CHECKS`` (default: all). The ParityError carries the report. A report
    that is only inconclusive is returned (``report.status``; ``report.passed`` is False).
    """
    from mamba_export.runtime.model import ORTMambaForCausalLM, ORTMambaModel

    folder = load_export_folder(output_dir)
    names = _selected(checks)
    lengths = _lengths(folder, options, full)
    model_class = ORTMambaForCausalLM if folder.is_causal_lm else ORTMambaModel
    runtime = runtime or RuntimeOptions()
    export = model_class.from_pretrained(folder.path, options=runtime)
    resolved = resolve_reference(reference, folder)
    if quantization(folder):  # 4-bit weights: the float rule does not apply (parity/quantized.py)
        _check_reference_shapes(resolved.model, folder, folder.is_causal_lm, resolved.description)
        report = run_quantized_suite(folder, export, resolved, lengths, names, runtime.provider, GREEDY_TOKENS)
    else:
        report = _float_suite(folder, export, resolved, lengths, names, runtime.provider)
    if report.failures or not report.results:
        raise ParityError(_failure_message(report), report)
    return report


def _float_suite(folder, export, resolved, lengths, names, provider) -> ParityReport:
    context = _context(folder, export, resolved, lengths)
    report = ParityReport(str(folder.path), folder.info["backend"], folder.dtype, provider,
                          resolved.description)
    with torch.no_grad():
        for name in names:
            report.add(CHECKS[name](context))
    return report
