"""Session building: the custom-op library only when needed, no silent CPU fallback."""

from __future__ import annotations

import json
import shutil

import pytest

from mamba_export.errors import BackendUnavailableError, CustomOpsNotFoundError, MambaExportError
from mamba_export.options import RuntimeOptions
from mamba_export.runtime.folder import load_export_folder
from mamba_export.runtime.model import ORTMambaForCausalLM, ORTMambaModel, resolve_options
from mamba_export.runtime.session import (
    create_session,
    cuda_device_id,
    library_path,
    options_for_folder,
    providers_for,
)


def _has_cuda_provider() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


@pytest.mark.skipif(_has_cuda_provider(), reason="this onnxruntime has the CUDA provider")
def test_cuda_without_the_cuda_provider_is_an_error(exported):
    with pytest.raises(BackendUnavailableError, match="onnxruntime-gpu"):
        ORTMambaForCausalLM.from_pretrained(exported("standard"), provider="cuda")
    with pytest.raises(BackendUnavailableError, match="CUDAExecutionProvider"):
        providers_for(RuntimeOptions(provider="cuda"))


def test_cpu_session_runs_on_cpu_only(exported):
    model = ORTMambaForCausalLM.from_pretrained(exported("standard"))
    assert model.session.get_providers() == ["CPUExecutionProvider"]
    assert model.provider == "cpu"


def test_standard_export_needs_no_library(exported, monkeypatch):
    monkeypatch.setenv("MAMBA_EXPORT_OPS_LIBRARY", "/nonexistent/libmamba_export_ops.so")
    folder = load_export_folder(exported("standard"))
    assert folder.info["needs_custom_ops"] is False
    create_session(folder, RuntimeOptions())  # the bad library path is never looked at


def test_custom_export_with_missing_library(exported, monkeypatch):
    folder = exported("custom")
    monkeypatch.setenv("MAMBA_EXPORT_OPS_LIBRARY", "/nonexistent/libmamba_export_ops.so")
    with pytest.raises(CustomOpsNotFoundError, match="mamba-export build-ops"):
        ORTMambaForCausalLM.from_pretrained(folder)


def test_custom_export_with_explicit_missing_library(exported):
    options = RuntimeOptions(library_path="/nonexistent/lib.so")
    with pytest.raises(CustomOpsNotFoundError, match=r"/nonexistent/lib.so.*build-ops"):
        ORTMambaForCausalLM.from_pretrained(exported("custom"), options=options)


def test_custom_export_with_explicit_library(exported, ops_library):
    options = RuntimeOptions(library_path=ops_library)
    model = ORTMambaForCausalLM.from_pretrained(exported("custom"), options=options)
    assert model(([[1, 2, 3]])).logits.shape == (1, 3, 61)


def test_library_that_is_not_one(exported, tmp_path):
    fake = tmp_path / "libfake.so"
    fake.write_bytes(b"not a shared library")
    with pytest.raises(CustomOpsNotFoundError, match="could not load"):
        ORTMambaForCausalLM.from_pretrained(exported("custom"),
                                            options=RuntimeOptions(library_path=str(fake)))


def test_custom_graph_without_registration_names_the_op(exported, tmp_path):
    # A folder that claims it needs no library but holds a SelectiveScan node.
    target = tmp_path / "export"
    shutil.copytree(exported("custom"), target)
    info = json.loads((target / "export_info.json").read_text())
    info["needs_custom_ops"] = False
    (target / "export_info.json").write_text(json.dumps(info))
    with pytest.raises(CustomOpsNotFoundError, match="SelectiveScan"):
        ORTMambaForCausalLM.from_pretrained(target)


def test_bf16_export_on_cpu_is_unavailable(exported):
    with pytest.raises(BackendUnavailableError, match="bf16"):
        ORTMambaForCausalLM.from_pretrained(exported("standard", dtype="bf16"))


def test_wrong_model_class(exported):
    with pytest.raises(MambaExportError, match="load it with ORTMambaForCausalLM"):
        ORTMambaModel.from_pretrained(exported("standard"))
    with pytest.raises(MambaExportError, match="load it with ORTMambaModel"):
        ORTMambaForCausalLM.from_pretrained(exported("standard", base=True))


def test_provider_and_options_must_agree():
    assert resolve_options(None, None).provider == "cpu"
    assert resolve_options("cuda", None).provider == "cuda"
    assert resolve_options(None, RuntimeOptions(intra_op_threads=1)).intra_op_threads == 1
    with pytest.raises(MambaExportError, match="contradicts"):
        resolve_options("cuda", RuntimeOptions(provider="cpu"))


def test_cuda_graphs_are_on_by_default_for_cuda_only():
    assert RuntimeOptions(provider="cuda").use_cuda_graph
    assert not RuntimeOptions(provider="cuda", cuda_graph=False).use_cuda_graph
    assert not RuntimeOptions(provider="cuda", io_binding=False).use_cuda_graph
    assert not RuntimeOptions().use_cuda_graph
    with pytest.raises(MambaExportError, match="needs provider='cuda'"):
        RuntimeOptions(cuda_graph=True)
    with pytest.raises(MambaExportError, match="io_binding"):
        RuntimeOptions(provider="cuda", cuda_graph=True, io_binding=False)


def test_prefill_buckets_and_warm_up_are_for_the_device_decoder():
    cuda = RuntimeOptions(provider="cuda")
    assert cuda.prefill_multiple == 64 and cuda.warm_up_to("custom") == 2048 and cuda.warm_up_to("standard") == 0
    assert RuntimeOptions(provider="cuda", prefill_bucket=16, warm_up_length=256).warm_up_to("standard") == 256
    assert RuntimeOptions(provider="cuda", prefill_bucket=1).warm_up_to("custom") == 0
    for host in (RuntimeOptions(), RuntimeOptions(provider="cuda", io_binding=False)):
        assert host.prefill_multiple == 1 and host.warm_up_to("custom") == 0
    assert RuntimeOptions(prefill_bucket=1, warm_up_length=0).prefill_multiple == 1  # "off" is fine anywhere
    with pytest.raises(MambaExportError, match="prefill_bucket=8 applies to provider='cuda' with io_binding"):
        RuntimeOptions(prefill_bucket=8)
    with pytest.raises(MambaExportError, match="warm_up_length=64 applies to provider='cuda'"):
        RuntimeOptions(provider="cuda", io_binding=False, warm_up_length=64)
    for bad in (0, -3, 2.5, True, "64"):
        with pytest.raises(MambaExportError, match="prefill_bucket must be an integer >= 1"):
            RuntimeOptions(provider="cuda", prefill_bucket=bad)
    with pytest.raises(MambaExportError, match="warm_up_length must be an integer >= 0"):
        RuntimeOptions(provider="cuda", warm_up_length=-1)
    with pytest.raises(MambaExportError, match="needs prefill buckets"):
        RuntimeOptions(provider="cuda", prefill_bucket=1, warm_up_length=128)


@pytest.fixture
def cuda_listed(monkeypatch):
    """onnxruntime claims the CUDA provider (only the provider list is built, no session)."""
    import onnxruntime as ort

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])


@pytest.mark.parametrize("allow_tf32, expected", [(False, "0"), (True, "1")])
def test_cuda_provider_options_keep_float32_exact_unless_tf32_is_allowed(cuda_listed, allow_tf32, expected):
    providers = providers_for(RuntimeOptions(provider="cuda", allow_tf32=allow_tf32))
    name, cuda_options = providers[0]
    assert name == "CUDAExecutionProvider" and providers[1] == "CPUExecutionProvider"
    assert cuda_options == {"use_tf32": expected, "enable_cuda_graph": "1", "cudnn_conv_algo_search": "HEURISTIC"}


def test_cuda_options_override_the_defaults(cuda_listed):
    options = RuntimeOptions(provider="cuda", cuda_graph=False,
                             cuda_options={"cudnn_conv_algo_search": "EXHAUSTIVE", "device_id": 1})
    assert providers_for(options)[0][1] == {"use_tf32": "0", "cudnn_conv_algo_search": "EXHAUSTIVE",
                                            "device_id": "1"}
    assert cuda_device_id(options) == 1
    assert RuntimeOptions(provider="cuda", cuda_options={"device_id": 1}) == \
        RuntimeOptions(provider="cuda", cuda_options=(("device_id", "1"),))
    assert RuntimeOptions(provider="cuda", cuda_options={"device_id": 1}).to_dict()["cuda_options"] == \
        {"device_id": "1"}


def test_token_head_session_captures_no_graphs(cuda_listed):
    options = RuntimeOptions(provider="cuda", cuda_options={"device_id": 2})
    assert providers_for(options, head=True)[0][1] == {"use_tf32": "0", "cudnn_conv_algo_search": "HEURISTIC",
                                                       "device_id": "2"}


@pytest.mark.parametrize("cuda_options, match", [
    ({"enable_cuda_graph": "1"}, "RuntimeOptions.cuda_graph"),
    ({"use_tf32": "1"}, "RuntimeOptions.allow_tf32"),
    ("HEURISTIC", "dict of CUDA provider options"),
])
def test_bad_cuda_options(cuda_options, match):
    with pytest.raises(MambaExportError, match=match):
        RuntimeOptions(provider="cuda", cuda_options=cuda_options)


def test_cuda_options_need_the_cuda_provider():
    with pytest.raises(MambaExportError, match="apply to provider='cuda'"):
        RuntimeOptions(cuda_options={"device_id": 0})


def test_bad_device_id(cuda_listed):
    with pytest.raises(MambaExportError, match="device_id must be an integer"):
        providers_for(RuntimeOptions(provider="cuda", cuda_options={"device_id": "first"}))


def test_cuda_session_refuses_a_library_without_cuda_kernels(cpu_only_library):
    """Checked before any session exists, so it holds on machines without a GPU too."""
    options = RuntimeOptions(provider="cuda", library_path=cpu_only_library)
    with pytest.raises(CustomOpsNotFoundError, match=r"without CUDA kernels.*build-ops --cuda"):
        library_path(options)
    assert library_path(RuntimeOptions(library_path=cpu_only_library)) == cpu_only_library


def test_cuda_session_takes_a_library_with_cuda_kernels(cuda_library):
    assert library_path(RuntimeOptions(provider="cuda", library_path=cuda_library)) == cuda_library


def test_the_graph_default_is_off_for_the_scan_backend(exported, caplog):
    """ONNX Runtime captures no control flow; the standard backend's recurrence is an ONNX Scan."""
    import logging

    standard, custom = load_export_folder(exported("standard")), load_export_folder(exported("custom"))
    cuda = RuntimeOptions(provider="cuda")
    with caplog.at_level(logging.INFO, logger="mamba_export.runtime.session"):
        settled = options_for_folder(standard, cuda)
    assert settled.cuda_graph is False and not settled.use_cuda_graph
    assert "no CUDA graphs for the standard backend" in caplog.text
    assert options_for_folder(custom, cuda) == cuda and cuda.use_cuda_graph
    explicit = RuntimeOptions(provider="cuda", cuda_graph=True)
    assert options_for_folder(standard, explicit) == explicit  # asked for: ONNX Runtime's refusal is reported
    assert options_for_folder(standard, RuntimeOptions()) == RuntimeOptions()


REFUSAL = ("This session cannot use the graph capture feature as requested by the user as all compute graph "
           "nodes have not been partitioned to the CUDAExecutionProvider")


def _refusing(calls):
    """A create_session that refuses CUDA graphs the way onnxruntime words it, and records its options."""
    def create(folder, options):
        calls.append(options)
        if options.use_cuda_graph:
            raise BackendUnavailableError("onnxruntime refused CUDA graphs") from RuntimeError(REFUSAL)
        return "session"

    return create


def test_a_refused_graph_default_opens_a_session_without_graphs(exported, monkeypatch, caplog):
    from mamba_export.runtime import session

    calls = []
    monkeypatch.setattr(session, "create_session", _refusing(calls))
    folder = load_export_folder(exported("custom"))
    options, opened = session.open_session(folder, RuntimeOptions(provider="cuda"))
    assert opened == "session" and options.cuda_graph is False
    assert [c.use_cuda_graph for c in calls] == [True, False]
    assert "decoding without CUDA graphs" in caplog.text


def test_a_refusal_of_explicit_graphs_or_another_error_stays_an_error(exported, monkeypatch):
    from mamba_export.runtime import session

    folder = load_export_folder(exported("custom"))
    monkeypatch.setattr(session, "create_session", _refusing([]))
    with pytest.raises(BackendUnavailableError, match="refused CUDA graphs"):
        session.open_session(folder, RuntimeOptions(provider="cuda", cuda_graph=True))

    def no_cuda(folder, options):
        raise BackendUnavailableError("onnxruntime did not enable CUDAExecutionProvider")

    monkeypatch.setattr(session, "create_session", no_cuda)
    with pytest.raises(BackendUnavailableError, match="did not enable"):
        session.open_session(folder, RuntimeOptions(provider="cuda"))


def test_spin_false_lets_the_threads_sleep(exported):
    from mamba_export.runtime.session import session_options

    folder = load_export_folder(exported("standard"))
    assert session_options(folder, RuntimeOptions(spin=False)).get_session_config_entry(
        "session.intra_op.allow_spinning") == "0"
    with pytest.raises(RuntimeError):  # the default leaves ONNX Runtime's own setting (spinning)
        session_options(folder, RuntimeOptions()).get_session_config_entry("session.intra_op.allow_spinning")
