#include "ops/conv_params.h"

#include <sstream>
#include <string>

namespace convext {
namespace {

// ATen's expand_param_if_needed: a 1-element list broadcasts to every dim.
std::vector<int64_t> expand_param(at::IntArrayRef p, const char* name, int64_t dims) {
  if (p.size() == 1) return std::vector<int64_t>(dims, p[0]);
  TORCH_CHECK(static_cast<int64_t>(p.size()) == dims,
              "expected ", name, " to be a single integer value or a list of ",
              dims, " values to match the convolution dimensions, but got ",
              name, "=", p);
  return p.vec();
}

struct Params {
  std::vector<int64_t> stride, padding, dilation;
};

// The checks of ATen's _convolution and check_shape_forward that concern the
// parameters, in the same order (so the first error reported is the same).
Params check_params(at::IntArrayRef weight_sizes, at::IntArrayRef stride,
                    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups) {
  const int64_t dims = static_cast<int64_t>(weight_sizes.size()) - 2;
  TORCH_CHECK(dims > 0, "weight should have at least three dimensions");
  TORCH_CHECK(groups > 0, "non-positive groups is not supported");
  Params p{expand_param(stride, "stride", dims), expand_param(padding, "padding", dims),
           expand_param(dilation, "dilation", dims)};
  for (auto v : p.padding) TORCH_CHECK(v >= 0, "negative padding is not supported");
  for (auto v : p.stride) TORCH_CHECK(v > 0, "non-positive stride is not supported");
  for (auto v : p.dilation) TORCH_CHECK(v >= 0, "dilation should be greater than zero");
  for (auto v : p.dilation) TORCH_CHECK(v > 0, "non-positive dilation is not supported");
  return p;
}

// Fills the spatial fields of `s` from (N, C, [H,] W) sizes and weight sizes.
void fill_shape(ConvShape& s, at::IntArrayRef in, at::IntArrayRef w, const Params& p,
                int64_t groups, int64_t dims) {
  const auto& stride = p.stride;
  const auto& padding = p.padding;
  const auto& dilation = p.dilation;
  s.N = in[0];
  s.C = in[1];
  s.OC = w[0];
  s.G = groups;
  s.H = dims == 2 ? in[2] : 1;
  s.W = in[dims + 1];
  s.KH = dims == 2 ? w[2] : 1;
  s.KW = w[dims + 1];
  s.sh = dims == 2 ? stride[0] : 1;
  s.sw = stride[dims - 1];
  s.ph = dims == 2 ? padding[0] : 0;
  s.pw = padding[dims - 1];
  s.dh = dims == 2 ? dilation[0] : 1;
  s.dw = dilation[dims - 1];
  s.OH = (s.H + 2 * s.ph - s.dh * (s.KH - 1) - 1) / s.sh + 1;
  s.OW = (s.W + 2 * s.pw - s.dw * (s.KW - 1) - 1) / s.sw + 1;
}

std::string dtype_name(const at::Tensor& t) {
  return std::string(c10::toString(t.scalar_type()));
}

}  // namespace

void check_dtype(const at::Tensor& t, const char* op_name) {
  const auto st = t.scalar_type();
  // Same exception type and wording as an AT_DISPATCH miss.
  TORCH_CHECK_NOT_IMPLEMENTED(
      st == at::kFloat || st == at::kDouble || st == at::kBFloat16 || st == at::kHalf,
      "\"", op_name, "\" not implemented for '", dtype_name(t),
      "' (convext supports float32, float64, bfloat16 and float16)");
}

void check_same_type(const at::Tensor& a, const char* a_name,
                     const at::Tensor& b, const char* b_name) {
  TORCH_CHECK(a.options().type_equal(b.options()), a_name, " type (", a.toString(),
              ") and ", b_name, " type (", b.toString(), ") should be the same");
}

ConvShape check_forward_args(
    const at::Tensor& input, const at::Tensor& weight,
    const std::optional<at::Tensor>& bias, at::IntArrayRef stride,
    at::IntArrayRef padding, at::IntArrayRef dilation, int64_t groups,
    int64_t dims, const char* op_name) {
  TORCH_CHECK(input.dim() == dims + 2, "Expected ", dims + 2, "D (batched) input to ",
              op_name, ", but got input of size: ", input.sizes());
  const auto ws = weight.sizes();
  const Params p = check_params(ws, stride, padding, dilation, groups);
  const int64_t k = input.dim();
  TORCH_CHECK(weight.dim() == k, "Expected ", weight.dim(), "-dimensional input for ",
              weight.dim(), "-dimensional weight ", ws, ", but got ", k,
              "-dimensional input of size ", input.sizes(), " instead");
  TORCH_CHECK(ws[0] >= groups, "Given groups=", groups, ", expected weight to be at least ",
              groups, " at dimension 0, but got weight of size ", ws, " instead");
  TORCH_CHECK(ws[0] % groups == 0, "Given groups=", groups,
              ", expected weight to be divisible by ", groups,
              " at dimension 0, but got weight of size [", ws, "] instead");
  TORCH_CHECK(input.size(1) == ws[1] * groups, "Given groups=", groups, ", weight of size ",
              ws, ", expected input", input.sizes(), " to have ", ws[1] * groups,
              " channels, but got ", input.size(1), " channels instead");
  const bool has_bias = bias.has_value() && bias->defined();
  TORCH_CHECK(!has_bias || (bias->dim() == 1 && bias->size(0) == ws[0]),
              "Given weight of size ", ws, ", expected bias to be 1-dimensional with ",
              ws[0], " elements, but got bias of size ", bias->sizes(), " instead");

  bool fits = true;
  std::ostringstream in_ss, k_ss;
  for (int64_t i = 2; i < k; ++i) {
    const int64_t padded = input.size(i) + 2 * p.padding[i - 2];
    const int64_t kernel = p.dilation[i - 2] * (ws[i] - 1) + 1;
    fits = fits && padded >= kernel;
    in_ss << (i > 2 ? " x " : "") << padded;
    k_ss << (i > 2 ? " x " : "") << kernel;
  }
  TORCH_CHECK(fits, "Calculated padded input size per channel: (", in_ss.str(),
              "). Kernel size: (", k_ss.str(),
              "). Kernel size can't be greater than actual input size");

  check_same_type(input, "Input", weight, "weight");
  if (has_bias) check_same_type(input, "Input", *bias, "bias");
  check_dtype(input, op_name);

  ConvShape s;
  fill_shape(s, input.sizes(), ws, p, groups, dims);
  return s;
}

ConvShape shape_from_sizes(
    at::IntArrayRef input_size, at::IntArrayRef weight_size,
    at::IntArrayRef stride, at::IntArrayRef padding, at::IntArrayRef dilation,
    int64_t groups, int64_t dims, const char* op_name) {
  TORCH_CHECK(static_cast<int64_t>(input_size.size()) == dims + 2 &&
                  static_cast<int64_t>(weight_size.size()) == dims + 2,
              op_name, ": expected ", dims + 2, "-element input and weight sizes, got ",
              input_size, " and ", weight_size);
  const Params p = check_params(weight_size, stride, padding, dilation, groups);
  TORCH_CHECK(weight_size[0] % groups == 0 && input_size[1] == weight_size[1] * groups,
              op_name, ": input size ", input_size, " and weight size ", weight_size,
              " do not match groups=", groups);
  ConvShape s;
  fill_shape(s, input_size, weight_size, p, groups, dims);
  TORCH_CHECK(s.OH > 0 && s.OW > 0, op_name, ": kernel larger than padded input for input size ",
              input_size, " and weight size ", weight_size);
  return s;
}

void check_grad_output(const at::Tensor& grad_output, const ConvShape& s,
                       int64_t dims, const char* op_name) {
  std::vector<int64_t> expected = {s.N, s.OC};
  if (dims == 2) expected.push_back(s.OH);
  expected.push_back(s.OW);
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(expected), op_name,
              ": expected grad_output of size ", at::IntArrayRef(expected), ", but got ",
              grad_output.sizes());
  check_dtype(grad_output, op_name);
}

at::MemoryFormat output_memory_format(const at::Tensor& a, const at::Tensor& b,
                                      int64_t dims) {
  if (dims == 2 && (a.suggest_memory_format() == at::MemoryFormat::ChannelsLast ||
                    b.suggest_memory_format() == at::MemoryFormat::ChannelsLast)) {
    return at::MemoryFormat::ChannelsLast;
  }
  return at::MemoryFormat::Contiguous;
}

at::Tensor as_2d(const at::Tensor& t, int64_t dims) {
  return dims == 1 ? t.unsqueeze(2) : t;
}

at::Tensor from_2d(const at::Tensor& t, int64_t dims) {
  return dims == 1 ? t.squeeze(2) : t;
}

}  // namespace convext
