// Shape and dtype checks of ResidualRMSNorm, in the order and wording of the Python
// contract's check_inputs(), so a user sees the same message from PyTorch and ORT.
#include "residual_norm/validate.h"

#include <vector>

#include "mamba_export_ops/format.h"

namespace mamba_export_ops {
namespace {

using Shape = std::vector<int64_t>;

constexpr const char* kIoDtypes[] = {"float32", "float16", "bfloat16"};
constexpr NormDType kIoNormDTypes[] = {NormDType::kFloat32, NormDType::kFloat16, NormDType::kBFloat16};

// The dtype each input must have: "" for the I/O dtype T.
const char* FixedDtype(int index) {
  switch (index) {
    case kNormInputResidual: return "float32";
    default: return "";
  }
}

std::string Fail(const std::string& message) { return StrCat(kResidualNormOpType, ": ", message); }

std::string ExpectShape(const char* name, const Shape& shape, const Shape& expected, const char* why) {
  if (shape == expected) return "";
  return Fail(StrCat(name, " is ", FormatShape(shape), ", expected ", FormatShape(expected), " ", why));
}

std::string CheckShapes(const NormInputs& in, ResidualNormParams* params) {
  for (int i = 0; i < kNormNumRequiredInputs; ++i) {
    if (!in[i].present) return Fail(StrCat("required input ", kNormInputNames[i], " is missing"));
  }
  const Shape& x = in[kNormInputX].shape;
  if (x.empty()) return Fail(StrCat("x has rank 0 ", FormatShape(x), ", expected rank >= 1 (..., H)"));
  const int64_t hidden = x.back();
  std::string error = ExpectShape("weight", in[kNormInputWeight].shape, {hidden}, "to match x (H)");
  if (error.empty() && in[kNormInputResidual].present) {
    error = ExpectShape("residual", in[kNormInputResidual].shape, x, "to match x");
  }
  if (!error.empty()) return error;
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < x.size(); ++i) rows *= x[i];
  params->rows = rows;
  params->hidden = hidden;
  return "";
}

std::string CheckDtypes(const NormInputs& in, ResidualNormParams* params) {
  const std::string& io_dtype = in[kNormInputX].dtype;
  int io_index = -1;
  for (int i = 0; i < 3; ++i) {
    if (io_dtype == kIoDtypes[i]) io_index = i;
  }
  if (io_index < 0) return Fail(StrCat("x is ", io_dtype, ", expected one of float32, float16, bfloat16"));
  for (int i = 0; i < kNormNumInputs; ++i) {
    if (!in[i].present) continue;
    const std::string fixed = FixedDtype(i);
    const std::string expected = fixed.empty() ? io_dtype : fixed;
    if (in[i].dtype != expected) {
      const char* why = fixed.empty() ? "to match x" : "(the residual stream is always float32)";
      return Fail(StrCat(kNormInputNames[i], " is ", in[i].dtype, ", expected ", expected, " ", why));
    }
  }
  params->dtype = kIoNormDTypes[io_index];
  return "";
}

}  // namespace

std::string ValidateResidualNormInputs(const NormInputs& inputs, ResidualNormParams* params) {
  std::string error = CheckShapes(inputs, params);
  if (error.empty()) error = CheckDtypes(inputs, params);
  return error;
}

}  // namespace mamba_export_ops
