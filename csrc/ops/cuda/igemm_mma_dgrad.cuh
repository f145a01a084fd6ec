#pragma once
// Tensor-core grad_input (and so transposed-conv forward) for grad_output
// with contiguous channels (channels_last 2D, (N, L, C) 1D), per stride phase
// (stride_phases.cuh) and group, one implicit GEMM:
//   grad_in[m][c] = sum_k go_patch[m][k] * Wr[c][k]
// m = the phase's input positions (n, th, tw) at (rh + sh*th, rw + sw*tw),
// k = (phase tap i, phase tap j, oc) with oc contiguous: tap (i, j) is kernel
// tap (kh0 + i*kstep_h, kw0 + j*kstep_w) and reads grad_output at
// (th + o0h - i*ostep_h, tw + o0w - j*ostep_w), zero outside it. The weight
// is repacked once on the host to Wr = [g][c][kh][kw][oc], so both operands are
// "row = m or c, k contiguous" 16-byte chunks (OC/G % 8 == 0), as mma_tile.cuh
// wants them. Every phase a tap reaches is in one launch (the grid does not
// grow with the stride); phases are disjoint, so every element is written
// once, with no atomics. Offsets are 32-bit from 64-bit per-image bases (the
// host checks an image of either tensor, the repacked weight and the phase
// arithmetic fit in 31 bits); the main loop has no 64-bit division.
// Instantiated per MmaPolicy: the forward's tile shapes (mma_tiles.cuh, the
// host picks one per problem) for f16/bf16 (mma m16n8k16) and float (TF32
// m16n8k8, when torch allows TF32 for convs). The epilogue
// (mma_epilogue.cuh) writes 16-byte vectors along C where grad_input has
// channels innermost and 16-byte aligned positions (p.vec_store), element
// by element otherwise.

#include "ops/cuda/mma_epilogue.cuh"
#include "ops/cuda/mma_tiles.cuh"
#include "ops/cuda/stride_phases.cuh"

namespace convext {
namespace cuda {

struct MmaGradInputParams {
  int N, G, icg, ocg, H, W, OH, OW, KH, KW;
  int sh, sw, ph, pw, dh, dw, kstep_h, kstep_w;
  int phases_w, tiles_m, tiles_n;  // launched phases are phases_h x phases_w
  int64_t go_n, gi_n;              // image strides
  int go_h, go_w;                  // grad_output (channel stride 1)
  int gi_c, gi_h, gi_w;            // grad_input
  bool vec_store;  // gi_c == 1, other strides and gi multiples of 16 bytes
};

// One block's GEMM: phase rows/columns y/x (32-bit), group, tile and sizes.
struct DgradBlock {
  int rh, rw, kh0, kw0, ntaps_w, o0h, o0w, ostep_h, ostep_w, ext_h, ext_w;
  int g, m0, n0, M, K;

  __device__ DgradBlock(const MmaGradInputParams& p, int blk, int BM, int BN) {
    const int nt = blk % p.tiles_n;
    blk /= p.tiles_n;
    const int mt = blk % p.tiles_m;
    blk /= p.tiles_m;
    g = blk % p.G;
    blk /= p.G;
    // once per block, in 64 bits (host-checked to fit in 32 afterwards)
    rh = static_cast<int>(phase_of(blk / p.phases_w, p.sh, p.ph, p.dh));
    rw = static_cast<int>(phase_of(blk % p.phases_w, p.sw, p.pw, p.dw));
    const PhaseDim y = phase_dim(rh, p.sh, p.ph, p.dh, p.KH, p.kstep_h, p.H);
    const PhaseDim x = phase_dim(rw, p.sw, p.pw, p.dw, p.KW, p.kstep_w, p.W);
    kh0 = static_cast<int>(y.k0), kw0 = static_cast<int>(x.k0);
    ntaps_w = static_cast<int>(x.ntaps);
    o0h = static_cast<int>(y.o0), o0w = static_cast<int>(x.o0);
    ostep_h = static_cast<int>(y.ostep), ostep_w = static_cast<int>(x.ostep);
    ext_h = static_cast<int>(y.extent), ext_w = static_cast<int>(x.extent);
    M = p.N * ext_h * ext_w;
    K = static_cast<int>(y.ntaps) * ntaps_w * p.ocg;
    m0 = mt * BM;
    n0 = nt * BN;
  }

  // k = (i, j, oc) -> phase taps i, j and output channel oc
  __device__ void tap(int k, int ocg, int& i, int& j, int& oc) const {
    const int t = k / ocg;
    oc = k - t * ocg;
    i = t / ntaps_w;
    j = t - i * ntaps_w;
  }
};

// Rows m0 + r of the gathered grad_output: image base (with the group's
// channels) and grad_output position of the phase's first tap, once per tile.
template <class P, typename T>
struct GradOutTile {
  static constexpr int kChunks = P::BM * P::kChunksPerRow / P::kThreads;
  const T* base[kChunks];
  int oh0[kChunks], ow0[kChunks];
  bool row_ok[kChunks];
  const MmaGradInputParams& p;
  const DgradBlock b;

  __device__ GradOutTile(const T* go, const MmaGradInputParams& p_, const DgradBlock& b_)
      : p(p_), b(b_) {
    for (int i = 0; i < kChunks; ++i) {
      const int m = b.m0 + Chunk<P>(i).row;
      row_ok[i] = m < b.M;
      const int mm = row_ok[i] ? m : 0, tw = mm % b.ext_w, th = mm / b.ext_w % b.ext_h;
      const int n = mm / b.ext_w / b.ext_h;
      base[i] = go + (n * p.go_n + b.g * p.ocg);
      oh0[i] = th + b.o0h;
      ow0[i] = tw + b.o0w;
    }
  }

  __device__ void load(smem_ptr<T> stage, int k0) const {
    for (int i = 0; i < kChunks; ++i) {
      const Chunk<P> ch(i);
      const int k = k0 + ch.k;
      int ti, tj, oc;
      b.tap(k, p.ocg, ti, tj, oc);
      const int oh = oh0[i] - ti * b.ostep_h, ow = ow0[i] - tj * b.ostep_w;
      const bool ok = row_ok[i] && k < b.K && oh >= 0 && oh < p.OH && ow >= 0 && ow < p.OW;
      cp_async_16(stage + (ch.row * P::kPitch + ch.k), base[i],
                  ok ? oh * p.go_h + ow * p.go_w + oc : 0, ok);
    }
  }
};

// Rows n0 + r (input channels of the group) of the repacked weight
// [g][c][kh][kw][oc], k = (i, j, oc) of the block's phase.
template <class P, typename T>
struct RepackedWeightTile {
  static constexpr int kChunks = P::BN * P::kChunksPerRow / P::kThreads;
  const T* w;  // the group's [c][kh][kw][oc]
  const MmaGradInputParams& p;
  const DgradBlock b;

  __device__ void load(smem_ptr<T> stage, int k0) const {
    for (int i = 0; i < kChunks; ++i) {
      const Chunk<P> ch(i);
      const int k = k0 + ch.k, c = b.n0 + ch.row;
      int ti, tj, oc;
      b.tap(k, p.ocg, ti, tj, oc);
      const int kh = b.kh0 + ti * p.kstep_h, kw = b.kw0 + tj * p.kstep_w;
      const bool ok = c < p.icg && k < b.K;
      cp_async_16(stage + (ch.row * P::kPitch + ch.k), w,
                  ok ? ((c * p.KH + kh) * p.KW + kw) * p.ocg + oc : 0, ok);
    }
  }
};

// At most 128 registers: two blocks of 8 warps or four of 4 per SM.
template <class P>
__global__ void __launch_bounds__(P::kThreads, 512 / P::kThreads)
    igemm_mma_grad_input_kernel(const typename P::Elem* go, const typename P::Elem* w,
                                typename P::Elem* gi, MmaGradInputParams p) {
  using T = typename P::Elem;
  // one buffer for both operands' stages, reused by the epilogue
  constexpr int kSmem = P::kStages * (P::kAStage + P::kBStage);
  CONVEXT_SHARED_ALIGNED(T, smem, kSmem);
  const smem_ptr<T> a_s = smem, b_s = smem + P::kStages * P::kAStage;
  const DgradBlock b(p, blockIdx.x, P::BM, P::BN);
  if (b.m0 >= b.M) return;  // a smaller phase than the grid's bound (uniform per block)
  float acc[P::MI][P::NI][4] = {};
  const T* wg = w + static_cast<int64_t>(b.g) * p.icg * p.KH * p.KW * p.ocg;
  mma_mainloop<P>(acc, a_s, b_s, GradOutTile<P, T>(go, p, b), RepackedWeightTile<P, T>{wg, p, b},
                  0, (b.K + P::BK - 1) / P::BK);
  // a run of kVec channels of one position: its position decoded once
  epilogue_runs<P, kSmem>(
      acc, smem, [](int, float v) { return static_cast<T>(v); },
      [&](int r, int col, smem_ptr<T> s) {
        const int m = b.m0 + r, c = b.n0 + col;
        if (m >= b.M || c >= p.icg) return;  // icg % kVec == 0: a run is all in or all out
        const int q = m / b.ext_w, tw = m - q * b.ext_w, n = q / b.ext_h, th = q - n * b.ext_h;
        const int off = (b.g * p.icg + c) * p.gi_c + (b.rh + th * p.sh) * p.gi_h +
                        (b.rw + tw * p.sw) * p.gi_w;
        T* out = gi + n * p.gi_n;
        if (p.vec_store) {
          store_16(out, off, s);
        } else {
          for (int e = 0; e < P::kVec; ++e) gstore(out, off + e * p.gi_c, static_cast<T>(s[e]));
        }
      });
}

}  // namespace cuda
}  // namespace convext
