// Shape and dtype checks of Linear, in the order and wording of the Python contract's
// check_inputs(), so a user sees the same message from Python and from ONNX Runtime.
#include "linear/validate.h"

#include <vector>

#include "mamba_export_ops/format.h"

namespace mamba_export_ops {
namespace {

using Shape = std::vector<int64_t>;

constexpr const char* kIoDtypes[] = {"float32", "float16", "bfloat16"};
constexpr LinearDType kIoLinearDTypes[] = {LinearDType::kFloat32, LinearDType::kFloat16, LinearDType::kBFloat16};

std::string Fail(const std::string& message) { return StrCat(kLinearOpType, ": ", message); }

std::string CheckShapes(const LinearInputs& in, LinearParams* params) {
  for (int i = 0; i < kLinearNumRequiredInputs; ++i) {
    if (!in[i].present) return Fail(StrCat("required input ", kLinearInputNames[i], " is missing"));
  }
  const Shape& x = in[kLinearInputX].shape;
  const Shape& weight = in[kLinearInputWeight].shape;
  if (x.empty()) return Fail(StrCat("x has rank 0 ", FormatShape(x), ", expected rank >= 1 (..., K)"));
  if (weight.size() != 2) return Fail(StrCat("weight is ", FormatShape(weight), ", expected rank 2 (N, K)"));
  if (weight[1] != x.back()) {
    return Fail(StrCat("weight is ", FormatShape(weight), ", expected (N, ", x.back(),
                       ") to match x's last dimension (K)"));
  }
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < x.size(); ++i) rows *= x[i];
  params->rows = rows;
  params->inner = weight[1];
  params->outer = weight[0];
  return "";
}

std::string CheckDtypes(const LinearInputs& in, LinearParams* params) {
  const std::string& io_dtype = in[kLinearInputX].dtype;
  int io_index = -1;
  for (int i = 0; i < 3; ++i) {
    if (io_dtype == kIoDtypes[i]) io_index = i;
  }
  if (io_index < 0) return Fail(StrCat("x is ", io_dtype, ", expected one of float32, float16, bfloat16"));
  if (in[kLinearInputWeight].dtype != io_dtype) {
    return Fail(StrCat("weight is ", in[kLinearInputWeight].dtype, ", expected ", io_dtype, " to match x"));
  }
  params->dtype = kIoLinearDTypes[io_index];
  return "";
}

}  // namespace

std::string ValidateLinearInputs(const LinearInputs& inputs, LinearParams* params) {
  std::string error = CheckShapes(inputs, params);
  if (error.empty()) error = CheckDtypes(inputs, params);
  return error;
}

}  // namespace mamba_export_ops
