#pragma once
// Tensor-core forward implicit GEMM for channels_last (NHWC) half types:
//   out[m][oc] = bias[oc] + sum_k patch[m][k] * W[oc][k]
// m = (n, oh, ow), k = (kh, kw, c) with c contiguous, so every 8 k are one
// 16-byte vector of the input (C % 8 == 0) and of the OHWI weight.
// Three layers, kept apart:
//   PatchTile / WeightTile  global -> shared: which 16-byte chunks a thread
//                           copies with cp.async for one BK step (zero-filled
//                           outside the image and the problem)
//   warp_mma_step           shared -> registers (ldmatrix) -> mma.sync
//   epilogue                float32 accumulators + bias -> out
// The main loop is a kStages-deep cp.async ring over padded shared rows
// (BK + 8 halves: 80-byte pitch, ldmatrix rows hit distinct banks).
// Tap offsets are 32-bit from a 64-bit per-image base (host checks that an
// image, H*W*C, fits in 31 bits); there is no 64-bit division in the loop.

#include "ops/cuda/device.cuh"
#include "ops/cuda/mma.cuh"

namespace convext {
namespace cuda {

struct MmaConvParams {
  int N, C, H, W, OC, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw;
  int M, K;  // N*OH*OW, KH*KW*C
};

struct MmaTile {
  static constexpr int BM = 64, BN = 64, BK = 32, kStages = 3, kThreads = 128;
  static constexpr int kPitch = BK + 8;          // halves per shared row
  static constexpr int kStage = BM * kPitch;     // halves per stage (BM == BN)
  static constexpr int kChunks = BM * BK / 8 / kThreads;  // 16-byte chunks per thread
  static_assert(BM == BN, "one stage size for both operands");
};

// Rows m0 + r of the patch matrix, r = thread's rows: image base and the
// top-left input position of each output pixel, computed once per tile.
template <typename T>
struct PatchTile {
  const T* base[MmaTile::kChunks];
  int ih0[MmaTile::kChunks], iw0[MmaTile::kChunks];
  bool row_ok[MmaTile::kChunks];

  __device__ PatchTile(const T* in, const MmaConvParams& p, int m0) {
    for (int i = 0; i < MmaTile::kChunks; ++i) {
      const int chunk = threadIdx.x + i * MmaTile::kThreads, m = m0 + chunk / (MmaTile::BK / 8);
      row_ok[i] = m < p.M;
      const int mm = row_ok[i] ? m : 0, ow = mm % p.OW, oh = mm / p.OW % p.OH, n = mm / p.OW / p.OH;
      base[i] = in + static_cast<int64_t>(n) * p.H * p.W * p.C;
      ih0[i] = oh * p.sh - p.ph;
      iw0[i] = ow * p.sw - p.pw;
    }
  }

  __device__ void load(smem_ptr<T> stage, const MmaConvParams& p, int k0) const {
    for (int i = 0; i < MmaTile::kChunks; ++i) {
      const int chunk = threadIdx.x + i * MmaTile::kThreads, r = chunk / (MmaTile::BK / 8);
      const int kc = chunk % (MmaTile::BK / 8), k = k0 + kc * 8;
      const int tap = k / p.C, c = k - tap * p.C, kh = tap / p.KW, kw = tap - kh * p.KW;
      const int ih = ih0[i] + kh * p.dh, iw = iw0[i] + kw * p.dw;
      const bool ok = row_ok[i] && k < p.K && ih >= 0 && ih < p.H && iw >= 0 && iw < p.W;
      cp_async_16(stage + (r * MmaTile::kPitch + kc * 8), base[i], (ih * p.W + iw) * p.C + c, ok);
    }
  }
};

// Rows n0 + r of the OHWI weight (oc-major, k contiguous).
template <typename T>
struct WeightTile {
  const T* w;
  int n0;
  __device__ void load(smem_ptr<T> stage, const MmaConvParams& p, int k0) const {
    for (int i = 0; i < MmaTile::kChunks; ++i) {
      const int chunk = threadIdx.x + i * MmaTile::kThreads, r = chunk / (MmaTile::BK / 8);
      const int k = k0 + chunk % (MmaTile::BK / 8) * 8, oc = n0 + r;
      const bool ok = oc < p.OC && k < p.K;
      cp_async_16(stage + (r * MmaTile::kPitch + k - k0), w, static_cast<int64_t>(oc) * p.K + k,
                  ok);
    }
  }
};

// One BK step of a warp's 32x32 sub-tile: 2 x 4 mma.m16n8k16 per 16 k.
template <typename T>
__device__ void warp_mma_step(float (&acc)[2][4][4], smem_ptr<T> a, smem_ptr<T> b, int wm,
                              int wn) {
  const int lane = threadIdx.x % 32, j = lane / 8, r = lane % 8;
  for (int ks = 0; ks < MmaTile::BK; ks += 16) {
    uint32_t fa[2][4], fb[4][2];
    for (int mi = 0; mi < 2; ++mi)  // matrices: rows +0/+8 (j % 2), k +0/+8 (j / 2)
      ldmatrix<4>(fa[mi], a + ((wm * 32 + mi * 16 + r + 8 * (j % 2)) * MmaTile::kPitch + ks +
                               8 * (j / 2)));
    for (int ni = 0; ni < 4; ++ni)  // matrices: k +0/+8 of 8 weight rows
      ldmatrix<2>(fb[ni], b + ((wn * 32 + ni * 8 + r) * MmaTile::kPitch + ks + 8 * (j % 2)));
    for (int mi = 0; mi < 2; ++mi)
      for (int ni = 0; ni < 4; ++ni) mma_m16n8k16<T>(acc[mi][ni], fa[mi], fb[ni], acc[mi][ni]);
  }
}

template <typename T>
__global__ void __launch_bounds__(MmaTile::kThreads)
    igemm_mma_forward_kernel(const T* in, const T* w, const T* bias, T* out, MmaConvParams p) {
  CONVEXT_SHARED_ALIGNED(T, a_s, MmaTile::kStages * MmaTile::kStage);
  CONVEXT_SHARED_ALIGNED(T, b_s, MmaTile::kStages * MmaTile::kStage);
  const int tiles_n = (p.OC + MmaTile::BN - 1) / MmaTile::BN;
  const int m0 = blockIdx.x / tiles_n * MmaTile::BM, n0 = blockIdx.x % tiles_n * MmaTile::BN;
  const PatchTile<T> patches(in, p, m0);
  const WeightTile<T> weights{w, n0};
  const int steps = (p.K + MmaTile::BK - 1) / MmaTile::BK;
  auto load = [&](int step) {
    const int slot = step % MmaTile::kStages * MmaTile::kStage;
    patches.load(a_s + slot, p, step * MmaTile::BK);
    weights.load(b_s + slot, p, step * MmaTile::BK);
  };
  float acc[2][4][4] = {};
  for (int s = 0; s < MmaTile::kStages - 1; ++s) {
    if (s < steps) load(s);
    cp_async_commit();
  }
  const int warp = threadIdx.x / 32, wm = warp / 2, wn = warp % 2;
  for (int s = 0; s < steps; ++s) {
    cp_async_wait<MmaTile::kStages - 2>();
    __syncthreads();  // stage s landed for all; stage s - 1 is read by all
    if (s + MmaTile::kStages - 1 < steps) load(s + MmaTile::kStages - 1);
    cp_async_commit();
    const int slot = s % MmaTile::kStages * MmaTile::kStage;
    warp_mma_step<T>(acc, a_s + slot, b_s + slot, wm, wn);
  }
  cp_async_wait<0>();

  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  for (int mi = 0; mi < 2; ++mi)
    for (int ni = 0; ni < 4; ++ni)
      for (int i = 0; i < 4; ++i) {
        const int m = m0 + wm * 32 + mi * 16 + g + 8 * (i / 2);
        const int oc = n0 + wn * 32 + ni * 8 + 2 * t + i % 2;
        if (m >= p.M || oc >= p.OC) continue;
        float v = acc[mi][ni][i];
        if (bias) v += static_cast<float>(gload(bias, oc));
        gstore(out, static_cast<int64_t>(m) * p.OC + oc, static_cast<T>(v));
      }
}

}  // namespace cuda
}  // namespace convext
