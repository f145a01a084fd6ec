#pragma once
// Sum over a block in a fixed tree order (warp shuffles, then one warp over
// the warp sums), so the result does not depend on scheduling.

#include "ops/cuda/device.cuh"

namespace convext {
namespace cuda {

// Valid in thread 0 only. NT: the block size, a multiple of 32 up to 1024.
template <int NT, typename T>
__device__ T block_sum(T v) {
  static_assert(NT % 32 == 0 && NT <= 1024, "block size");
  CONVEXT_SHARED(T, warp_sums, NT / 32);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < NT / 32 ? warp_sums[lane] : T(0);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  }
  return v;
}

}  // namespace cuda
}  // namespace convext
