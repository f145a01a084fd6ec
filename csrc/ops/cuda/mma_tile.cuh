#pragma once
// The operand-independent layers of every tensor-core implicit GEMM:
//   MmaPolicy      block tile BM x BN x BK, warp grid, pipeline depth, shared
//                  layout (rows of BK elements padded by 16 bytes, so the 8
//                  rows an ldmatrix reads start in distinct banks)
//   warp_mma_step  one BK step of a warp's tile: shared -> registers
//                  (ldmatrix) -> mma.sync, float32 accumulators; for float
//                  operands (TF32) plain 32-bit loads, cvt.rna to TF32 and
//                  mma m16n8k8
//   mma_mainloop   the kStages-deep cp.async ring over K steps, driven by two
//                  tile iterators (what to copy where is theirs, not ours)
//   for_each_acc   where each accumulator of a thread sits in the block tile,
//                  for the epilogue
// Kernels (forward, grad_input, grad_weight) supply only tile iterators with
// `load(smem_ptr<T> stage, int k0)` and an epilogue; this is the split
// CUTLASS makes between tile iterators and the MMA step. Both operands are
// stored "row = m or n, k contiguous" in shared memory.

#include "ops/cuda/device.cuh"
#include "ops/cuda/mma.cuh"

#include <type_traits>

namespace convext {
namespace cuda {

// T: the operand type in shared memory (Half/BFloat16; float for TF32). A
// stage holds BK = KChunks x 16 bytes of k per row (64 by default; 32 lets
// a 128x128 tile keep 3 stages within 48 KB of static shared memory), a
// 16-byte chunk is kVec elements.
// Shared rows are BK + kVec elements apart. For the TF32 fragment loads (lane
// g, t reads row g, word t) that pitch, 20 or 12 words, puts the 8 rows at
// banks 20g or 12g mod 32 = 8 distinct multiples of 4, so the 32 lanes hit 32
// distinct banks; for ldmatrix (8 rows of 16 bytes) row starts 80 or 48
// bytes apart fall in 8 distinct 16-byte bank groups.
template <typename T, int BM_, int BN_, int WarpsM, int WarpsN, int Stages = 3, int KChunks = 4>
struct MmaPolicy {
  using Elem = T;
  static constexpr int kVec = 16 / sizeof(T);               // elements per 16-byte chunk
  static constexpr int BM = BM_, BN = BN_, BK = KChunks * kVec, kStages = Stages;
  static constexpr int kThreads = 32 * WarpsM * WarpsN, kWarpsN = WarpsN;
  static constexpr int WM = BM / WarpsM, WN = BN / WarpsN;  // a warp's tile
  static constexpr int MI = WM / 16, NI = WN / 8;           // mma tiles per warp
  static constexpr int kPitch = BK + kVec;                  // elements per shared row
  static constexpr int kAStage = BM * kPitch, kBStage = BN * kPitch;
  static constexpr int kChunksPerRow = BK / kVec;           // 16-byte chunks per row
  static_assert(WM % 16 == 0 && WN % 8 == 0 && NI % 2 == 0, "warp tile");
  static_assert(BK % (sizeof(T) == 4 ? 8 : 16) == 0, "whole mma k steps per stage");
  static_assert(BM * kChunksPerRow % kThreads == 0 && BN * kChunksPerRow % kThreads == 0,
                "whole chunks per thread");
};

// The 16-byte chunk `i` of this thread in a tile of rows x BK: its row and
// its k offset (in elements) within the BK step.
template <class P>
struct Chunk {
  int row, k;
  __device__ explicit Chunk(int i) {
    const int c = threadIdx.x + i * P::kThreads;
    row = c / P::kChunksPerRow;
    k = c % P::kChunksPerRow * P::kVec;
  }
};

template <class P>
using Accumulators = float[P::MI][P::NI][4];

// TF32: one BK step as MI x NI mma.m16n8k8 per 8 k, fragments read as
// words (mma.cuh's tf32 table) and rounded to TF32 (cvt.rna) once each.
template <class P>
__device__ void warp_mma_step_tf32(Accumulators<P>& acc, smem_ptr<float> a, smem_ptr<float> b,
                                   int wm, int wn) {
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  for (int ks = 0; ks < P::BK; ks += 8) {
    uint32_t fa[P::MI][4], fb[P::NI][2];
    for (int mi = 0; mi < P::MI; ++mi)  // a[i] = A[g + 8 (i % 2)][t + 4 (i / 2)]
      for (int i = 0; i < 4; ++i)
        fa[mi][i] = to_tf32(a[(wm * P::WM + mi * 16 + g + 8 * (i % 2)) * P::kPitch + ks + t +
                              4 * (i / 2)]);
    for (int ni = 0; ni < P::NI; ++ni)  // b[i] = B[t + 4 i][g], B stored n-major
      for (int i = 0; i < 2; ++i)
        fb[ni][i] = to_tf32(b[(wn * P::WN + ni * 8 + g) * P::kPitch + ks + t + 4 * i]);
    for (int mi = 0; mi < P::MI; ++mi)
      for (int ni = 0; ni < P::NI; ++ni)
        mma_m16n8k8_tf32(acc[mi][ni], fa[mi], fb[ni], acc[mi][ni]);
  }
}

// One BK step of a warp's WM x WN tile: MI x NI mma.m16n8k16 per 16 k
// (TF32 for float operands, above).
template <class P>
__device__ void warp_mma_step(Accumulators<P>& acc, smem_ptr<typename P::Elem> a,
                              smem_ptr<typename P::Elem> b, int wm, int wn) {
  using T = typename P::Elem;
  if constexpr (std::is_same_v<T, float>) {
    warp_mma_step_tf32<P>(acc, a, b, wm, wn);
  } else {
    const int lane = threadIdx.x % 32, j = lane / 8, r = lane % 8;
    for (int ks = 0; ks < P::BK; ks += 16) {
      uint32_t fa[P::MI][4], fb[P::NI][2];
      for (int mi = 0; mi < P::MI; ++mi)  // matrices: rows +0/+8 (j % 2), k +0/+8 (j / 2)
        ldmatrix<4>(fa[mi], a + ((wm * P::WM + mi * 16 + r + 8 * (j % 2)) * P::kPitch + ks +
                                 8 * (j / 2)));
      for (int ni = 0; ni < P::NI; ni += 2) {  // matrices: k +0/+8 of rows +0/+8 (j / 2)
        uint32_t f[4];
        ldmatrix<4>(f, b + ((wn * P::WN + ni * 8 + r + 8 * (j / 2)) * P::kPitch + ks +
                            8 * (j % 2)));
        fb[ni][0] = f[0], fb[ni][1] = f[1], fb[ni + 1][0] = f[2], fb[ni + 1][1] = f[3];
      }
      for (int mi = 0; mi < P::MI; ++mi)
        for (int ni = 0; ni < P::NI; ++ni)
          mma_m16n8k16<T>(acc[mi][ni], fa[mi], fb[ni], acc[mi][ni]);
    }
  }
}

// Accumulates K steps [first, last) into acc. a_s and b_s hold kStages
// stages; the ring is drained (no cp.async pending) on return.
template <class P, class ATile, class BTile>
__device__ void mma_mainloop(Accumulators<P>& acc, smem_ptr<typename P::Elem> a_s,
                             smem_ptr<typename P::Elem> b_s,
                             const ATile& a_tile, const BTile& b_tile, int first, int last) {
  const int steps = last - first;
  auto load = [&](int s) {
    const int slot = s % P::kStages;
    a_tile.load(a_s + slot * P::kAStage, (first + s) * P::BK);
    b_tile.load(b_s + slot * P::kBStage, (first + s) * P::BK);
  };
  for (int s = 0; s < P::kStages - 1; ++s) {
    if (s < steps) load(s);
    cp_async_commit();
  }
  const int warp = threadIdx.x / 32, wm = warp / P::kWarpsN, wn = warp % P::kWarpsN;
  for (int s = 0; s < steps; ++s) {
    cp_async_wait<P::kStages - 2>();
    __syncthreads();  // stage s landed for all; stage s - 1 is read by all
    if (s + P::kStages - 1 < steps) load(s + P::kStages - 1);
    cp_async_commit();
    const int slot = s % P::kStages;
    warp_mma_step<P>(acc, a_s + slot * P::kAStage, b_s + slot * P::kBStage, wm, wn);
  }
  cp_async_wait<0>();
}

// Calls f(row, col, value) for each accumulator of this thread, row < BM and
// col < BN in the block tile; col is even for i % 2 == 0 and col + 1 follows.
template <class P, class F>
__device__ void for_each_acc(const Accumulators<P>& acc, F&& f) {
  const int warp = threadIdx.x / 32, wm = warp / P::kWarpsN, wn = warp % P::kWarpsN;
  const int lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
  #pragma unroll
  for (int mi = 0; mi < P::MI; ++mi)
    #pragma unroll
    for (int ni = 0; ni < P::NI; ++ni)
      #pragma unroll
      for (int i = 0; i < 4; ++i)
        f(wm * P::WM + mi * 16 + g + 8 * (i / 2), wn * P::WN + ni * 8 + 2 * t + i % 2,
          acc[mi][ni][i]);
}

}  // namespace cuda
}  // namespace convext
