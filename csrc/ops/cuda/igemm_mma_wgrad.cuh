#pragma once
// Tensor-core weight gradient for channels_last (NHWC), one GEMM per group:
//   part[split][g, oc][k] = sum over q in the split of grad_out[q][g, oc] * patch_g[q][k]
// q = (n, oh, ow) is the reduction, k = (kh, kw, c) with c the group's input
// channels, contiguous. For a fixed q both operands are contiguous along oc
// / k (channels per group, in and out, multiples of one 16-byte vector: 8
// halves, 4 floats), so every 16-byte cp.async chunk is kVec oc or kVec c
// of one position and the stages are k-major (mma_kmajor.cuh: ldmatrix
// .trans for half types, 32-bit fragment loads + cvt.rna for TF32 float).
// The reduction over q is split across blocks, each a whole number of BK
// steps, into float32 partials that split_reduce adds in split order: no
// atomics, so the result is the same bit for bit on every run; the split
// count comes from the problem sizes alone (gemm_problem.cuh's split_k), so
// it is also the same on every GPU model.
// This file holds the tile shapes, the two tile iterators (global -> shared,
// zero-filled outside the image and the problem) and the kernel; pipeline
// and MMA step are mma_tile.cuh's and mma_kmajor.cuh's. Offsets are 32-bit
// from a 64-bit per-image base (the host checks that an image of either
// operand fits in 31 bits). The main loop has no division: each tile
// iterator holds the (n, oh, ow) of its rows and steps them by BK positions
// with carries (PositionCounter); positions are divided only once a block.

#include "ops/cuda/mma_kmajor.cuh"

namespace convext {
namespace cuda {

struct MmaWgradParams {
  int C, H, W, OC, KW, OH, OW, sh, sw, ph, pw, dh, dw;
  int G, Cg, OCg;               // groups, input / output channels per group
  int Q, K;                     // N*OH*OW, KH*KW*Cg (a group's columns)
  int step_n, step_oh, step_ow; // BK positions as images, rows, columns (< OH, < OW)
  int steps, steps_per_split;   // BK steps of the whole reduction, of one split
  int tiles_m, tiles_n;         // per group
};

// The tile shapes; conv_grad_weight_cuda.cu's wgrad_tile() picks one from
// the problem's sizes. 64x64: 4 warps, BK = 64 bytes of q (32 halves, 16
// floats), 27-28 KB of shared memory; 128x128 (both sides over 64): 8
// warps of 64x32, BK = 32 bytes (16 halves, 8 floats) to keep 3 stages
// under 48 KB (26 KB halves, 26 KB float).
template <typename T>
using MmaWgradTile64 = KMajorPolicy<T, 64, 64, 2, 2>;
template <typename T>
using MmaWgradTile128 = KMajorPolicy<T, 128, 128, 2, 4, 3, 2>;

#define CONVEXT_WGRAD_MMA_STEPS(T)                   \
  CONVEXT_KMAJOR_MMA_STEP(MmaWgradTile64<T>)         \
  CONVEXT_KMAJOR_MMA_STEP(MmaWgradTile128<T>)
CONVEXT_WGRAD_MMA_STEPS(c10::Half)
CONVEXT_WGRAD_MMA_STEPS(c10::BFloat16)
CONVEXT_WGRAD_MMA_STEPS(float)
#undef CONVEXT_WGRAD_MMA_STEPS

// A thread's 16-byte chunk i of a k-major stage with `per_row` chunks a row:
// its row (the position q0 + row) and its column.
template <class P>
struct KChunk {
  int row, col;
  __device__ KChunk(int i, int per_row) {
    const int c = threadIdx.x + i * P::kThreads;
    row = c / per_row;
    col = c % per_row * P::kVec;
  }
};

// The output position q = (n, oh, ow) of one shared row. Divided once
// (start); each step adds BK positions as (step_n, step_oh, step_ow) with at
// most one carry per digit, so the main loop does no division. Rows past Q
// count on (n >= N) and are masked by q.
struct PositionCounter {
  int q, n, oh, ow;
  __device__ void start(int q0, const MmaWgradParams& p) {
    q = q0;
    const int hw = p.OH * p.OW;
    n = q0 / hw;
    const int pos = q0 - n * hw;
    oh = pos / p.OW;
    ow = pos - oh * p.OW;
  }
  template <int BK>
  __device__ void advance(const MmaWgradParams& p) {
    q += BK;
    ow += p.step_ow;
    const int cw = ow >= p.OW;
    ow -= cw ? p.OW : 0;
    oh += p.step_oh + cw;
    const int ch = oh >= p.OH;
    oh -= ch ? p.OH : 0;
    n += p.step_n + ch;
  }
};

// load() is called once per BK step, for steps first, first + 1, ... in
// order (mma_mainloop's ring), so the iterators step their counters on each
// call; the q0 it passes is where the counters already are.

// A: grad_out[q][m0 + col] of the group (go at its first channel), BK
// positions x BM output channels.
template <class P, typename T>
struct WgradGradOutTile {
  static constexpr int kChunks = P::BK * P::kChunksA / P::kThreads;
  const T* go;
  int m0;
  const MmaWgradParams& p;
  mutable PositionCounter at[kChunks];

  __device__ WgradGradOutTile(const T* go_, const MmaWgradParams& p_, int m0_, int q0)
      : go(go_), m0(m0_), p(p_) {
    for (int i = 0; i < kChunks; ++i) at[i].start(q0 + KChunk<P>(i, P::kChunksA).row, p);
  }

  __device__ void load(smem_ptr<T> stage, int /*q0*/) const {
    for (int i = 0; i < kChunks; ++i) {
      const KChunk<P> ch(i, P::kChunksA);
      const int oc = m0 + ch.col;
      const PositionCounter& x = at[i];
      const bool ok = x.q < p.Q && oc < p.OCg;
      const T* img = go + (ok ? static_cast<int64_t>(x.n) * p.OH * p.OW * p.OC : 0);
      cp_async_16(stage + (ch.row * P::kPitchA + ch.col), img,
                  (x.oh * p.OW + x.ow) * p.OC + oc, ok);
      at[i].template advance<P::BK>(p);
    }
  }
};

// B: patch[q][n0 + col] of the group (in at its first channel), BK
// positions x BN (tap, channel) columns; a thread's columns are fixed, so
// their tap offsets are decoded once.
template <class P, typename T>
struct WgradPatchTile {
  static constexpr int kChunks = P::BK * P::kChunksB / P::kThreads;
  const T* in;
  int dy[kChunks], dx[kChunks], c[kChunks];
  bool col_ok[kChunks];
  const MmaWgradParams& p;
  mutable PositionCounter at[kChunks];

  __device__ WgradPatchTile(const T* in_, const MmaWgradParams& p_, int n0, int q0)
      : in(in_), p(p_) {
    for (int i = 0; i < kChunks; ++i) {
      const KChunk<P> ch(i, P::kChunksB);
      const int k = n0 + ch.col;
      col_ok[i] = k < p.K;
      const int tap = col_ok[i] ? k / p.Cg : 0, kh = tap / p.KW, kw = tap - kh * p.KW;
      c[i] = k - tap * p.Cg;
      dy[i] = kh * p.dh - p.ph;
      dx[i] = kw * p.dw - p.pw;
      at[i].start(q0 + ch.row, p);
    }
  }

  __device__ void load(smem_ptr<T> stage, int /*q0*/) const {
    for (int i = 0; i < kChunks; ++i) {
      const KChunk<P> ch(i, P::kChunksB);
      const PositionCounter& x = at[i];
      const int ih = x.oh * p.sh + dy[i], iw = x.ow * p.sw + dx[i];
      const bool ok = col_ok[i] && x.q < p.Q && ih >= 0 && ih < p.H && iw >= 0 && iw < p.W;
      const T* img = in + (ok ? static_cast<int64_t>(x.n) * p.H * p.W * p.C : 0);
      cp_async_16(stage + (ch.row * P::kPitchB + ch.col), img, (ih * p.W + iw) * p.C + c[i],
                  ok);
      at[i].template advance<P::BK>(p);
    }
  }
};

// Block (split, group, n tile, m tile), m tiles fastest: blocks reading the
// same positions run together and share them in L2. At most 128 registers:
// four blocks of 4 warps or two of 8 per SM.
template <class P>
__global__ void __launch_bounds__(P::kThreads, 512 / P::kThreads)
    igemm_mma_wgrad_kernel(const typename P::Elem* go, const typename P::Elem* in, float* part,
                           MmaWgradParams p) {
  using T = typename P::Elem;
  CONVEXT_SHARED_ALIGNED(T, a_s, P::kStages * P::kAStage);
  CONVEXT_SHARED_ALIGNED(T, b_s, P::kStages * P::kBStage);
  int blk = blockIdx.x;
  const int m0 = blk % p.tiles_m * P::BM;
  blk /= p.tiles_m;
  const int n0 = blk % p.tiles_n * P::BN;
  blk /= p.tiles_n;
  const int g = blk % p.G, split = blk / p.G;
  const int first = split * p.steps_per_split;
  const int last = p.steps - first < p.steps_per_split ? p.steps : first + p.steps_per_split;
  float acc[P::MI][P::NI][4] = {};
  mma_mainloop<P>(acc, a_s, b_s, WgradGradOutTile<P, T>(go + g * p.OCg, p, m0, first * P::BK),
                  WgradPatchTile<P, T>(in + g * p.Cg, p, n0, first * P::BK), first, last);
  part += (static_cast<int64_t>(split) * p.OC + g * p.OCg) * p.K;
  for_each_acc<P>(acc, [&](int r, int c, float v) {
    const int oc = m0 + r, k = n0 + c;
    if (oc >= p.OCg || k >= p.K) return;
    gstore(part, static_cast<int64_t>(oc) * p.K + k, v);
  });
}

}  // namespace cuda
}  // namespace convext
