#pragma once
// The implicit-GEMM kernel behind the dense convs (forward, grad_input,
// grad_weight): per group g,
//   C[m][n] = sum_k A[m][k] * B[k][n]
// where A and B are read straight from the conv's tensors through Operand
// descriptors (zero outside the image: the conv's padding) and C is written
// through an Output descriptor, so no im2col/col2im buffer ever exists.
//
// A block computes a BM x BN tile of C with NT threads, each owning TM x TN
// accumulators in the op-math type (float for half/bfloat16). The reduction
// runs in BK steps through double-buffered shared memory: the next step's
// global loads are issued into registers before the current step's math, so
// there is one __syncthreads per step. Accumulators are strided across the
// tile (row ty + i*BM/TM, column tx + j*BN/TN), which keeps shared-memory
// reads free of bank conflicts and makes neighbouring threads store
// neighbouring columns (coalesced for NCHW outputs).

#include <ATen/OpMathType.h>

#include <algorithm>
#include <climits>

#include "ops/cuda/axis.cuh"
#include "ops/cuda/device.cuh"

namespace convext {
namespace cuda {

// Bounds of operands that have no padding (weights, grad_output as a GEMM row).
constexpr int64_t kUnbounded = INT64_MAX / 4;

// Operand element (i, k), i along the tile's M or N side, k the reduction:
//   ptr[off + mn(i) + k(k)]  if  0 <= h0 + h(i) + h(k) < H  and the same for w,
// else zero.
template <typename S>
struct Operand {
  const S* ptr = nullptr;
  int64_t off = 0;
  int64_t h0 = 0, w0 = 0;
  int64_t H = kUnbounded, W = kUnbounded;
  Axis mn, k;
};

// Result element (m, n) goes to ptr[off + m(m) + n(n)].
template <typename O>
struct Output {
  O* ptr = nullptr;
  int64_t off = 0;
  Axis m, n;
};

// What one block computes: rows [m0, m0+BM) of M, columns [n0, n0+BN) of N,
// reduction [k0, k1).
template <typename S, typename O>
struct GemmTile {
  Operand<S> a, b;
  Output<O> c;
  const S* bias = nullptr;  // added per row when set
  int64_t bias_stride = 0;
  int64_t M = 0, N = 0, m0 = 0, n0 = 0, k0 = 0, k1 = 0;
};

template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct TileCfg {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int NT = (BM / TM) * (BN / TN);
};
// 128x128 tiles for large problems, 64x64 for small ones and for double
// (whose accumulators would not fit the registers at 8x8 per thread).
using BigTile = TileCfg<128, 128, 8, 8, 8>;
using SmallTile = TileCfg<64, 64, 16, 4, 4>;

constexpr int kSmemPad = 4;  // breaks bank conflicts of k-major stores

template <typename S, typename T>
__device__ inline T load_elem(const Operand<S>& op, int64_t off, int64_t h, int64_t w,
                              bool ok) {
  ok = ok && static_cast<uint64_t>(h) < static_cast<uint64_t>(op.H) &&
       static_cast<uint64_t>(w) < static_cast<uint64_t>(op.W);
  return ok ? static_cast<T>(gload(op.ptr, op.off + off)) : T(0);
}

// Loads an operand's BK x BX tile for one reduction step into registers
// (load) and from there into shared memory stored k-major, sm[k][x] (store).
// KFAST: neighbouring threads take neighbouring k (coalesced when the tensor
// is contiguous along the reduction, e.g. weights); otherwise neighbouring x.
// Each thread keeps the decoded addresses of its fixed indices and walks its
// reduction index forward, so the main loop does no divisions.
template <typename S, typename T, int BX, int BK, int NT, bool KFAST>
struct TileLoader;

template <typename S, typename T, int BX, int BK, int NT>
struct TileLoader<S, T, BX, BK, NT, true> {
  static constexpr int R = BX * BK / NT, XSTEP = NT / BK;
  static_assert(NT % BK == 0 && BX % XSTEP == 0 && R * XSTEP == BX, "bad k-fast tiling");
  int kk, x_first;
  int64_t xoff[R], xh[R], xw[R];
  bool xok[R];
  int64_t k;
  Digits kd;
  T v[R];

  __device__ void init(const Operand<S>& op, int64_t x0, int64_t X, int64_t k_begin, int tid) {
    kk = tid % BK;
    x_first = tid / BK;
#pragma unroll
    for (int i = 0; i < R; ++i) {
      const int64_t x = x0 + x_first + i * XSTEP;
      xok[i] = x < X;
      const Digits d = decode(op.mn, xok[i] ? x : 0);
      xoff[i] = offset_of(op.mn, d);
      xh[i] = op.h0 + d.b * op.mn.hb;
      xw[i] = op.w0 + d.c * op.mn.wc;
    }
    k = k_begin + kk;
    kd = decode(op.k, k);
  }
  __device__ void load(const Operand<S>& op, int64_t k_end) {
    const bool kok = k < k_end;
    const int64_t koff = offset_of(op.k, kd), kh = kd.b * op.k.hb, kw = kd.c * op.k.wc;
#pragma unroll
    for (int i = 0; i < R; ++i)
      v[i] = load_elem<S, T>(op, xoff[i] + koff, xh[i] + kh, xw[i] + kw, kok && xok[i]);
  }
  __device__ void next(const Operand<S>& op) {
    k += BK;
    advance(op.k, kd, BK);
  }
  __device__ void store(smem_ptr<T> sm) const {
#pragma unroll
    for (int i = 0; i < R; ++i) sm[kk * (BX + kSmemPad) + x_first + i * XSTEP] = v[i];
  }
};

template <typename S, typename T, int BX, int BK, int NT>
struct TileLoader<S, T, BX, BK, NT, false> {
  static constexpr int R = BX * BK / NT;
  static_assert(NT % BX == 0 && (NT / BX) * R == BK, "bad x-fast tiling");
  int xi, k_first;
  int64_t xoff, xh, xw;
  bool xok;
  int64_t k;  // first of this thread's R consecutive reduction indices
  Digits kd;
  T v[R];

  __device__ void init(const Operand<S>& op, int64_t x0, int64_t X, int64_t k_begin, int tid) {
    xi = tid % BX;
    k_first = (tid / BX) * R;
    const int64_t x = x0 + xi;
    xok = x < X;
    const Digits d = decode(op.mn, xok ? x : 0);
    xoff = offset_of(op.mn, d);
    xh = op.h0 + d.b * op.mn.hb;
    xw = op.w0 + d.c * op.mn.wc;
    k = k_begin + k_first;
    kd = decode(op.k, k);
  }
  __device__ void load(const Operand<S>& op, int64_t k_end) {
    Digits d = kd;
#pragma unroll
    for (int i = 0; i < R; ++i) {
      v[i] = load_elem<S, T>(op, xoff + offset_of(op.k, d), xh + d.b * op.k.hb,
                             xw + d.c * op.k.wc, xok && k + i < k_end);
      step(op.k, d);
    }
  }
  __device__ void next(const Operand<S>& op) {
    k += BK;
    advance(op.k, kd, BK);
  }
  __device__ void store(smem_ptr<T> sm) const {
#pragma unroll
    for (int i = 0; i < R; ++i) sm[(k_first + i) * (BX + kSmemPad) + xi] = v[i];
  }
};

// Problem: a struct with  __device__ bool tile(int64_t block, int BM, int BN,
// GemmTile<S, O>&) const  that describes the block's tile (false: nothing to
// do, the whole block returns). BKFAST picks B's loader mapping; A is always
// loaded k-fast.
template <typename S, typename O, class Cfg, bool BKFAST, class Problem>
__global__ void __launch_bounds__(Cfg::NT) igemm_kernel(const Problem prob) {
  using T = at::opmath_type<S>;
  constexpr int BM = Cfg::BM, BN = Cfg::BN, BK = Cfg::BK, TM = Cfg::TM, TN = Cfg::TN;
  constexpr int NT = Cfg::NT, LDA = BM + kSmemPad, LDB = BN + kSmemPad;
  constexpr int RS = BM / TM, CS = BN / TN;  // row / column stride of a thread's accumulators
  CONVEXT_SHARED(T, As, 2 * BK * LDA);
  CONVEXT_SHARED(T, Bs, 2 * BK * LDB);

  GemmTile<S, O> t;
  if (!prob.tile(blockIdx.x, BM, BN, t)) return;
  const int tid = threadIdx.x;
  const int tx = tid % CS, ty = tid / CS;

  T acc[TM][TN];
#pragma unroll
  for (int i = 0; i < TM; ++i)
#pragma unroll
    for (int j = 0; j < TN; ++j) acc[i][j] = T(0);

  const int64_t k_len = t.k1 - t.k0;
  if (k_len > 0) {  // an empty reduction never decodes its (possibly empty) axes
    TileLoader<S, T, BM, BK, NT, true> la;
    TileLoader<S, T, BN, BK, NT, BKFAST> lb;
    la.init(t.a, t.m0, t.M, t.k0, tid);
    lb.init(t.b, t.n0, t.N, t.k0, tid);
    la.load(t.a, t.k1);
    lb.load(t.b, t.k1);
    la.store(As);
    lb.store(Bs);
    __syncthreads();
    const int64_t steps = ceil_div<int64_t>(k_len, BK);
    for (int64_t st = 0; st < steps; ++st) {
      const int cur = static_cast<int>(st & 1);
      const bool more = st + 1 < steps;
      if (more) {  // the next step's loads overlap this step's math
        la.next(t.a);
        lb.next(t.b);
        la.load(t.a, t.k1);
        lb.load(t.b, t.k1);
      }
      const smem_ptr<T> as = As + cur * BK * LDA;
      const smem_ptr<T> bs = Bs + cur * BK * LDB;
#pragma unroll
      for (int kk = 0; kk < BK; ++kk) {
        T af[TM], bf[TN];
#pragma unroll
        for (int i = 0; i < TM; ++i) af[i] = as[kk * LDA + ty + i * RS];
#pragma unroll
        for (int j = 0; j < TN; ++j) bf[j] = bs[kk * LDB + tx + j * CS];
#pragma unroll
        for (int i = 0; i < TM; ++i)
#pragma unroll
          for (int j = 0; j < TN; ++j) acc[i][j] += af[i] * bf[j];
      }
      // The other buffer was last read before the previous barrier.
      if (more) {
        la.store(As + (cur ^ 1) * BK * LDA);
        lb.store(Bs + (cur ^ 1) * BK * LDB);
      }
      __syncthreads();
    }
  }

  // Epilogue: column digits are walked, not divided, per accumulator.
  const Output<O>& c = t.c;
  Digits nd0 = decode(c.n, t.n0 + tx);
#pragma unroll
  for (int i = 0; i < TM; ++i) {
    const int64_t m = t.m0 + ty + i * RS;
    if (m >= t.M) break;
    const int64_t row = c.off + offset_of(c.m, decode(c.m, m));
    const T b = t.bias ? static_cast<T>(gload(t.bias, m * t.bias_stride)) : T(0);
    Digits nd = nd0;
#pragma unroll
    for (int j = 0; j < TN; ++j) {
      const int64_t n = t.n0 + tx + j * CS;
      if (n >= t.N) break;
      gstore(c.ptr, row + offset_of(c.n, nd), static_cast<O>(acc[i][j] + b));
      advance(c.n, nd, CS);
    }
  }
}

}  // namespace cuda
}  // namespace convext
