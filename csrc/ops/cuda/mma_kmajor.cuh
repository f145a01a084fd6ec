#pragma once
// The MMA step for operands stored k-major in shared memory: a stage is BK
// rows (k) of BM (A) or BN (B) contiguous elements. That is how the weight
// gradient's operands arrive: in channels_last, grad_out and the input are
// contiguous along oc / c for a fixed output position q, and q is the
// reduction, so 16-byte cp.async chunks land as k-major rows with no
// transposing copy. ldmatrix .trans then hands out the same fragments that
// mma_tile.cuh's warp_mma_step reads from "row = m or n, k contiguous" tiles.
//   KMajorPolicy              MmaPolicy's warp grid and pipeline with k-major
//                             stages: rows of BM / BN elements padded by 16
//                             bytes (the 8 rows of an ldmatrix in distinct banks)
//   warp_mma_step_kmajor<P>   one BK step of a warp's tile from k-major stages
//   CONVEXT_KMAJOR_MMA_STEP(P)  routes mma_mainloop<P> (which calls
//                             warp_mma_step<P>) to it, by explicit specialisation
//                             for one concrete policy P

#include "ops/cuda/mma_tile.cuh"

namespace convext {
namespace cuda {

template <typename T, int BM_, int BN_, int WarpsM, int WarpsN, int Stages = 3>
struct KMajorPolicy : MmaPolicy<T, BM_, BN_, WarpsM, WarpsN, Stages> {
  using Base = MmaPolicy<T, BM_, BN_, WarpsM, WarpsN, Stages>;
  static constexpr int kPitchA = BM_ + Base::kVec, kPitchB = BN_ + Base::kVec;
  static constexpr int kAStage = Base::BK * kPitchA, kBStage = Base::BK * kPitchB;
  static constexpr int kChunksA = BM_ / Base::kVec, kChunksB = BN_ / Base::kVec;  // per row
  static_assert(Base::BK * kChunksA % Base::kThreads == 0 &&
                    Base::BK * kChunksB % Base::kThreads == 0,
                "whole chunks per thread");
};

// As warp_mma_step, from k-major stages. For A (16 m x 16 k), matrix j of an
// ldmatrix x4 .trans is k rows +0/+8 (j / 2) at m +0/+8 (j % 2): lane l gets
// A[g][2t..2t+1] from stored rows 2t, 2t+1 of column g. For B two n blocks:
// k rows +0/+8 (j % 2) at n +0/+8 (j / 2).
template <class P>
__device__ void warp_mma_step_kmajor(Accumulators<P>& acc, smem_ptr<typename P::Elem> a,
                                     smem_ptr<typename P::Elem> b, int wm, int wn) {
  using T = typename P::Elem;
  const int lane = threadIdx.x % 32, j = lane / 8, r = lane % 8;
  for (int ks = 0; ks < P::BK; ks += 16) {
    uint32_t fa[P::MI][4], fb[P::NI][2];
    for (int mi = 0; mi < P::MI; ++mi)
      ldmatrix<4, true>(fa[mi], a + ((ks + r + 8 * (j / 2)) * P::kPitchA + wm * P::WM +
                                     mi * 16 + 8 * (j % 2)));
    for (int ni = 0; ni < P::NI; ni += 2) {
      uint32_t f[4];
      ldmatrix<4, true>(f, b + ((ks + r + 8 * (j % 2)) * P::kPitchB + wn * P::WN + ni * 8 +
                                8 * (j / 2)));
      fb[ni][0] = f[0], fb[ni][1] = f[1], fb[ni + 1][0] = f[2], fb[ni + 1][1] = f[3];
    }
    for (int mi = 0; mi < P::MI; ++mi)
      for (int ni = 0; ni < P::NI; ++ni) mma_m16n8k16<T>(acc[mi][ni], fa[mi], fb[ni], acc[mi][ni]);
  }
}

// mma_mainloop<P> calls warp_mma_step<P>; a full specialisation per k-major
// policy (function templates have no partial ones) sends it here.
#define CONVEXT_KMAJOR_MMA_STEP(P)                                                         \
  template <>                                                                              \
  __device__ inline void warp_mma_step<P>(Accumulators<P> & acc,                           \
                                          smem_ptr<P::Elem> a,                             \
                                          smem_ptr<P::Elem> b, int wm, int wn) {           \
    warp_mma_step_kmajor<P>(acc, a, b, wm, wn);                                            \
  }

}  // namespace cuda
}  // namespace convext
