#pragma once
// The MMA step for operands stored k-major in shared memory: a stage is BK
// rows (k) of BM (A) or BN (B) contiguous elements. That is how the weight
// gradient's operands arrive: in channels_last, grad_out and the input are
// contiguous along oc / c for a fixed output position q, and q is the
// reduction, so 16-byte cp.async chunks land as k-major rows with no
// transposing copy. ldmatrix .trans then hands out the same fragments that
// mma_tile.cuh's warp_mma_step reads from "row = m or n, k contiguous" tiles.
// ldmatrix moves 16-bit elements only, so float (TF32) operands are read as
// 32-bit words, in the m16n8k8 .tf32 fragment layout, and rounded with
// cvt.rna as the forward's warp_mma_step_tf32 does.
//   KMajorPolicy              MmaPolicy's warp grid and pipeline with k-major
//                             stages: rows of BM / BN elements padded so that
//                             the fragment loads hit distinct banks (below)
//   warp_mma_step_kmajor<P>   one BK step of a warp's tile from k-major stages
//   CONVEXT_KMAJOR_MMA_STEP(P)  routes mma_mainloop<P> (which calls
//                             warp_mma_step<P>) to it, by explicit specialisation
//                             for one concrete policy P

#include "ops/cuda/mma_tile.cuh"

namespace convext {
namespace cuda {

// Row pitch: BM / BN plus a pad. Half types: 16 bytes, so the 8 row starts
// an ldmatrix reads (BM, BN multiples of 64: 16 mod 128 bytes apart) fall in
// 8 distinct 16-byte bank groups. float: 8 words, a pitch of 8 mod 32 words,
// so the TF32 fragment load of lane (g, t) (row t (+4), word g (+8) of a warp
// tile) is at bank 8t + g + const mod 32: the 32 lanes hit 32 distinct banks
// (a 4-word pad would put rows t and t + 1 on banks 4 apart: 2-way conflicts).
template <typename T, int BM_, int BN_, int WarpsM, int WarpsN, int Stages = 3, int KChunks = 4>
struct KMajorPolicy : MmaPolicy<T, BM_, BN_, WarpsM, WarpsN, Stages, KChunks> {
  using Base = MmaPolicy<T, BM_, BN_, WarpsM, WarpsN, Stages, KChunks>;
  static constexpr int kPad = sizeof(T) == 4 ? 8 : Base::kVec;
  static constexpr int kPitchA = BM_ + kPad, kPitchB = BN_ + kPad;
  static_assert(BM_ % 64 == 0 && BN_ % 64 == 0, "conflict-free pitch");
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
// float: per 8 k, lane (g, t) reads A[g + 8 (i % 2)][t + 4 (i / 2)] from
// stored row t + 4 (i / 2), column g + 8 (i % 2), and B[t + 4 i][g] from row
// t + 4 i, column g: mma.cuh's tf32 table, each word rounded once (cvt.rna).
template <class P>
__device__ void warp_mma_step_kmajor_tf32(Accumulators<P>& acc, smem_ptr<float> a,
                                          smem_ptr<float> b, int wm, int wn) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  for (int ks = 0; ks < P::BK; ks += 8) {
    uint32_t fa[P::MI][4], fb[P::NI][2];
    for (int mi = 0; mi < P::MI; ++mi)
      for (int i = 0; i < 4; ++i)
        fa[mi][i] = to_tf32(a[(ks + t + 4 * (i / 2)) * P::kPitchA + wm * P::WM + mi * 16 + g +
                              8 * (i % 2)]);
    for (int ni = 0; ni < P::NI; ++ni)
      for (int i = 0; i < 2; ++i)
        fb[ni][i] = to_tf32(b[(ks + t + 4 * i) * P::kPitchB + wn * P::WN + ni * 8 + g]);
    for (int mi = 0; mi < P::MI; ++mi)
      for (int ni = 0; ni < P::NI; ++ni)
        mma_m16n8k8_tf32(acc[mi][ni], fa[mi], fb[ni], acc[mi][ni]);
  }
}

template <class P>
__device__ void warp_mma_step_kmajor_b16(Accumulators<P>& acc, smem_ptr<typename P::Elem> a,
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

template <class P>
__device__ void warp_mma_step_kmajor(Accumulators<P>& acc, smem_ptr<typename P::Elem> a,
                                     smem_ptr<typename P::Elem> b, int wm, int wn) {
  if constexpr (std::is_same_v<typename P::Elem, float>)
    warp_mma_step_kmajor_tf32<P>(acc, a, b, wm, wn);
  else
    warp_mma_step_kmajor_b16<P>(acc, a, b, wm, wn);
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
