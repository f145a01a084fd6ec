// Test entry points for single microkernels (see ukernel_calls.h).

#include "ops/cpu/ukernels/ukernel_calls.h"

#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {
namespace {

const UKernelSet& set_of(const std::string& isa) {
  const UKernelSet* set = ukernel_set(isa.c_str());
  TORCH_CHECK(set, "ukernel: instruction set '", isa, "' is unknown or not run by this CPU");
  return *set;
}

void check_buffer(const at::Tensor& t, at::ScalarType dtype, int64_t need, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.is_contiguous() && t.scalar_type() == dtype, "ukernel: ",
              what, " must be a contiguous CPU ", dtype, " tensor");
  TORCH_CHECK(t.numel() >= need, "ukernel: ", what, " holds ", t.numel(),
              " elements, the kernel reaches ", need);
}

// Pointers to the rows of a (ntaps, length) tensor of at least n columns.
template <typename T>
std::vector<T*> rows_of(const at::Tensor& t, int64_t n, const char* what) {
  TORCH_CHECK(t.dim() == 2 && t.size(1) >= n, "ukernel: ", what,
              " must be (ntaps, length >= ", n, ")");
  check_buffer(t, c10::CppTypeToScalarType<T>::value, t.numel(), what);
  std::vector<T*> p(t.size(0));
  for (int64_t i = 0; i < t.size(0); ++i) p[i] = t.mutable_data_ptr<T>() + i * t.size(1);
  return p;
}

template <typename T>
const RowKernels<T>& rows(const UKernelSet& set) {
  if constexpr (std::is_same_v<T, float>) return set.row_f32;
  else return set.row_f64;
}

// Runs body<T>() for the float or double tensor t.
template <typename Body>
void float_or_double(const at::Tensor& t, Body&& body) {
  if (t.scalar_type() == at::kFloat) return body(float());
  TORCH_CHECK(t.scalar_type() == at::kDouble, "ukernel: row kernels take float32 or float64");
  body(double());
}

template <typename P, typename T>
void run_gemm(const UKernel<P, T>& uk, int64_t kc, const at::Tensor& a, const at::Tensor& b,
              const at::Tensor& c, int64_t ldc, bool accumulate) {
  TORCH_CHECK(uk.fn, "ukernel: this set has no kernel for ", a.scalar_type());
  TORCH_CHECK(kc >= 0 && ldc >= uk.nr, "ukernel: need kc >= 0 and ldc >= nr");
  const int64_t kp = (kc + k_pad(uk) - 1) / k_pad(uk) * k_pad(uk);
  check_buffer(a, a.scalar_type(), kp * uk.mr, "a");  // ukernel_gemm picked uk by a's dtype
  check_buffer(b, a.scalar_type(), kp * uk.nr, "b");
  check_buffer(c, c10::CppTypeToScalarType<T>::value, (uk.mr - 1) * ldc + uk.nr, "c");
  tiles_new_op();
  uk.fn(kc, reinterpret_cast<const P*>(a.const_data_ptr()),
        reinterpret_cast<const P*>(b.const_data_ptr()), c.mutable_data_ptr<T>(), ldc, accumulate);
}

}  // namespace

std::vector<std::pair<std::string, bool>> ukernel_isas() {
  int64_t count = 0;
  const IsaEntry* table = isa_table(&count);
  std::vector<std::pair<std::string, bool>> out;
  for (int64_t i = 0; i < count; ++i)
    out.emplace_back(table[i].name, ukernel_set(table[i].name) != nullptr);
  return out;
}

std::tuple<int64_t, int64_t, int64_t, int64_t> ukernel_tile(const std::string& isa,
                                                            const std::string& dtype) {
  const UKernelSet& set = set_of(isa);
  auto shape = [](const auto& uk) {
    return std::make_tuple(int64_t(uk.fn ? uk.mr : 0), int64_t(uk.fn ? uk.nr : 0),
                           int64_t(uk.kr), int64_t(a_interleave(uk)));
  };
  if (dtype == "float32") return shape(set.f32);
  if (dtype == "float64") return shape(set.f64);
  if (dtype == "bfloat16_tiles") return shape(set.bf16_tiles);
  TORCH_CHECK(dtype == "bfloat16", "ukernel: no GEMM kernel for dtype ", dtype);
  return shape(set.bf16);
}

void ukernel_gemm(const std::string& isa, int64_t kc, const at::Tensor& a, const at::Tensor& b,
                  const at::Tensor& c, int64_t ldc, bool accumulate, bool tiles) {
  const UKernelSet& set = set_of(isa);
  if (tiles) {
    TORCH_CHECK(a.scalar_type() == at::kBFloat16, "ukernel: the tile kernel takes bfloat16");
    return run_gemm(set.bf16_tiles, kc, a, b, c, ldc, accumulate);
  }
  switch (a.scalar_type()) {
    case at::kFloat: return run_gemm(set.f32, kc, a, b, c, ldc, accumulate);
    case at::kDouble: return run_gemm(set.f64, kc, a, b, c, ldc, accumulate);
    case at::kBFloat16: return run_gemm(set.bf16, kc, a, b, c, ldc, accumulate);
    default: TORCH_CHECK(false, "ukernel: no GEMM kernel for ", a.scalar_type());
  }
}

// The transposes' arguments: matrices of `type` with unit column stride,
// src's rows j < nj (of np values) becoming dst's columns j < rows.
static void check_transpose(const at::Tensor& dst, const at::Tensor& src, int64_t nj,
                            int64_t np, at::ScalarType type, int64_t rows, const char* name) {
  TORCH_CHECK(dst.dim() == 2 && src.dim() == 2 && dst.scalar_type() == type &&
                  src.scalar_type() == type && dst.stride(1) == 1 && src.stride(1) == 1,
              name, ": ", type == at::kInt ? "int32" : "int16",
              " matrices with unit column stride");
  TORCH_CHECK(nj >= 0 && nj <= rows && np >= 0 && dst.size(0) >= np && dst.size(1) >= rows &&
                  src.size(0) >= nj && (nj == 0 || src.size(1) >= np),
              name, ": sizes too small");
}

bool ukernel_transpose_words16(const std::string& isa, const at::Tensor& dst,
                               const at::Tensor& src, int64_t nj, int64_t np) {
  const auto fn = set_of(isa).transpose_words16;
  if (!fn) return false;
  check_transpose(dst, src, nj, np, at::kInt, 16, "transpose_words16");
  fn(dst.mutable_data_ptr<int32_t>(), dst.stride(0) * 4, src.const_data_ptr<int32_t>(),
     src.stride(0) * 4, nj, np);
  return true;
}

int64_t ukernel_transpose_halves32(const std::string& isa, const at::Tensor& dst,
                                   const at::Tensor& src, int64_t nj, int64_t np) {
  const auto fn = set_of(isa).transpose_halves32;
  if (!fn) return -1;
  check_transpose(dst, src, nj, np, at::kShort, 32, "transpose_halves32");
  const uint16_t* rows[32] = {};
  for (int64_t j = 0; j < nj; ++j)
    rows[j] = reinterpret_cast<const uint16_t*>(src.const_data_ptr<int16_t>()) + j * src.stride(0);
  return fn(reinterpret_cast<uint16_t*>(dst.mutable_data_ptr<int16_t>()), dst.stride(0), rows,
            nj, np);
}

int64_t ukernel_interleave_halves(const std::string& isa, const at::Tensor& out, int64_t ldo,
                                  int64_t np, const std::optional<at::Tensor>& a,
                                  const std::optional<at::Tensor>& b, int64_t n) {
  const auto fn = set_of(isa).interleave_halves;
  if (!fn) return -1;
  auto row = [&](const std::optional<at::Tensor>& t) -> const uint16_t* {
    if (!t) return nullptr;
    TORCH_CHECK(t->dim() == 1 && t->scalar_type() == at::kShort && t->is_contiguous() &&
                    t->numel() >= n, "interleave_halves: rows are int16 vectors of n values");
    return reinterpret_cast<const uint16_t*>(t->const_data_ptr<int16_t>());
  };
  TORCH_CHECK(out.dim() == 1 && out.scalar_type() == at::kShort && out.is_contiguous() &&
                  n >= 0 && np > 0 && np % 16 == 0 && ldo >= 2 * np &&
                  (n == 0 || out.numel() >= (n - 1) / np * ldo + 2 * np),
              "interleave_halves: out too small, or np not a multiple of 16");
  return fn(reinterpret_cast<uint16_t*>(out.mutable_data_ptr<int16_t>()), ldo, np, row(a), row(b),
            n);
}

void ukernel_taps_row(const std::string& isa, const at::Tensor& out, int64_t n,
                      const at::Tensor& src, const at::Tensor& w, double init) {
  float_or_double(out, [&](auto zero) {
    using T = decltype(zero);
    const std::vector<T*> s = rows_of<T>(src, n + kRowSlack, "src");
    check_buffer(w, out.scalar_type(), s.size(), "w");
    check_buffer(out, out.scalar_type(), n + kRowSlack, "out");
    rows<T>(set_of(isa)).taps_row(out.mutable_data_ptr<T>(), n, s.data(), w.const_data_ptr<T>(),
                                  s.size(), static_cast<T>(init));
  });
}

void ukernel_taps_dot(const std::string& isa, const at::Tensor& acc, const at::Tensor& g,
                      int64_t n, const at::Tensor& src) {
  float_or_double(acc, [&](auto zero) {
    using T = decltype(zero);
    const std::vector<T*> s = rows_of<T>(src, n, "src");
    check_buffer(g, acc.scalar_type(), n, "g");
    check_buffer(acc, acc.scalar_type(), s.size() * kDotLanes, "acc");
    rows<T>(set_of(isa)).taps_dot(acc.mutable_data_ptr<T>(), g.const_data_ptr<T>(), n,
                                  s.data(), s.size());
  });
}

void ukernel_vtaps_row(const std::string& isa, const at::Tensor& out, int64_t n, int64_t np,
                       const at::Tensor& src, const at::Tensor& w, const at::Tensor& init) {
  float_or_double(out, [&](auto zero) {
    using T = decltype(zero);
    const std::vector<T*> s = rows_of<T>(src, np * n, "src"), wr = rows_of<T>(w, n, "w");
    TORCH_CHECK(wr.size() == s.size(), "ukernel: src and w need as many taps");
    check_buffer(init, out.scalar_type(), n, "init");
    check_buffer(out, out.scalar_type(), np * n, "out");
    rows<T>(set_of(isa)).vtaps_row(out.mutable_data_ptr<T>(), n, np, n, s.data(), n, wr.data(),
                                   s.size(), init.const_data_ptr<T>());
  });
}

void ukernel_vtaps_acc(const std::string& isa, const at::Tensor& acc, int64_t n, int64_t np,
                       const at::Tensor& g, const at::Tensor& src) {
  float_or_double(acc, [&](auto zero) {
    using T = decltype(zero);
    const std::vector<T*> s = rows_of<T>(src, np * n, "src"), a = rows_of<T>(acc, n, "acc");
    TORCH_CHECK(a.size() == s.size(), "ukernel: src and acc need as many taps");
    check_buffer(g, acc.scalar_type(), np * n, "g");
    rows<T>(set_of(isa)).vtaps_acc(a.data(), np, n, g.const_data_ptr<T>(), n, s.data(), n,
                                   s.size());
  });
}

}  // namespace cpu
}  // namespace convext
