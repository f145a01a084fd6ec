#pragma once
// The tensor-core kernels' block tile shapes and the per-problem choice
// among them, shared by the forward (conv_forward_cuda.cu) and grad_input
// (conv_grad_input_cuda.cu): one rule, so a small problem gets a small tile
// in both. The choice only sizes blocks: every output sums its k in the same
// order (ascending mma k steps) in every shape, so no result bit depends on
// it, and it may look at the SM count.

#include <cstdint>

#include "ops/cuda/axis.cuh"
#include "ops/cuda/mma_tile.cuh"

namespace convext {
namespace cuda {

// 3 stages each; 128x128 stages BK = 32 bytes of k (36 KB of shared memory),
// the others 64 bytes (30 or 45 KB), all under the 48 KB of static shared
// memory and at 16 warps per SM when at most 128 registers.
template <typename T>
using MmaTile128x128 = MmaPolicy<T, 128, 128, 2, 4, 3, 2>;
template <typename T>
using MmaTile128x64 = MmaPolicy<T, 128, 64, 2, 2>;
template <typename T>
using MmaTile64x128 = MmaPolicy<T, 64, 128, 2, 2>;
template <typename T>
using MmaTile64x64 = MmaPolicy<T, 64, 64, 2, 2>;

enum class MmaTile { k128x128, k128x64, k64x128, k64x64 };

// For `problems` independent GEMMs (groups, or phases x groups) of M x N:
// the largest tile whose grid still fills every SM once; a side of 128 only
// where the problem is wider than 64 on it.
inline MmaTile choose_mma_tile(int64_t problems, int64_t M, int64_t N, int64_t sms) {
  const auto fills = [&](int64_t bm, int64_t bn) {
    return problems * ceil_div(M, bm) * ceil_div(N, bn) >= sms;
  };
  if (M > 64 && N > 64 && fills(128, 128)) return MmaTile::k128x128;
  if (M >= N && M > 64 && fills(128, 64)) return MmaTile::k128x64;
  if (N > 64 && fills(64, 128)) return MmaTile::k64x128;
  return MmaTile::k64x64;
}

// f(policy{}) with the policy of `tile` for operand type T.
template <typename T, class F>
void with_mma_tile(MmaTile tile, F&& f) {
  switch (tile) {
    case MmaTile::k128x128: f(MmaTile128x128<T>{}); break;
    case MmaTile::k128x64: f(MmaTile128x64<T>{}); break;
    case MmaTile::k64x128: f(MmaTile64x128<T>{}); break;
    case MmaTile::k64x64: f(MmaTile64x64<T>{}); break;
  }
}

}  // namespace cuda
}  // namespace convext
