#pragma once
// Tensor-core forward implicit GEMM for channels_last (NHWC) half types:
//   out[m][oc] = bias[oc] + sum_k patch[m][k] * W[oc][k]
// m = (n, oh, ow), k = (kh, kw, c) with c contiguous, so every 8 k are one
// 16-byte vector of the input (C % 8 == 0) and of the OHWI weight.
// This file holds the forward's tile iterators (global -> shared: which
// 16-byte chunks a thread copies with cp.async for one BK step, zero-filled
// outside the image and the problem) and its epilogue; the pipeline and the
// MMA step are mma_tile.cuh's.
// Tap offsets are 32-bit from a 64-bit per-image base (host checks that an
// image, H*W*C, fits in 31 bits); there is no 64-bit division in the loop.

#include "ops/cuda/mma_tile.cuh"

namespace convext {
namespace cuda {

struct MmaConvParams {
  int N, C, H, W, OC, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw;
  int M, K;  // N*OH*OW, KH*KW*C
};

template <typename T>
using MmaForwardTile = MmaPolicy<T, 64, 64, 2, 2>;

// Rows m0 + r of the patch matrix, r = thread's rows: image base and the
// top-left input position of each output pixel, computed once per tile.
template <class P, typename T>
struct PatchTile {
  static constexpr int kChunks = P::BM * P::kChunksPerRow / P::kThreads;
  const T* base[kChunks];
  int ih0[kChunks], iw0[kChunks];
  bool row_ok[kChunks];
  const MmaConvParams& p;

  __device__ PatchTile(const T* in, const MmaConvParams& p_, int m0) : p(p_) {
    for (int i = 0; i < kChunks; ++i) {
      const int m = m0 + Chunk<P>(i).row;
      row_ok[i] = m < p.M;
      const int mm = row_ok[i] ? m : 0, ow = mm % p.OW, oh = mm / p.OW % p.OH, n = mm / p.OW / p.OH;
      base[i] = in + static_cast<int64_t>(n) * p.H * p.W * p.C;
      ih0[i] = oh * p.sh - p.ph;
      iw0[i] = ow * p.sw - p.pw;
    }
  }

  __device__ void load(smem_ptr<T> stage, int k0) const {
    for (int i = 0; i < kChunks; ++i) {
      const Chunk<P> ch(i);
      const int k = k0 + ch.k;
      const int tap = k / p.C, c = k - tap * p.C, kh = tap / p.KW, kw = tap - kh * p.KW;
      const int ih = ih0[i] + kh * p.dh, iw = iw0[i] + kw * p.dw;
      const bool ok = row_ok[i] && k < p.K && ih >= 0 && ih < p.H && iw >= 0 && iw < p.W;
      cp_async_16(stage + (ch.row * P::kPitch + ch.k), base[i], (ih * p.W + iw) * p.C + c, ok);
    }
  }
};

// Rows n0 + r of the OHWI weight (oc-major, k contiguous).
template <class P, typename T>
struct WeightTile {
  static constexpr int kChunks = P::BN * P::kChunksPerRow / P::kThreads;
  const T* w;
  int n0;
  const MmaConvParams& p;
  __device__ void load(smem_ptr<T> stage, int k0) const {
    for (int i = 0; i < kChunks; ++i) {
      const Chunk<P> ch(i);
      const int k = k0 + ch.k, oc = n0 + ch.row;
      const bool ok = oc < p.OC && k < p.K;
      cp_async_16(stage + (ch.row * P::kPitch + ch.k), w, static_cast<int64_t>(oc) * p.K + k, ok);
    }
  }
};

template <typename T>
__global__ void __launch_bounds__(MmaForwardTile<T>::kThreads)
    igemm_mma_forward_kernel(const T* in, const T* w, const T* bias, T* out, MmaConvParams p) {
  using P = MmaForwardTile<T>;
  CONVEXT_SHARED_ALIGNED(T, a_s, P::kStages * P::kAStage);
  CONVEXT_SHARED_ALIGNED(T, b_s, P::kStages * P::kBStage);
  const int tiles_n = (p.OC + P::BN - 1) / P::BN;
  const int m0 = blockIdx.x / tiles_n * P::BM, n0 = blockIdx.x % tiles_n * P::BN;
  float acc[P::MI][P::NI][4] = {};
  mma_mainloop<P>(acc, a_s, b_s, PatchTile<P, T>(in, p, m0), WeightTile<P, T>{w, n0, p}, 0,
                     (p.K + P::BK - 1) / P::BK);
  for_each_acc<P>(acc, [&](int r, int c, float v) {
    const int m = m0 + r, oc = n0 + c;
    if (m >= p.M || oc >= p.OC) return;
    if (bias) v += static_cast<float>(gload(bias, oc));
    gstore(out, static_cast<int64_t>(m) * p.OC + oc, static_cast<T>(v));
  });
}

}  // namespace cuda
}  // namespace convext
