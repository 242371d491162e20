// Shape and dtype checks of CausalConv1d, in the order and wording of the Python
// contract's check_inputs(), so a user sees the same message from PyTorch and ORT.
#include "causal_conv/validate.h"

#include <vector>

#include "mamba_export_ops/format.h"

namespace mamba_export_ops {
namespace {

using Shape = std::vector<int64_t>;

constexpr const char* kIoDtypes[] = {"float32", "float16", "bfloat16"};
constexpr ConvDType kIoConvDTypes[] = {ConvDType::kFloat32, ConvDType::kFloat16, ConvDType::kBFloat16};

// The dtype each input must have: "" for the I/O dtype T.
const char* FixedDtype(int index) {
  switch (index) {
    case kConvInputWeight:
    case kConvInputBias: return "float32";
    case kConvInputMask: return "int64";
    default: return "";
  }
}

std::string Fail(const std::string& message) { return StrCat(kCausalConvOpType, ": ", message); }

std::string ExpectShape(const char* name, const Shape& shape, const Shape& expected, const char* why) {
  if (shape == expected) return "";
  return Fail(StrCat(name, " is ", FormatShape(shape), ", expected ", FormatShape(expected), " ", why));
}

// x's shape as the contract sees it: x itself, or the (B, L, C) window x_offset selects
// (C from the weight); *step gets the last dimension of x as given.
std::string WindowOfX(const Shape& given, const Shape& weight, int64_t x_offset, Shape* x, int64_t* step) {
  if (given.size() != 3) {
    const std::string expected =
        x_offset == kWholeInput ? std::string("(B, L, C)") : StrCat("(B, L, W) with x_offset = ", x_offset);
    return Fail(StrCat("x has rank ", given.size(), " ", FormatShape(given), ", expected rank 3 ", expected));
  }
  *x = given;
  *step = given[2];
  if (x_offset == kWholeInput) return "";
  if (weight.size() != 2) return Fail(StrCat("weight is ", FormatShape(weight), ", expected (C, K) with K >= 1"));
  const int64_t channels = weight[0];
  if (given[2] < x_offset + channels) {
    return Fail(StrCat("x is ", FormatShape(given), ": x_offset = ", x_offset, " with width C = ", channels,
                       " (from weight) needs W >= ", x_offset + channels));
  }
  *x = Shape{given[0], given[1], channels};
  return "";
}

std::string CheckShapes(const ConvInputs& in, int64_t x_offset, CausalConvParams* params) {
  if (x_offset < kWholeInput) {
    return Fail(StrCat("attribute ", kAttrXOffset, " is ", x_offset, ", expected -1 (the whole x) or an offset >= 0"));
  }
  for (int i = 0; i < kConvNumRequiredInputs; ++i) {
    if (!in[i].present) return Fail(StrCat("required input ", kConvInputNames[i], " is missing"));
  }
  Shape x;
  int64_t step = 0;
  if (std::string error = WindowOfX(in[kConvInputX].shape, in[kConvInputWeight].shape, x_offset, &x, &step);
      !error.empty()) {
    return error;
  }
  const int64_t batch = x[0], length = x[1], channels = x[2];
  const Shape& weight = in[kConvInputWeight].shape;
  if (weight.size() != 2 || weight[0] != channels || weight[1] < 1) {
    return Fail(StrCat("weight is ", FormatShape(weight), ", expected (C, K) = (", channels,
                       ", K) with K >= 1 to match x"));
  }
  const int64_t width = weight[1];
  const struct {
    int index;
    Shape expected;
    const char* why;
  } optional[] = {{kConvInputBias, {channels}, "to match x (C)"},
                  {kConvInputConvState, {batch, channels, width - 1}, "to match x (B, C) and weight (K - 1)"},
                  {kConvInputMask, {batch, length}, "to match x (B, L)"}};
  for (const auto& item : optional) {
    if (!in[item.index].present) continue;
    std::string error = ExpectShape(kConvInputNames[item.index], in[item.index].shape, item.expected, item.why);
    if (!error.empty()) return error;
  }
  params->batch = batch;
  params->length = length;
  params->channels = channels;
  params->width = width;
  params->x_offset = x_offset;
  params->x_step = step;
  return "";
}

std::string CheckDtypes(const ConvInputs& in, CausalConvParams* params) {
  const std::string& io_dtype = in[kConvInputX].dtype;
  int io_index = -1;
  for (int i = 0; i < 3; ++i) {
    if (io_dtype == kIoDtypes[i]) io_index = i;
  }
  if (io_index < 0) return Fail(StrCat("x is ", io_dtype, ", expected one of float32, float16, bfloat16"));
  for (int i = 0; i < kConvNumInputs; ++i) {
    if (!in[i].present) continue;
    const std::string fixed = FixedDtype(i);
    const std::string expected = fixed.empty() ? io_dtype : fixed;
    if (in[i].dtype != expected) {
      const char* why = fixed.empty()           ? "to match x"
                        : fixed == "float32"    ? "(the taps and the bias are always float32)"
                                                : "(the mask is the model's int64 attention mask)";
      return Fail(StrCat(kConvInputNames[i], " is ", in[i].dtype, ", expected ", expected, " ", why));
    }
  }
  params->dtype = kIoConvDTypes[io_index];
  return "";
}

}  // namespace

std::string ValidateCausalConvInputs(const ConvInputs& inputs, int64_t x_offset, CausalConvParams* params) {
  std::string error = CheckShapes(inputs, x_offset, params);
  if (error.empty()) error = CheckDtypes(inputs, params);
  return error;
}

}  // namespace mamba_export_ops
