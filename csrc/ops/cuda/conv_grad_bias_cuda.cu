// Gradient w.r.t. the bias on CUDA: grad_output summed over every dim but 1,
// in the op-math type. Block (split, c) sums one slice of channel c with a
// fixed-order block reduction; the slices are added in split order, so the
// result is the same bit for bit on every run, and (the split count coming
// from the sizes alone) on every GPU model. With channels innermost
// (channels_last) a warp instead reads 32 consecutive channels of a pixel,
// one coalesced load, where one channel per block would touch a sector per
// value: block (split, channel tile) sums kRows pixel rows per step and adds
// the rows in a fixed order (the CPU kernel cuts its pixel blocks the same way).

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include "ops/cuda/block_reduce.cuh"
#include "ops/cuda/conv_kernels_cuda.h"
#include "ops/cuda/device.cuh"
#include "ops/cuda/launch_utils.cuh"
#include "ops/cuda/split_reduce.cuh"

namespace convext {
namespace cuda {
namespace {

// grad_output as (N, C, P), P spanning the trailing dims.
struct BiasView {
  int64_t N, C, P, sn, sc, sp;
};

template <typename S, typename I>
__global__ void __launch_bounds__(kThreads)
    bias_partial_kernel(const S* __restrict__ go, BiasView v, int64_t chunk,
                        at::opmath_type<S>* __restrict__ part) {
  using T = at::opmath_type<S>;
  const int64_t c = blockIdx.x % v.C, split = blockIdx.x / v.C;
  const I P = static_cast<I>(v.P);
  const I r_end = static_cast<I>(std::min(v.N * v.P, (split + 1) * chunk));
  const S* g = go + c * v.sc;
  T acc = T(0);
  for (I r = static_cast<I>(split * chunk) + threadIdx.x; r < r_end; r += kThreads) {
    const I n = r / P, p = r - n * P;
    acc += static_cast<T>(gload(g, n * v.sn + p * v.sp));
  }
  acc = block_sum<kThreads>(acc);
  if (threadIdx.x == 0) gstore(part, split * v.C + c, acc);
}

constexpr int kTileC = 32, kRows = kThreads / kTileC;

template <typename S, typename I>
__global__ void __launch_bounds__(kThreads)
    bias_runs_kernel(const S* __restrict__ go, BiasView v, int64_t chunk,
                     at::opmath_type<S>* __restrict__ part) {
  using T = at::opmath_type<S>;
  const int64_t tiles = ceil_div<int64_t>(v.C, kTileC);
  const int64_t split = blockIdx.x / tiles;
  const int lane = threadIdx.x % kTileC, row = threadIdx.x / kTileC;
  const int64_t c = (blockIdx.x % tiles) * kTileC + lane;
  const I P = static_cast<I>(v.P);
  const I r_end = static_cast<I>(std::min(v.N * v.P, (split + 1) * chunk));
  T acc = T(0);
  if (c < v.C) {
    for (I r = static_cast<I>(split * chunk) + row; r < r_end; r += kRows) {
      const I n = r / P, p = r - n * P;
      acc += static_cast<T>(gload(go, n * v.sn + p * v.sp + c));
    }
  }
  CONVEXT_SHARED(T, rows, kThreads);
  rows[threadIdx.x] = acc;
  __syncthreads();
  if (row == 0 && c < v.C) {
    T sum = T(0);
    for (int k = 0; k < kRows; ++k) sum += rows[k * kTileC + lane];
    gstore(part, split * v.C + c, sum);
  }
}

template <typename S>
void grad_bias_impl(const at::Tensor& grad_out, at::Tensor& grad_b) {
  using T = at::opmath_type<S>;
  const at::Tensor go = grad_out.dim() == 2 ? grad_out.unsqueeze(2) : grad_out.flatten(2);
  const BiasView v{go.size(0), go.size(1), go.size(2), go.stride(0), go.stride(1), go.stride(2)};
  const int64_t R = v.N * v.P;
  const bool runs = v.C > 1 && v.sc == 1;  // channels innermost
  const int64_t blocks_per_split = runs ? ceil_div<int64_t>(v.C, kTileC) : v.C;
  const int64_t want = ceil_div<int64_t>(4 * kReferenceSMs, blocks_per_split);
  const int64_t most = std::max<int64_t>(1, R / (16 * (runs ? kRows : kThreads)));
  const int64_t splits = std::max<int64_t>(1, std::min(want, most));
  const int64_t chunk = std::max<int64_t>(1, ceil_div(R, splits));
  at::Tensor part = scratch<T>(grad_b, splits * v.C);
  with_index_type(R, [&](auto index) {
    using I = decltype(index);
    const unsigned grid = static_cast<unsigned>(splits * blocks_per_split);
    if (runs)
      launch<bias_runs_kernel<S, I>>(grid, kThreads, read_ptr<S>(go), v, chunk, write_ptr<T>(part));
    else
      launch<bias_partial_kernel<S, I>>(grid, kThreads, read_ptr<S>(go), v, chunk,
                                        write_ptr<T>(part));
  });
  ReduceTarget<S> target;
  target.ptr = write_ptr<S>(grad_b);
  target.row_stride = grad_b.stride(0);
  split_reduce<S, T>(read_ptr<T>(part), splits, v.C, 1, target);
}

}  // namespace

void CudaKernels::grad_bias(const at::Tensor& grad_out, at::Tensor& grad_b) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_conv_grad_bias_cuda",
                                  [&] { grad_bias_impl<scalar_t>(grad_out, grad_b); });
}

}  // namespace cuda
}  // namespace convext
