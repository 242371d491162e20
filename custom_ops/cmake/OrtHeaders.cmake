# Locates the ONNX Runtime C/C++ headers and checks their API version.
#
# ONNXRUNTIME_INCLUDE_DIR may be given by the user; otherwise the folder that
# scripts/fetch_ort_headers.sh fills (<repo>/.ort_headers) is used.
set(MAMBA_EXPORT_MIN_ORT_API 21)

function(mamba_export_find_ort_headers)
  get_filename_component(_repo_root "${CMAKE_CURRENT_SOURCE_DIR}/.." ABSOLUTE)
  set(_default "${_repo_root}/.ort_headers")
  if(NOT ONNXRUNTIME_INCLUDE_DIR)
    set(ONNXRUNTIME_INCLUDE_DIR "${_default}" CACHE PATH "Folder holding onnxruntime_c_api.h" FORCE)
  endif()
  set(_header "${ONNXRUNTIME_INCLUDE_DIR}/onnxruntime_c_api.h")
  if(NOT EXISTS "${_header}")
    message(FATAL_ERROR
      "ONNX Runtime headers not found: ${_header} does not exist.\n"
      "Run scripts/fetch_ort_headers.sh (fills ${_default}) or pass "
      "-DONNXRUNTIME_INCLUDE_DIR=<folder with onnxruntime_c_api.h>.")
  endif()
  file(STRINGS "${_header}" _line REGEX "^#define ORT_API_VERSION [0-9]+")
  string(REGEX REPLACE "^#define ORT_API_VERSION ([0-9]+).*" "\\1" _version "${_line}")
  if(NOT _version OR _version LESS MAMBA_EXPORT_MIN_ORT_API)
    message(FATAL_ERROR
      "${_header} has ORT_API_VERSION '${_version}', expected >= ${MAMBA_EXPORT_MIN_ORT_API} "
      "(ONNX Runtime 1.21 or newer).")
  endif()
  set(ONNXRUNTIME_API_VERSION "${_version}" PARENT_SCOPE)
endfunction()
