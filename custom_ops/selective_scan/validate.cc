// Shape and dtype checks of SelectiveScan, in the order and wording of the Python
// contract's check_inputs(), so a user sees the same message from PyTorch and ORT.
#include "selective_scan/validate.h"

#include "mamba_export_ops/format.h"

namespace mamba_export_ops {
namespace {

using Shape = std::vector<int64_t>;

constexpr const char* kIoDtypes[] = {"float32", "float16", "bfloat16"};
constexpr ScanDType kIoScanDTypes[] = {ScanDType::kFloat32, ScanDType::kFloat16, ScanDType::kBFloat16};

// Inputs whose dtype is the I/O dtype T; the others are always float32.
bool IsIoInput(int index) {
  return index == kInputU || index == kInputDelta || index == kInputB || index == kInputC ||
         index == kInputZ;
}

std::string Fail(const std::string& message) { return StrCat(kSelectiveScanOpType, ": ", message); }

std::string ExpectShape(const char* name, const Shape& shape, const Shape& expected, const char* why) {
  if (shape == expected) return "";
  return Fail(StrCat(name, " is ", FormatShape(shape), ", expected ", FormatShape(expected), " ", why));
}

const char* SequenceShape(int layout) { return layout == kLayoutChannelsLast ? "(B, L, D)" : "(B, D, L)"; }

// B and C are (B, N, L), shared by every channel, or (B, G, N, L) with G dividing D;
// channels last: (B, L, N) or (B, L, G, N).
std::string CheckBOrC(const char* name, const Shape& shape, int64_t batch, int64_t dim, int64_t length,
                      int64_t state, int layout, int64_t* groups) {
  const bool last = layout == kLayoutChannelsLast;
  const char* why = "to match u (B, L) and A (N)";
  if (shape.size() == 3) {
    *groups = 0;
    return ExpectShape(name, shape, last ? Shape{batch, length, state} : Shape{batch, state, length}, why);
  }
  if (shape.size() == 4) {
    const int64_t count = last ? shape[2] : shape[1];
    if (count < 1 || dim % count != 0) {
      return Fail(StrCat(name, " has ", count, " groups, which does not divide D = ", dim));
    }
    *groups = count;
    return ExpectShape(name, shape,
                       last ? Shape{batch, length, count, state} : Shape{batch, count, state, length}, why);
  }
  return Fail(StrCat(name, " has rank ", shape.size(), " ", FormatShape(shape), ", expected rank 3 ",
                     last ? "(B, L, N) or 4 (B, L, G, N)" : "(B, N, L) or 4 (B, G, N, L)"));
}

// The offset attributes in the order of the Python contract's OFFSET_ATTRIBUTES.
struct OffsetInput {
  int index;
  const char* attribute;
  int64_t offset;
};

std::string CheckOffsets(const OffsetInput (&items)[4], int layout) {
  for (const OffsetInput& item : items) {
    if (item.offset < kWholeInput) {
      return Fail(StrCat("attribute ", item.attribute, " is ", item.offset,
                         ", expected -1 (the whole input) or an offset >= 0"));
    }
    if (item.offset != kWholeInput && layout != kLayoutChannelsLast) {
      return Fail(StrCat("attribute ", item.attribute, " is ", item.offset,
                         ": offsets need layout 1 (channels last), the layout is ", layout));
    }
  }
  return "";
}

// An input read at an offset: its (B, L, W) shape, replaced in *shape by the (B, L, width)
// window the contract sees; *packed gets W.
std::string CheckWindow(const OffsetInput& item, int64_t width, int64_t batch, int64_t length, Shape* shape,
                        int64_t* packed) {
  const char* name = kInputNames[item.index];
  if (shape->size() != 3) {
    return Fail(StrCat(name, " is ", FormatShape(*shape), " with ", item.attribute, " = ", item.offset,
                       ", expected rank 3 (B, L, W): a grouped ", name, " cannot be read at an offset"));
  }
  if ((*shape)[0] != batch || (*shape)[1] != length) {
    return Fail(StrCat(name, " is ", FormatShape(*shape), ", expected (B, L, W) with (B, L) = (", batch, ", ",
                       length, ") to match u"));
  }
  if ((*shape)[2] < item.offset + width) {
    return Fail(StrCat(name, " is ", FormatShape(*shape), ": ", item.attribute, " = ", item.offset,
                       " with width ", width, " needs W >= ", item.offset + width));
  }
  *packed = (*shape)[2];
  *shape = Shape{batch, length, width};
  return "";
}

// The projected form: delta_weight (D, R) and delta a (B, L, W) tensor with W >= delta_offset + R;
// without delta_weight, delta_offset is kWholeInput. Sets params->rank and packed.delta.
std::string CheckProjectedDelta(const ScanInputs& in, int64_t offset, int64_t batch, int64_t length, int64_t dim,
                                SelectiveScanParams* params) {
  if (!in[kInputDeltaWeight].present) {
    if (offset != kWholeInput) {
      return Fail(StrCat("attribute ", kAttrDeltaOffset, " is ", offset, " but input delta_weight is absent"));
    }
    return "";
  }
  if (offset == kWholeInput) {
    return Fail(StrCat("input delta_weight is given but attribute ", kAttrDeltaOffset,
                       " is -1, expected the offset (>= 0) of x_dt in delta"));
  }
  const Shape& weight = in[kInputDeltaWeight].shape;
  if (weight.size() != 2 || weight[0] != dim) {
    return Fail(StrCat("delta_weight is ", FormatShape(weight), ", expected (D, R) = (", dim, ", R) to match u"));
  }
  const int64_t rank = weight[1];
  const Shape& delta = in[kInputDelta].shape;
  if (delta.size() != 3 || delta[0] != batch || delta[1] != length) {
    return Fail(StrCat("delta is ", FormatShape(delta), " with delta_weight given, expected (B, L, W) with (B, L) = (",
                       batch, ", ", length, ") to match u"));
  }
  if (delta[2] < offset + rank) {
    return Fail(StrCat("delta is ", FormatShape(delta), ": ", kAttrDeltaOffset, " = ", offset, " with R = ", rank,
                       " needs W >= ", offset + rank));
  }
  params->rank = rank;
  params->packed.delta = delta[2];
  return "";
}

std::string CheckShapes(const ScanInputs& in, int layout, const ScanOffsets& offsets,
                        SelectiveScanParams* params) {
  if (layout != kLayoutChannelsFirst && layout != kLayoutChannelsLast) {
    return Fail(StrCat("attribute ", kAttrLayout, " is ", layout,
                       ", expected 0 (channels first) or 1 (channels last)"));
  }
  if (in[kInputDeltaWeight].present && layout != kLayoutChannelsLast) {
    return Fail(StrCat("input delta_weight needs layout 1 (channels last), the layout is ", layout));
  }
  // The last entry is delta_offset, checked with the others and used by CheckProjectedDelta.
  const OffsetInput offset_inputs[4] = {{kInputB, kAttrBOffset, offsets.b},
                                        {kInputC, kAttrCOffset, offsets.c},
                                        {kInputZ, kAttrZOffset, offsets.z},
                                        {kInputDelta, kAttrDeltaOffset, offsets.delta}};
  if (std::string error = CheckOffsets(offset_inputs, layout); !error.empty()) return error;
  params->offsets = offsets;
  for (int i = 0; i < kNumRequiredInputs; ++i) {
    if (!in[i].present) return Fail(StrCat("required input ", kInputNames[i], " is missing"));
  }
  const Shape& u = in[kInputU].shape;
  if (u.size() != 3) {
    return Fail(StrCat("u has rank ", u.size(), " ", FormatShape(u), ", expected rank 3 ",
                       SequenceShape(layout)));
  }
  const bool last = layout == kLayoutChannelsLast;
  const int64_t batch = u[0], dim = last ? u[2] : u[1], length = last ? u[1] : u[2];
  const Shape& a = in[kInputA].shape;
  if (a.size() != 2 || a[0] != dim) {
    return Fail(StrCat("A is ", FormatShape(a), ", expected (D, N) = (", dim, ", N) to match u"));
  }
  const int64_t state = a[1];
  std::string error = CheckProjectedDelta(in, offsets.delta, batch, length, dim, params);
  if (error.empty() && !in[kInputDeltaWeight].present) {
    error = ExpectShape("delta", in[kInputDelta].shape, u, "to match u");
  }
  // B, C and z as the contract sees them: read whole, or the window an offset selects.
  Shape seen[kNumInputs];
  for (int i = 0; i < kNumInputs; ++i) seen[i] = in[i].shape;
  int64_t* packed[3] = {&params->packed.b, &params->packed.c, &params->packed.z};
  const int64_t widths[3] = {state, state, dim};
  for (int k = 0; k < 3 && error.empty(); ++k) {
    const OffsetInput& item = offset_inputs[k];
    if (item.offset == kWholeInput) continue;
    if (!in[item.index].present) {
      error = Fail(StrCat("attribute ", item.attribute, " is ", item.offset, " but input ",
                          kInputNames[item.index], " is absent"));
    } else {
      error = CheckWindow(item, widths[k], batch, length, &seen[item.index], packed[k]);
    }
  }
  if (error.empty()) {
    error = CheckBOrC("B", seen[kInputB], batch, dim, length, state, layout, &params->groups_b);
  }
  if (error.empty()) {
    error = CheckBOrC("C", seen[kInputC], batch, dim, length, state, layout, &params->groups_c);
  }
  const struct {
    int index;
    Shape expected;
  } optional[] = {{kInputD, {dim}},
                  {kInputZ, u},
                  {kInputDeltaBias, {dim}},
                  {kInputInitialState, {batch, dim, state}}};
  for (const auto& item : optional) {
    if (!error.empty()) break;
    if (in[item.index].present) {
      error = ExpectShape(kInputNames[item.index], seen[item.index], item.expected,
                          "to match u and A");
    }
  }
  params->batch = batch;
  params->dim = dim;
  params->length = length;
  params->state = state;
  params->layout = layout;
  return error;
}

std::string CheckDtypes(const ScanInputs& in, SelectiveScanParams* params) {
  const std::string& io_dtype = in[kInputU].dtype;
  int io_index = -1;
  for (int i = 0; i < 3; ++i) {
    if (io_dtype == kIoDtypes[i]) io_index = i;
  }
  if (io_index < 0) {
    return Fail(StrCat("u is ", io_dtype, ", expected one of float32, float16, bfloat16"));
  }
  for (int i = 0; i < kNumInputs; ++i) {
    if (!in[i].present) continue;
    const bool io = IsIoInput(i);
    const std::string expected = io ? io_dtype : "float32";
    if (in[i].dtype != expected) {
      const char* why = io ? "to match u" : "(parameters and state are always float32)";
      return Fail(StrCat(kInputNames[i], " is ", in[i].dtype, ", expected ", expected, " ", why));
    }
  }
  params->dtype = kIoScanDTypes[io_index];
  return "";
}

}  // namespace

std::string ValidateSelectiveScanInputs(const ScanInputs& inputs, int layout, const ScanOffsets& offsets,
                                        SelectiveScanParams* params) {
  std::string error = CheckShapes(inputs, layout, offsets, params);
  if (error.empty()) error = CheckDtypes(inputs, params);
  if (error.empty()) SetLayoutStrides(params);
  return error;
}

}  // namespace mamba_export_ops
