#include "ops/conv_params.h"

#include <limits>
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

// ATen rejects padding above 2^62 (so 2 * padding cannot overflow).
constexpr int64_t kMaxPadding = int64_t(1) << 62;

// The checks of ATen's _convolution and check_shape_forward that concern the
// parameters, in the same order (so the first error reported is the same).
// A zero dilation passes here: ATen reports it later (check_zero_dilation).
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
  for (size_t i = 0; i < p.padding.size(); ++i) {
    TORCH_CHECK(p.padding[i] <= kMaxPadding - 1, "Given padding=", p.padding[i],
                " at dimension ", i, " , expected padding to be at most ", kMaxPadding - 1);
  }
  return p;
}

// ATen's slow-path wording (its oneDNN path says "non-positive dilation is
// not supported"); a 1D conv reports the dilation of its 2D view.
void check_zero_dilation(const Params& p) {
  bool positive = true;
  for (auto v : p.dilation) positive = positive && v > 0;
  std::vector<int64_t> shown = p.dilation;
  if (shown.size() == 1) shown.insert(shown.begin(), 1);
  TORCH_CHECK(positive, "dilation should be greater than zero, but got ", at::IntArrayRef(shown));
}

// One spatial dim's extents, exactly (128-bit: size + 2 * padding and the
// dilated kernel's span can pass 2^63 before the checks reject them).
struct DimExtent {
  __int128 padded, kernel;
  DimExtent(int64_t size, int64_t k, int64_t p, int64_t d)
      : padded(__int128(size) + 2 * __int128(p)), kernel(__int128(d) * (k - 1) + 1) {}
  // ATen computes both in wrapping int64 arithmetic; its error shows those.
  static int64_t wrapped(__int128 v) { return static_cast<int64_t>(static_cast<uint64_t>(v)); }
  bool aten_fits() const { return wrapped(padded) >= wrapped(kernel); }
  // The exact rule, which is also what makes every index the kernels form
  // (at most size + padding in magnitude) fit in int64.
  bool fits() const {
    return aten_fits() && padded >= kernel && padded <= std::numeric_limits<int64_t>::max();
  }
  int64_t out(int64_t stride) const {
    return static_cast<int64_t>((padded - kernel) / stride + 1);
  }
};

std::string to_string(__int128 v) {
  if (v >= std::numeric_limits<int64_t>::min() && v <= std::numeric_limits<int64_t>::max())
    return std::to_string(static_cast<int64_t>(v));
  std::string digits;
  const bool negative = v < 0;
  unsigned __int128 u = negative ? -static_cast<unsigned __int128>(v) : v;
  do {
    digits.insert(digits.begin(), char('0' + int(u % 10)));
    u /= 10;
  } while (u != 0);
  return negative ? "-" + digits : digits;
}

// ATen's "Kernel size can't be greater than actual input size" check. Where
// ATen's int64 arithmetic overflowed and let a call through (a huge dilation
// or padding), the exact sizes are checked too and shown as they are.
void check_kernel_fits(at::IntArrayRef in, at::IntArrayRef w, const Params& p) {
  bool aten_fits = true, fits = true;
  std::vector<DimExtent> ext;
  for (size_t i = 2; i < in.size(); ++i) {
    ext.emplace_back(in[i], w[i], p.padding[i - 2], p.dilation[i - 2]);
    aten_fits = aten_fits && ext.back().aten_fits();
    fits = fits && ext.back().fits();
  }
  if (fits) return;
  std::ostringstream in_ss, k_ss;
  for (size_t i = 0; i < ext.size(); ++i) {
    const auto& e = ext[i];
    in_ss << (i > 0 ? " x " : "")
          << (aten_fits ? to_string(e.padded) : std::to_string(DimExtent::wrapped(e.padded)));
    k_ss << (i > 0 ? " x " : "")
         << (aten_fits ? to_string(e.kernel) : std::to_string(DimExtent::wrapped(e.kernel)));
  }
  TORCH_CHECK(false, "Calculated padded input size per channel: (", in_ss.str(),
              "). Kernel size: (", k_ss.str(),
              "). Kernel size can't be greater than actual input size");
}

// Fills `s` from (N, C, [H,] W) input sizes and weight sizes whose extents
// passed check_kernel_fits. A stride that cannot matter (one output position)
// is set to 1, and so is the dilation of a one-tap kernel: the kernels' work
// and scratch then depend on the tensors' sizes only.
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
  s.OH = DimExtent(s.H, s.KH, s.ph, s.dh).out(s.sh);
  s.OW = DimExtent(s.W, s.KW, s.pw, s.dw).out(s.sw);
  if (s.OH == 1) s.sh = 1;
  if (s.OW == 1) s.sw = 1;
  if (s.KH == 1) s.dh = 1;
  if (s.KW == 1) s.dw = 1;
}

// ATen's checks on an empty input and a zero-size kernel, which its backends
// make after the shape checks; 1D convs report their 2D view.
void check_empty_and_kernel(at::IntArrayRef in, at::IntArrayRef w, int64_t dims) {
  std::vector<int64_t> in4 = in.vec(), w4 = w.vec();
  if (dims == 1) {
    in4.insert(in4.begin() + 2, 1);
    w4.insert(w4.begin() + 2, 1);
  }
  bool empty = false;
  for (auto v : in4) empty = empty || v == 0;
  TORCH_CHECK(!empty || in4[0] == 0 || in4[1] == 0,
              "Only zero batch or zero channel inputs are supported, but got input shape: ",
              at::IntArrayRef(in4));
  TORCH_CHECK(w4[2] > 0 && w4[3] > 0, "kernel size should be greater than zero, but got "
              "kernel_height: ", w4[2], " kernel_width: ", w4[3]);
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
  // 128-bit: an empty weight can have sizes whose product overflows.
  const __int128 channels = __int128(ws[1]) * groups;
  TORCH_CHECK(input.size(1) == channels, "Given groups=", groups, ", weight of size ",
              ws, ", expected input", input.sizes(), " to have ", to_string(channels),
              " channels, but got ", input.size(1), " channels instead");
  const bool has_bias = bias.has_value() && bias->defined();
  TORCH_CHECK(!has_bias || (bias->dim() == 1 && bias->size(0) == ws[0]),
              "Given weight of size ", ws, ", expected bias to be 1-dimensional with ",
              ws[0], " elements, but got bias of size ", bias->sizes(), " instead");
  check_kernel_fits(input.sizes(), ws, p);
  check_zero_dilation(p);

  check_same_type(input, "Input", weight, "weight");
  if (has_bias) check_same_type(input, "Input", *bias, "bias");
  check_dtype(input, op_name);
  check_empty_and_kernel(input.sizes(), ws, dims);

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
  TORCH_CHECK(weight_size[0] % groups == 0 && input_size[1] == __int128(weight_size[1]) * groups,
              op_name, ": input size ", input_size, " and weight size ", weight_size,
              " do not match groups=", groups);
  check_kernel_fits(input_size, weight_size, p);
  check_zero_dilation(p);
  check_empty_and_kernel(input_size, weight_size, dims);
  ConvShape s;
  fill_shape(s, input_size, weight_size, p, groups, dims);
  return s;
}

void check_grad_output(const at::Tensor& grad_output, const ConvShape& s,
                       int64_t dims, const char* op_name) {
  std::vector<int64_t> expected = {s.N, s.out_channels()};
  if (dims == 2) expected.push_back(s.OH);
  expected.push_back(s.OW);
  TORCH_CHECK(grad_output.sizes() == at::IntArrayRef(expected), op_name,
              ": expected grad_output of size ", at::IntArrayRef(expected), ", but got ",
              grad_output.sizes());
  check_dtype(grad_output, op_name);
}

at::MemoryFormat output_memory_format(const at::Tensor& a, const at::Tensor& b,
                                      int64_t dims) {
  // torch returns the (N, 0, ...) result of a zero-channel input contiguous.
  if (dims == 2 && a.size(1) != 0 && (a.suggest_memory_format() == at::MemoryFormat::ChannelsLast ||
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
