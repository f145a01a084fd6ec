#pragma once
// Register-blocked microkernels, one set per instruction set, picked at run
// time from the CPU's features (see isa_table.cpp): the GEMM tile
// kernel below and the depthwise row kernels (rowkernel_body.h).
//
// A microkernel computes one MR x NR tile:
//   C[i][j] (= or +=) sum_k A[k][i] * B[k][j],   i < MR, j < NR
// from packed panels: A as kc rows of MR values, B as kc rows of NR values.
// C is row-major with row stride ldc. Tiles are always full: the packers pad
// panels with zeros and the callers give C buffers padded to MR and NR.

#include <cstdint>
#include <type_traits>

namespace convext {
namespace cpu {

// P: the packed operand type, T: the accumulator (C) type. `kr` consecutive
// k values are interleaved per lane: panels hold ceil(kc/kr) rows of MR*kr
// (A) or NR*kr (B) values, the last row zero-padded. A tile kernel (AMX)
// sets `ka`, A's own interleave: its A panel holds MR rows of ka consecutive
// k per chunk, and both panels are zero-padded to a multiple of ka rows of k
// (see a_interleave and k_pad). Only callers that pack for it take such
// kernels (with_ukernel<S, true>; the NCHW weight gradient).
template <typename P, typename T = P>
struct UKernel {
  void (*fn)(int64_t kc, const P* a, const P* b, T* c, int64_t ldc, bool accumulate);
  int mr;
  int nr;
  int kr = 1;
  int ka = 0;  // 0: A interleaved like B (kr)
};

// A's k interleave, and the k multiple both panels are padded to (UKernel
// and UKernelIgemm).
template <class K>
inline int a_interleave(const K& uk) { return uk.ka ? uk.ka : uk.kr; }
template <class K>
inline int k_pad(const K& uk) { return uk.ka > uk.kr ? uk.ka : uk.kr; }

// The indirect ("igemm") form of the same tile, after XNNPACK's igemm: A is
// not packed but read in place through MR row pointers per tap,
//   C[i][j] (= or +=) sum_{t<ks, k<kc} a[t*MR + i][k] * B[t*kcR + k][j],
// with B packed as for `fn` over ks*kcR rows (kcR = kc rounded up to kr, the
// pad rows zero). For kr = 2 an odd kc reads a row's last element alone, so
// nothing past a row's kc values is ever read. Channels-last convs use it:
// a row is one pixel's run of channels (see nhwc_igemm.h). A tile kernel
// (ka = 32) has each tap's B rows zero-padded to a multiple of ka; it still
// reads no row past its kc values.
template <typename P, typename T = P>
struct UKernelIgemm {
  void (*fn)(int64_t ks, int64_t kc, const P* const* a, const P* b, T* c, int64_t ldc,
             bool accumulate) = nullptr;
  int mr = 0;
  int nr = 0;
  int kr = 1;
  int ka = 0;
};

// The strided-A form of the same tile: A is read in place, its k-th row of
// MR values at a + k*lda, with B packed as for `fn`:
//   C[i][j] (= or +=) sum_{k<kc} a[k*lda + i] * B[k][j].
// Channels-last weight gradients use it: A(i, k) is channel i of pixel k's
// grad_output, so a pixel's channel run is a row and lda the pixel stride.
// (kr = 1 only: a kr = 2 kernel would need two pixels' values side by side.)
template <typename P, typename T = P>
struct UKernelStrided {
  void (*fn)(int64_t kc, const P* a, int64_t lda, const P* b, T* c, int64_t ldc,
             bool accumulate) = nullptr;
  int mr = 0;
  int nr = 0;
  int kr = 1;
};

// The same entry point for a tile kernel (ka = 32) that reads A in place
// with k innermost instead, a row per C row:
//   C[i][j] (= or +=) sum_{k<kc} a[i*lda + k] * B[k][j],   i < MR,
// kc a multiple of 32 (rows read whole), B packed as for UKernel. The AMX
// grad_weight's A is grad_out transposed, one row of pixels per channel.
template <typename P, typename T = P>
using UKernelRows = UKernelStrided<P, T>;

// bfloat16 operands travel as their raw bits (ISA files include no torch header).
using Bf16Bits = uint16_t;

// The dot-product ("inner product") form, for GEMMs whose reduction axis is
// contiguous in both operands (the weight gradients, reducing over
// positions): a 4 x 4 tile
//   C[i][j] (= or +=) sum_{l < L} a[i*lda + l] * b[j*ldb + l],
// summed in vector lanes (l mod the vector width) and reduced across lanes
// once per call, in a fixed order. L is a multiple of `lanes` (16 floats, or
// 32 bfloat16 multiplied in (l, l+1) pairs): callers zero-pad their rows.
template <typename P, typename T = P>
struct UKernelDot {
  void (*fn)(int64_t L, const P* a, int64_t lda, const P* b, int64_t ldb, T* c, int64_t ldc,
             bool accumulate) = nullptr;
  int mr = 0;
  int nr = 0;
  int lanes = 0;
};

// The same entry point for a tile kernel with both operands in place: A as
// UKernelRows, and B's (k, k+1) pair rows ldb values apart (pair row k/2 of
// the tile's NR columns at b + (k/2)*ldb, the pairs side by side):
//   C[i][j] (= or +=) sum_{k<kc} a[i*lda + k] * b[(k/2)*ldb + 2j + k%2],
// kc a multiple of 32 (`lanes`). The AMX channels-last grad_weight
// (nhwc_grad_weight_taps.cpp) reads both this way.
template <typename P, typename T = P>
using UKernelRowsB = UKernelDot<P, T>;

// Depthwise rows, with every tap given as a unit-stride source run:
//   taps_row: out[i] = init + sum_t w[t] * src[t][i],  i < n.
//     Works in whole vectors: it may read src[t][i] and write out[i] up to
//     i < n + kRowSlack, so callers leave that much readable/writable slack.
//   taps_dot: lane sums of g[i] * src[t][i] over i < n are added into
//     acc[t * kDotLanes + l]; the caller sums the kDotLanes lanes at the end
//     (keeping vector accumulators across rows avoids a horizontal sum per row).
constexpr int64_t kRowSlack = 16;
constexpr int64_t kDotLanes = 16;

// Channels-last depthwise, vectorised over channels (per-element weights),
// over np pixels of a row, pixel p's sources `step` elements after p-1's:
//   vtaps_row: out[p*ldo + i] = init[i] + sum_t w[t][i] * src[t][p*step + i]
//   vtaps_acc: acc[t][i] += sum_p g[p*ldg + i] * src[t][p*step + i]
// for i < n, p < np (nothing else written).
template <typename T>
struct RowKernels {
  void (*taps_row)(T* out, int64_t n, const T* const* src, const T* w, int64_t ntaps, T init);
  void (*taps_dot)(T* acc, const T* g, int64_t n, const T* const* src, int64_t ntaps);
  void (*vtaps_row)(T* out, int64_t ldo, int64_t np, int64_t n, const T* const* src,
                    int64_t step, const T* const* w, int64_t ntaps, const T* init);
  void (*vtaps_acc)(T* const* acc, int64_t np, int64_t n, const T* g, int64_t ldg,
                    const T* const* src, int64_t step, int64_t ntaps);
};

// Grouped direct conv (grouped_conv_cpu.cpp), lanes along output channels,
// W lanes per vector, every pixel's lanes `os` apart in `out`:
//   row: out[p*os + l] = init[l] + sum_{t<ntaps, i<ig} w[t][i*W + l] * x(t, i, p)[l],
//        p < np, with x(t, i, p) = src[t][p*xs + i] broadcast to every lane
//        (bcast) or the lanes src[t][p*xs + i*W + l] (expanded rows)
//   acc: acc[q*W + l] += sum_{p<np} g[p*gs + l] * x(q, p)[l],  q < nq, with
//        x(q, p) = src[q][p*xs] broadcast (bcast) or the lanes src[q][p*xs + l]
//   expand: dst[p*ds + k] = raw[p*rs + idx[k]] (0 where idx[k] < 0), k < n, p < np;
//        it may read raw up to W elements past a pixel's largest index.
template <typename T>
struct GroupedKernels {
  void (*row)(T* out, int64_t np, int64_t os, const T* const* src, int64_t xs,
              const T* const* w, int64_t ntaps, int64_t ig, bool bcast, const T* init) = nullptr;
  void (*acc)(T* acc, int64_t np, const T* g, int64_t gs, const T* const* src, int64_t xs,
              int64_t nq, bool bcast) = nullptr;
  void (*expand)(T* dst, int64_t ds, const T* raw, int64_t rs, int64_t np, const int32_t* idx,
                 int64_t n) = nullptr;
  int W = 0;
};

struct UKernelSet {
  UKernel<float> f32;
  UKernel<double> f64;
  RowKernels<float> row_f32;
  RowKernels<double> row_f64;
  const char* isa;
  // bfloat16 pairs dot-multiplied into float (AVX512-BF16); fn is null where
  // the CPU lacks it, and bfloat16 then goes through the f32 kernel.
  UKernel<Bf16Bits, float> bf16{nullptr, 0, 0, 2};
  // bfloat16 on AMX tiles (ka = 32, see UKernel); null where the CPU or the
  // OS lacks AMX-BF16.
  UKernel<Bf16Bits, float> bf16_tiles{nullptr, 0, 0, 2, 0};
  UKernelIgemm<Bf16Bits, float> bf16_igemm_tiles{nullptr, 0, 0, 2, 0};
  UKernelRows<Bf16Bits, float> bf16_tiles_rows;      // (AMX)
  UKernelRowsB<Bf16Bits, float> bf16_tiles_rows_b;  // (AMX)
  // Indirect forms of f32, f64 and bf16 (fn null where an ISA lacks one).
  UKernelIgemm<float> f32_igemm;
  // A wider float tile for N sides that fill its panels better (64 or 128
  // channels waste a third / a ninth of 48-wide panels); null where absent.
  UKernelIgemm<float> f32_igemm_wide;
  UKernelIgemm<double> f64_igemm;
  UKernelIgemm<Bf16Bits, float> bf16_igemm{nullptr, 0, 0, 2};
  // dst[j] = bfloat16(src[j] + (bias ? bias[j] : 0)), j < n, rounded to
  // nearest even (vcvtneps2bf16); null where the CPU lacks AVX512-BF16.
  void (*bf16_store)(Bf16Bits* dst, const float* src, const float* bias, int64_t n) = nullptr;
  // 4-byte words transposed, 16 source rows at a time: word p of row j
  // (src + j*lds + 4p bytes) to row p, column j (dst + p*ldd + 4j bytes), for
  // p < np and every j < 16, rows j >= nj read as zeros. The bfloat16 weight
  // packers move (k, k+1) pairs with it. Null where the CPU lacks AVX-512.
  void (*transpose_words16)(void* dst, int64_t ldd, const void* src, int64_t lds, int64_t nj,
                            int64_t np) = nullptr;
  // 2-byte values transposed, 32 source rows at a time: value p of row j
  // (rows[j][p]) to dst[p*ldd + j], for p < np and every j < 32, rows
  // j >= nj read as zeros (and never dereferenced). The AMX grad_weight
  // transposes channels-last grad_output with it. Null without AVX-512.
  // Both these return whether a value moved is a bfloat16 inf or NaN.
  bool (*transpose_halves32)(uint16_t* dst, int64_t ldd, const uint16_t* const* rows,
                             int64_t nj, int64_t np) = nullptr;
  // Two rows of 2-byte values interleaved as the bfloat16 kernels' column
  // pairs, into panels of np columns (a multiple of 16) ldo values apart:
  // (a[j], b[j]) to out[(j/np)*ldo + 2*(j%np)], +1, for j < n; a null row
  // reads zeros. The grad_weight packs pixel pairs with it. Null without
  // AVX-512.
  bool (*interleave_halves)(uint16_t* out, int64_t ldo, int64_t np, const uint16_t* a,
                            const uint16_t* b, int64_t n) = nullptr;
  // Strided-A forms of f32 (and its wide tile) and f64 (fn null where absent).
  UKernelStrided<float> f32_strided, f32_strided_wide;
  UKernelStrided<double> f64_strided;
  // Dot-product forms of f32 and bf16 (fn null where an ISA lacks one).
  UKernelDot<float> f32_dot;
  UKernelDot<Bf16Bits, float> bf16_dot;
  GroupedKernels<float> grouped_f32;
  GroupedKernels<double> grouped_f64;
};

// Defined in the per-ISA translation units. x86-64 ones return false when
// they were not compiled in; the caller checks the CPU before using them.
bool ukernels_avx512(UKernelSet* out);
bool ukernels_avx512bf16(UKernelSet* out);  // adds bf16 to an avx512 set
bool ukernels_amx(UKernelSet* out);         // adds bf16_tiles to an avx512bf16 set
bool has_amx_bf16();  // the CPU has AMX-BF16 and Linux lets this process use it
// Called at every CPU op's entry, before any tile kernel runs: the tile
// kernels reload their thread's tile configuration once per op (other code
// on the thread may have changed it since). A no-op without AMX.
void tiles_new_op();
bool ukernels_avx2(UKernelSet* out);
UKernelSet ukernels_generic();

// One row of the instruction-set table (isa_table.cpp), best first:
// amx, avx512bf16, avx512, avx2, generic.
struct IsaEntry {
  const char* name;               // as CONVEXT_ISA spells it
  bool (*cpu_has)();              // whether this CPU runs it
  bool (*init)(UKernelSet* out);  // fills the set; false if not compiled in
};
const IsaEntry* isa_table(int64_t* count);

// The set for this CPU (chosen once): the first row at or below the
// CONVEXT_ISA cap (a row's name) that the CPU runs.
const UKernelSet& ukernels();

// The set of a named row, or nullptr where the CPU lacks it (unit tests).
const UKernelSet* ukernel_set(const char* name);

// The kernels for a compute type.
template <typename T> const UKernel<T>& ukernel_for();
template <> inline const UKernel<float>& ukernel_for<float>() { return ukernels().f32; }
template <> inline const UKernel<double>& ukernel_for<double>() { return ukernels().f64; }
template <typename T> const RowKernels<T>& row_kernels_for();
template <> inline const RowKernels<float>& row_kernels_for<float>() { return ukernels().row_f32; }
template <> inline const RowKernels<double>& row_kernels_for<double>() { return ukernels().row_f64; }
template <typename T> const GroupedKernels<T>& grouped_kernels_for();
template <> inline const GroupedKernels<float>& grouped_kernels_for<float>() {
  return ukernels().grouped_f32;
}
template <> inline const GroupedKernels<double>& grouped_kernels_for<double>() {
  return ukernels().grouped_f64;
}

}  // namespace cpu
}  // namespace convext
