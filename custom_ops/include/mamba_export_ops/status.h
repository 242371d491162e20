// OrtStatus helpers for the ONNX Runtime binding (ort_kernel*.cc, register*.cc).
// Kernels and validation never see ONNX Runtime: they report problems as strings,
// and only these helpers turn them into statuses the runtime raises to the user.
#pragma once

#include <exception>
#include <string>

#include <onnxruntime_cxx_api.h>

#include "mamba_export_ops/format.h"

namespace mamba_export_ops {

inline OrtStatus* MakeStatus(OrtErrorCode code, const std::string& message) {
  return Ort::GetApi().CreateStatus(code, message.c_str());
}

template <typename... Parts>
OrtStatus* InvalidArgument(const Parts&... parts) {
  return MakeStatus(ORT_INVALID_ARGUMENT, StrCat(parts...));
}

template <typename... Parts>
OrtStatus* RuntimeFailure(const Parts&... parts) {
  return MakeStatus(ORT_RUNTIME_EXCEPTION, StrCat(parts...));
}

// Runs body (returning OrtStatus*) and turns any C++ exception into a status, so
// no exception ever crosses the C ABI back into ONNX Runtime.
template <typename Body>
OrtStatus* GuardStatus(const char* what, Body&& body) noexcept {
  try {
    return body();
  } catch (const Ort::Exception& error) {
    return MakeStatus(error.GetOrtErrorCode(), StrCat(what, ": ", error.what()));
  } catch (const std::exception& error) {
    return RuntimeFailure(what, ": ", error.what());
  } catch (...) {
    return RuntimeFailure(what, ": unknown error");
  }
}

}  // namespace mamba_export_ops
