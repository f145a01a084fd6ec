#pragma once
// Tensor-core weight gradient for channels_last (NHWC) half types:
//   part[split][oc][k] = sum over q in the split of grad_out[q][oc] * patch[q][k]
// q = (n, oh, ow) is the reduction, k = (kh, kw, c) with c contiguous. For a
// fixed q both operands are contiguous along oc / k (C % 8 == 0, OC % 8 ==
// 0), so every 16-byte cp.async chunk is 8 oc or 8 c of one position and the
// stages are k-major (mma_kmajor.cuh: ldmatrix .trans, no transposing copy).
// The reduction over q is split across blocks, each a whole number of BK
// steps, into float32 partials that split_reduce adds in split order: no
// atomics, so the result is the same bit for bit on every run; the split
// count comes from the problem sizes alone (gemm_problem.cuh's split_k), so
// it is also the same on every GPU model.
// This file holds the two tile iterators (global -> shared, zero-filled
// outside the image and the problem) and the kernel; pipeline and MMA step
// are mma_tile.cuh's and mma_kmajor.cuh's. Offsets are 32-bit from a 64-bit
// per-image base (the host checks that an image of either operand fits in
// 31 bits); the main loop divides 32-bit values only.

#include "ops/cuda/mma_kmajor.cuh"

namespace convext {
namespace cuda {

struct MmaWgradParams {
  int C, H, W, OC, KW, OH, OW, sh, sw, ph, pw, dh, dw;
  int Q, K;                     // N*OH*OW, KH*KW*C
  int steps, steps_per_split;   // BK steps of the whole reduction, of one split
  int tiles_m, tiles_n;
};

template <typename T>
using MmaWgradTile = KMajorPolicy<T, 64, 64, 2, 2>;

CONVEXT_KMAJOR_MMA_STEP(MmaWgradTile<c10::Half>)
CONVEXT_KMAJOR_MMA_STEP(MmaWgradTile<c10::BFloat16>)

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

// A: grad_out[q][m0 + col], BK positions x BM output channels.
template <class P, typename T>
struct WgradGradOutTile {
  static constexpr int kChunks = P::BK * P::kChunksA / P::kThreads;
  const T* go;
  int m0;
  const MmaWgradParams& p;

  __device__ void load(smem_ptr<T> stage, int q0) const {
    const int hw = p.OH * p.OW;
    for (int i = 0; i < kChunks; ++i) {
      const KChunk<P> ch(i, P::kChunksA);
      const int q = q0 + ch.row, oc = m0 + ch.col;
      const bool ok = q < p.Q && oc < p.OC;
      const int n = ok ? q / hw : 0, pos = q - n * hw;
      cp_async_16(stage + (ch.row * P::kPitchA + ch.col), go + static_cast<int64_t>(n) * hw * p.OC,
                  pos * p.OC + oc, ok);
    }
  }
};

// B: patch[q][n0 + col], BK positions x BN (tap, channel) columns; a
// thread's columns are fixed, so their tap offsets are decoded once.
template <class P, typename T>
struct WgradPatchTile {
  static constexpr int kChunks = P::BK * P::kChunksB / P::kThreads;
  const T* in;
  int dy[kChunks], dx[kChunks], c[kChunks];
  bool col_ok[kChunks];
  const MmaWgradParams& p;

  __device__ WgradPatchTile(const T* in_, const MmaWgradParams& p_, int n0) : in(in_), p(p_) {
    for (int i = 0; i < kChunks; ++i) {
      const int k = n0 + KChunk<P>(i, P::kChunksB).col;
      col_ok[i] = k < p.K;
      const int tap = col_ok[i] ? k / p.C : 0, kh = tap / p.KW, kw = tap - kh * p.KW;
      c[i] = k - tap * p.C;
      dy[i] = kh * p.dh - p.ph;
      dx[i] = kw * p.dw - p.pw;
    }
  }

  __device__ void load(smem_ptr<T> stage, int q0) const {
    const int hw = p.OH * p.OW;
    for (int i = 0; i < kChunks; ++i) {
      const KChunk<P> ch(i, P::kChunksB);
      const int q = q0 + ch.row;
      const bool q_ok = col_ok[i] && q < p.Q;
      const int n = q_ok ? q / hw : 0, pos = q - n * hw, oh = pos / p.OW, ow = pos - oh * p.OW;
      const int ih = oh * p.sh + dy[i], iw = ow * p.sw + dx[i];
      const bool ok = q_ok && ih >= 0 && ih < p.H && iw >= 0 && iw < p.W;
      cp_async_16(stage + (ch.row * P::kPitchB + ch.col),
                  in + static_cast<int64_t>(n) * p.H * p.W * p.C, (ih * p.W + iw) * p.C + c[i],
                  ok);
    }
  }
};

// Block (split, n tile, m tile), m tiles fastest: blocks reading the same
// positions run together and share them in L2.
template <typename T>
__global__ void __launch_bounds__(MmaWgradTile<T>::kThreads)
    igemm_mma_wgrad_kernel(const T* go, const T* in, float* part, MmaWgradParams p) {
  using P = MmaWgradTile<T>;
  CONVEXT_SHARED_ALIGNED(T, a_s, P::kStages * P::kAStage);
  CONVEXT_SHARED_ALIGNED(T, b_s, P::kStages * P::kBStage);
  const int mt = blockIdx.x % p.tiles_m, rest = blockIdx.x / p.tiles_m;
  const int nt = rest % p.tiles_n, split = rest / p.tiles_n;
  const int m0 = mt * P::BM, n0 = nt * P::BN;
  const int first = split * p.steps_per_split;
  const int last = p.steps - first < p.steps_per_split ? p.steps : first + p.steps_per_split;
  float acc[P::MI][P::NI][4] = {};
  mma_mainloop<P>(acc, a_s, b_s, WgradGradOutTile<P, T>{go, m0, p},
                  WgradPatchTile<P, T>(in, p, n0), first, last);
  for_each_acc<P>(acc, [&](int r, int c, float v) {
    const int oc = m0 + r, k = n0 + c;
    if (oc >= p.OC || k >= p.K) return;
    gstore(part, (static_cast<int64_t>(split) * p.OC + oc) * p.K + k, v);
  });
}

}  // namespace cuda
}  // namespace convext
