// Shape and dtype checks of LastArgMax, in the order and wording of the Python
// contract's check_inputs(), so a user sees the same message from PyTorch and ORT.
#include "last_argmax/validate.h"

#include <vector>

#include "mamba_export_ops/format.h"

namespace mamba_export_ops {
namespace {

using Shape = std::vector<int64_t>;

constexpr const char* kIoDtypes[] = {"float32", "float16", "bfloat16"};
constexpr ArgMaxDType kIoArgMaxDTypes[] = {ArgMaxDType::kFloat32, ArgMaxDType::kFloat16, ArgMaxDType::kBFloat16};

std::string Fail(const std::string& message) { return StrCat(kLastArgMaxOpType, ": ", message); }

std::string CheckShape(const ArgMaxInputs& in, LastArgMaxParams* params) {
  for (int i = 0; i < kArgMaxNumRequiredInputs; ++i) {
    if (!in[i].present) return Fail(StrCat("required input ", kArgMaxInputNames[i], " is missing"));
  }
  const Shape& logits = in[kArgMaxInputLogits].shape;
  if (logits.size() != 3) {
    return Fail(StrCat("logits has rank ", logits.size(), " ", FormatShape(logits), ", expected rank 3 (B, L, V)"));
  }
  if (logits[1] == 0) {
    return Fail(StrCat("logits is ", FormatShape(logits),
                       ", expected L >= 1 positions (the argmax of the last position needs one)"));
  }
  if (logits[2] == 0) {
    return Fail(StrCat("logits is ", FormatShape(logits), ", expected V >= 1 (the argmax of no values is undefined)"));
  }
  params->batch = logits[0];
  params->positions = logits[1];
  params->vocab = logits[2];
  return "";
}

std::string CheckDtype(const ArgMaxInputs& in, LastArgMaxParams* params) {
  const std::string& io_dtype = in[kArgMaxInputLogits].dtype;
  for (int i = 0; i < 3; ++i) {
    if (io_dtype == kIoDtypes[i]) {
      params->dtype = kIoArgMaxDTypes[i];
      return "";
    }
  }
  return Fail(StrCat("logits is ", io_dtype, ", expected one of float32, float16, bfloat16"));
}

}  // namespace

std::string ValidateLastArgMaxInputs(const ArgMaxInputs& inputs, LastArgMaxParams* params) {
  std::string error = CheckShape(inputs, params);
  if (error.empty()) error = CheckDtype(inputs, params);
  return error;
}

}  // namespace mamba_export_ops
