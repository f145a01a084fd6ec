#pragma once
// Runs one microkernel of a named instruction set (a row of isa_table.cpp)
// on tensors, for the microkernel unit tests (tests/test_ukernels.py, through
// convext._C._ukernel_*). The tensors hold packed panels / rows exactly as
// the kernels read them (microkernel.h); sizes are checked against the
// kernel's contract, so a wrong test call raises instead of overrunning.

#include <ATen/ATen.h>

#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace convext {
namespace cpu {

// (name, whether this CPU runs it) per table row, best first.
std::vector<std::pair<std::string, bool>> ukernel_isas();

// (mr, nr, kr, ka) of `isa`'s GEMM kernel for dtype "float32", "float64",
// "bfloat16" or "bfloat16_tiles" (the AMX kernel; ka: A's interleave, see
// UKernel) (mr = 0 where the set has none, e.g. bfloat16 below avx512bf16).
std::tuple<int64_t, int64_t, int64_t, int64_t> ukernel_tile(const std::string& isa,
                                                            const std::string& dtype);

// c[i*ldc + j] (=, +=) sum_k A[k][i] B[k][j] on the packed panels a and b
// (float32, float64, or bfloat16 with c float32; `tiles`: bfloat16 on the
// AMX kernel, panels in its layout).
void ukernel_gemm(const std::string& isa, int64_t kc, const at::Tensor& a, const at::Tensor& b,
                  const at::Tensor& c, int64_t ldc, bool accumulate, bool tiles);

// transpose_words16 (null in `isa`'s set: returns false): dst (np, ldd)
// int32 rows get word p of src's rows j < nj (src (nj, lds) int32) at
// column j, and zeros in columns nj..15; nothing else of dst is written.
bool ukernel_transpose_words16(const std::string& isa, const at::Tensor& dst,
                               const at::Tensor& src, int64_t nj, int64_t np);

// transpose_halves32: dst (np, ldd) int16 rows get value p of src's rows
// j < nj (src (nj, lds) int16) at column j, and zeros in columns nj..31;
// nothing else of dst is written. Rows past nj are passed as null pointers.
// -1 where `isa`'s set has none, else whether a value was a bfloat16 inf/NaN.
int64_t ukernel_transpose_halves32(const std::string& isa, const at::Tensor& dst,
                                   const at::Tensor& src, int64_t nj, int64_t np);

// interleave_halves: (a[j], b[j]) pairs, j < n, into out (int16) at
// (j/np)*ldo + 2*(j%np); an absent row reads zeros. Returns as above.
int64_t ukernel_interleave_halves(const std::string& isa, const at::Tensor& out, int64_t ldo,
                                  int64_t np, const std::optional<at::Tensor>& a,
                                  const std::optional<at::Tensor>& b, int64_t n);

// The depthwise row kernels; src (and w for vtaps_row, acc for vtaps_acc)
// are (ntaps, length) tensors, one tap per row. vtaps_row/vtaps_acc run np
// pixels of n channels each, packed one after the other in src, out and g.
void ukernel_taps_row(const std::string& isa, const at::Tensor& out, int64_t n,
                      const at::Tensor& src, const at::Tensor& w, double init);
void ukernel_taps_dot(const std::string& isa, const at::Tensor& acc, const at::Tensor& g,
                      int64_t n, const at::Tensor& src);
void ukernel_vtaps_row(const std::string& isa, const at::Tensor& out, int64_t n, int64_t np,
                       const at::Tensor& src, const at::Tensor& w, const at::Tensor& init);
void ukernel_vtaps_acc(const std::string& isa, const at::Tensor& acc, int64_t n, int64_t np,
                       const at::Tensor& g, const at::Tensor& src);

}  // namespace cpu
}  // namespace convext
