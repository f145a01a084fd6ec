#pragma once
// Tensor-core forward implicit GEMM over a channels_last (NHWC) input:
//   out[m][g, n] = bias[g, n] + sum_k patch_g[m][k] * W[g, n][k]
// m = (image, oh, ow), k = (kh, kw, c) with c the group's channels,
// contiguous, so every kVec k are one 16-byte vector of the input (channels
// per group a multiple of kVec) and of the OHWI weight. Half types multiply
// with mma m16n8k16, float with TF32 m16n8k8 (mma_tile.cuh). 1D convs are
// H = KH = 1.
// This file holds the forward's tile iterators (global -> shared: which
// 16-byte chunks a thread copies with cp.async for one BK step, zero-filled
// outside the image and the problem), the epilogue and the block -> (split,
// group, m tile, n tile) order; the pipeline and the MMA step are
// mma_tile.cuh's, the tile shapes mma_tiles.cuh's. The epilogue adds the
// bias and writes 16-byte vectors along the output channels
// (mma_epilogue.cuh): the output is always a dense, 16-byte aligned NHWC
// buffer (the host copies to any other layout after). Tap offsets are
// 32-bit from a 64-bit per-image base (host checks that an image, H*W*C,
// fits in 31 bits); no 64-bit division anywhere.
// Split-K: block split s sums k in [s * k_chunk, (s + 1) * k_chunk) into a
// float32 partial buffer [split][OC][M] that split_reduce adds with the bias.

#include <algorithm>

#include "ops/cuda/mma_epilogue.cuh"
#include "ops/cuda/mma_tiles.cuh"

namespace convext {
namespace cuda {

struct MmaConvParams {
  int N, C, H, W, OC, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw;
  int G, Cg, OCg;        // groups, input / output channels per group
  int M, K;              // N*OH*OW, KH*KW*Cg
  int tiles_m, tiles_n;  // per group
  int splits, k_chunk;   // k_chunk: a multiple of every policy's BK
};

// Rows m0 + r of group g's patch matrix, r = thread's rows: image base (at
// the group's first channel) and the top-left input position of each output
// pixel, computed once per tile.
template <class P, typename T>
struct PatchTile {
  static constexpr int kChunks = P::BM * P::kChunksPerRow / P::kThreads;
  const T* base[kChunks];
  int ih0[kChunks], iw0[kChunks];
  bool row_ok[kChunks];
  const MmaConvParams& p;

  __device__ PatchTile(const T* in, const MmaConvParams& p_, int m0, int g) : p(p_) {
    for (int i = 0; i < kChunks; ++i) {
      const int m = m0 + Chunk<P>(i).row;
      row_ok[i] = m < p.M;
      const int mm = row_ok[i] ? m : 0, ow = mm % p.OW, oh = mm / p.OW % p.OH, n = mm / p.OW / p.OH;
      base[i] = in + static_cast<int64_t>(n) * p.H * p.W * p.C + g * p.Cg;
      ih0[i] = oh * p.sh - p.ph;
      iw0[i] = ow * p.sw - p.pw;
    }
  }

  __device__ void load(smem_ptr<T> stage, int k0) const {
    for (int i = 0; i < kChunks; ++i) {
      const Chunk<P> ch(i);
      const int k = k0 + ch.k;
      const int tap = k / p.Cg, c = k - tap * p.Cg, kh = tap / p.KW, kw = tap - kh * p.KW;
      const int ih = ih0[i] + kh * p.dh, iw = iw0[i] + kw * p.dw;
      const bool ok = row_ok[i] && k < p.K && ih >= 0 && ih < p.H && iw >= 0 && iw < p.W;
      cp_async_16(stage + (ch.row * P::kPitch + ch.k), base[i], (ih * p.W + iw) * p.C + c, ok);
    }
  }
};

// Rows n0 + r of the OHWI weight (oc-major, k contiguous); w at the group's
// first row.
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
      const bool ok = oc < p.OCg && k < p.K;
      cp_async_16(stage + (ch.row * P::kPitch + ch.k), w, static_cast<int64_t>(oc) * p.K + k, ok);
    }
  }
};

// Block order: n tiles fastest (blocks sharing the gathered patch tile run
// together), then m tiles, groups, splits. With part != nullptr the block
// writes its split's float32 partial sums (no bias) instead of out.
// At most 128 registers: two blocks of 8 warps or four of 4 per SM.
template <class P>
__global__ void __launch_bounds__(P::kThreads, 512 / P::kThreads)
    igemm_mma_forward_kernel(const typename P::Elem* in, const typename P::Elem* w,
                             const typename P::Elem* bias, typename P::Elem* out, float* part,
                             MmaConvParams p) {
  using T = typename P::Elem;
  // one buffer for both operands' stages, reused by the epilogue
  constexpr int kSmem = P::kStages * (P::kAStage + P::kBStage);
  CONVEXT_SHARED_ALIGNED(T, smem, kSmem);
  const smem_ptr<T> a_s = smem, b_s = smem + P::kStages * P::kAStage;
  int blk = blockIdx.x;
  const int n0 = blk % p.tiles_n * P::BN;
  blk /= p.tiles_n;
  const int m0 = blk % p.tiles_m * P::BM;
  blk /= p.tiles_m;
  const int g = blk % p.G, split = blk / p.G;
  const int k_first = split * p.k_chunk, k_last = std::min(p.K, k_first + p.k_chunk);
  float acc[P::MI][P::NI][4] = {};
  mma_mainloop<P>(acc, a_s, b_s, PatchTile<P, T>(in, p, m0, g),
                  WeightTile<P, T>{w + static_cast<int64_t>(g) * p.OCg * p.K, n0, p},
                  k_first / P::BK, (k_last + P::BK - 1) / P::BK);
  if (part) {
    part += static_cast<int64_t>(split) * p.OC * p.M;
    for_each_acc<P>(acc, [&](int r, int c, float v) {
      const int m = m0 + r, n = n0 + c;
      if (m < p.M && n < p.OCg) gstore(part, static_cast<int64_t>(g * p.OCg + n) * p.M + m, v);
    });
    return;
  }
  const T* bias_g = bias ? bias + g * p.OCg : nullptr;
  epilogue_runs<P, kSmem>(
      acc, smem,
      [&](int c, float v) {
        if (bias_g && n0 + c < p.OCg) v += static_cast<float>(gload(bias_g, n0 + c));
        return static_cast<T>(v);
      },
      [&](int r, int c, smem_ptr<T> s) {  // OCg % kVec == 0: a run is all in or all out
        const int m = m0 + r, n = n0 + c;
        if (m < p.M && n < p.OCg) store_16(out, static_cast<int64_t>(m) * p.OC + g * p.OCg + n, s);
      });
}

}  // namespace cuda
}  // namespace convext
