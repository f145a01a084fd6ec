#pragma once
// The tensor-core kernels' epilogue (forward and grad_input): a thread's
// float32 accumulators are scattered over the block tile (mma_tile.cuh's
// for_each_acc: 2 adjacent columns per register pair), so storing them
// directly writes 2-4 bytes at a time. Instead the tile, rounded to T (after
// `value` adds the bias in float32, as a direct store would), is staged row
// by row in the shared memory the main loop is done with, and handed back
// as runs of kVec columns (16 bytes) of one row, so a kernel whose output
// has the tile's columns (channels) innermost and 16-byte aligned writes
// each run with one 16-byte store (store_16: st.global.v4), and any other
// layout element by element from the same staging. A tile larger than the
// buffer (float 128x128: 66 KB against a 36 KB ring) is staged in row
// slices, one barrier pair each.
//   store_16(p, i, s)  16 bytes shared s[0..] -> global p[i..] (both 16-byte aligned)
//   epilogue_runs<P, kBuf>(acc, buf, value, run)  run(row, col, s) per run

#include <cstdint>

#include "ops/cuda/mma_tile.cuh"

namespace convext {
namespace cuda {

template <typename T>
__device__ __forceinline__ void store_16(T* p, int64_t i, smem_ptr<T> s) {
#ifdef CONVEXT_CUDA_EMULATOR
  ::cuda_emulator::check_aligned16(p + i, "16-byte global store");
  ::cuda_emulator::check_aligned16(s.address(), "16-byte shared read");
  for (int e = 0; e < static_cast<int>(16 / sizeof(T)); ++e) gstore(p, i + e, static_cast<T>(s[e]));
#else
  *reinterpret_cast<uint4*>(p + i) = *reinterpret_cast<const uint4*>(s);
#endif
}

// Stages acc in buf (kBuf elements of T, 16-byte aligned, free for all
// warps once the first barrier here passes) and calls run(r, col, s) for
// each run of kVec columns col.. of tile row r, s its kVec staged values.
// value(col, v) gives the stored T of accumulator v in column col.
template <class P, int kBuf, class Value, class Run>
__device__ void epilogue_runs(const Accumulators<P>& acc, smem_ptr<typename P::Elem> buf,
                              Value&& value, Run&& run) {
  constexpr int kPitch = P::BN + P::kVec, kRunsPerRow = P::BN / P::kVec;
  constexpr int kSlices = (P::BM * kPitch + kBuf - 1) / kBuf, kRows = P::BM / kSlices;
  static_assert(P::BM % kSlices == 0 && kRows * kPitch <= kBuf, "epilogue slice fits");
  for (int r0 = 0; r0 < P::BM; r0 += kRows) {
    __syncthreads();  // every warp is done with buf (the main loop, or the last slice)
    for_each_acc<P>(acc, [&](int r, int col, float v) {
      if (r >= r0 && r < r0 + kRows) buf[(r - r0) * kPitch + col] = value(col, v);
    });
    __syncthreads();
    for (int i = threadIdx.x; i < kRows * kRunsPerRow; i += P::kThreads) {
      const int r = i / kRunsPerRow, col = i % kRunsPerRow * P::kVec;
      run(r0 + r, col, buf + (r * kPitch + col));
    }
  }
}

}  // namespace cuda
}  // namespace convext
