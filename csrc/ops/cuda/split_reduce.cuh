#pragma once
// Adds partial sums over splits in a fixed order and writes the result, cast
// to the tensor's type, into a strided output: the last step of every
// reduction that is split across blocks (weight/bias gradients, split-K
// forward). No atomics, so results are bitwise reproducible.
//
//   out[off + row * row_stride + cols(col)] =
//       bias[row] + sum_s part[(s * rows + row) * ncols + col]

#include <ATen/OpMathType.h>

#include <algorithm>

#include "ops/cuda/axis.cuh"
#include "ops/cuda/cuda_utils.cuh"
#include "ops/cuda/device.cuh"

namespace convext {
namespace cuda {

template <typename S>
struct ReduceTarget {
  S* ptr = nullptr;
  int64_t row_stride = 0;
  Axis cols;
  const S* bias = nullptr;
  int64_t bias_stride = 0;
};

template <typename S, typename T>
__global__ void split_reduce_kernel(const T* __restrict__ part, int64_t splits, int64_t rows,
                                    int64_t ncols, ReduceTarget<S> out) {
  const int64_t total = rows * ncols;
  for (int64_t e = blockIdx.x * int64_t{blockDim.x} + threadIdx.x; e < total;
       e += int64_t{gridDim.x} * blockDim.x) {
    const int64_t row = e / ncols, col = e - row * ncols;
    T sum = out.bias ? static_cast<T>(gload(out.bias, row * out.bias_stride)) : T(0);
    for (int64_t s = 0; s < splits; ++s) sum += gload(part, s * total + e);
    gstore(out.ptr, row * out.row_stride + offset_of(out.cols, decode(out.cols, col)),
           static_cast<S>(sum));
  }
}

template <typename S, typename T>
void split_reduce(const T* part, int64_t splits, int64_t rows, int64_t ncols,
                  const ReduceTarget<S>& out) {
  const int64_t total = rows * ncols;
  if (total == 0) return;
  constexpr int threads = 256;
  const int64_t blocks = std::min<int64_t>(ceil_div<int64_t>(total, threads), 32 * sm_count());
  launch<split_reduce_kernel<S, T>>(static_cast<unsigned>(blocks), threads, part, splits, rows,
                                    ncols, out);
}

}  // namespace cuda
}  // namespace convext
