#pragma once
// Launch shapes for the element-wise and per-channel kernels (depthwise,
// bias gradient): grid-stride loops, 32-bit index math when it fits.

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <climits>
#include <cstdint>

#include "ops/cuda/cuda_utils.cuh"

namespace convext {
namespace cuda {

constexpr int kThreads = 256;

// Blocks for a grid-stride loop over n elements.
inline unsigned loop_blocks(int64_t n) {
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>(ceil_div<int64_t>(n, kThreads), 16 * sm_count())));
}

// Calls f(int32_t{}) when indices up to n (plus one grid stride) fit in 32
// bits (n < INT_MAX / 2, see runtime.cuh), else f(int64_t{}); divisions by
// 32-bit values are several times cheaper. Only indices use this type:
// memory offsets are always 64-bit.
template <class F>
void with_index_type(int64_t n, F&& f) {
  if (n < int32_index_limit()) {
    f(int32_t{});
  } else {
    f(int64_t{});
  }
}

// Whether a 4D tensor is laid out channels-last, so that element-wise kernels
// walk it with the channel fastest.
inline bool channels_fastest(const at::Tensor& t) {
  return t.stride(1) == 1 && t.size(1) > 1 && !t.is_contiguous();
}

// Position of linear index e in a (N, C, H, W) tensor walked in NCHW or,
// with channels_last, NHWC order.
template <typename I>
struct Coord4 {
  I n, c, y, x;
};

template <typename I>
__device__ inline Coord4<I> unravel(I e, I C, I H, I W, bool channels_last) {
  Coord4<I> p;
  if (channels_last) {
    p.c = e % C; e /= C;
    p.x = e % W; e /= W;
    p.y = e % H; p.n = e / H;
  } else {
    p.x = e % W; e /= W;
    p.y = e % H; e /= H;
    p.c = e % C; p.n = e / C;
  }
  return p;
}

}  // namespace cuda
}  // namespace convext
