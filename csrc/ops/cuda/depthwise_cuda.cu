// Depthwise kernels. Forward and grad_input give each thread one element of
// their result and gather over the taps (grad_input keeps only the taps whose
// stride phase matches, so no scatter and no atomics); neighbouring threads
// take neighbouring elements in the result's memory order (NCHW or NHWC).
// The weight gradient gives each block one (channel, tap) and a slice of the
// positions; the slices' sums are added in a fixed order afterwards.

#include "ops/cuda/depthwise_cuda.cuh"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include "ops/cuda/block_reduce.cuh"
#include "ops/cuda/launch_utils.cuh"
#include "ops/cuda/split_reduce.cuh"

namespace convext {
namespace cuda {
namespace {

// The conv's scalars as the kernels need them (ConvShape's methods are host-only).
struct DwShape {
  int64_t N, C, H, W, OC, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, mult;
};

DwShape dw_shape(const ConvShape& s) {
  return {s.N, s.C, s.H, s.W, s.OC, s.OH, s.OW, s.KH, s.KW,
          s.sh, s.sw, s.ph, s.pw, s.dh, s.dw, s.ocg()};
}

template <typename S, typename I>
__global__ void __launch_bounds__(kThreads)
    dw_forward_kernel(const S* __restrict__ in, Strides4 is, const S* __restrict__ w,
                      Strides4 ws, const S* __restrict__ bias, int64_t bs, S* __restrict__ out,
                      Strides4 os, DwShape s, bool channels_last) {
  using T = at::opmath_type<S>;
  const I total = static_cast<I>(s.N * s.OC * s.OH * s.OW);
  for (I e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const Coord4<I> o = unravel<I>(e, s.OC, s.OH, s.OW, channels_last);
    const S* src = in + o.n * is.n + (o.c / s.mult) * is.c;
    const S* wk = w + o.c * ws.n;
    const int64_t y0 = o.y * s.sh - s.ph, x0 = o.x * s.sw - s.pw;
    T acc = bias ? static_cast<T>(bias[o.c * bs]) : T(0);
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      const int64_t y = y0 + kh * s.dh;
      if (y < 0 || y >= s.H) continue;
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t x = x0 + kw * s.dw;
        if (x < 0 || x >= s.W) continue;
        acc += static_cast<T>(wk[kh * ws.h + kw * ws.w]) * static_cast<T>(src[y * is.h + x * is.w]);
      }
    }
    out[o.n * os.n + o.c * os.c + o.y * os.h + o.x * os.w] = static_cast<S>(acc);
  }
}

// grad_in[n][c][y][x] = sum over m, taps with y = oy*sh - ph + kh*dh (same for x)
// of w[c*mult + m][kh][kw] * go[n][c*mult + m][oy][ox].
template <typename S, typename I>
__global__ void __launch_bounds__(kThreads)
    dw_grad_input_kernel(const S* __restrict__ go, Strides4 gs, const S* __restrict__ w,
                         Strides4 ws, S* __restrict__ gi, Strides4 is, DwShape s,
                         bool channels_last) {
  using T = at::opmath_type<S>;
  const I total = static_cast<I>(s.N * s.C * s.H * s.W);
  for (I e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const Coord4<I> p = unravel<I>(e, s.C, s.H, s.W, channels_last);
    T acc = T(0);
    for (int64_t m = 0; m < s.mult; ++m) {
      const int64_t oc = p.c * s.mult + m;
      const S* g = go + p.n * gs.n + oc * gs.c;
      const S* wk = w + oc * ws.n;
      for (int64_t kh = 0; kh < s.KH; ++kh) {
        const int64_t vy = p.y + s.ph - kh * s.dh;
        if (vy < 0) break;  // and for every larger kh
        if (vy % s.sh != 0 || vy / s.sh >= s.OH) continue;
        const int64_t oy = vy / s.sh;
        for (int64_t kw = 0; kw < s.KW; ++kw) {
          const int64_t vx = p.x + s.pw - kw * s.dw;
          if (vx < 0) break;
          if (vx % s.sw != 0 || vx / s.sw >= s.OW) continue;
          acc += static_cast<T>(wk[kh * ws.h + kw * ws.w]) *
                 static_cast<T>(g[oy * gs.h + (vx / s.sw) * gs.w]);
        }
      }
    }
    gi[p.n * is.n + p.c * is.c + p.y * is.h + p.x * is.w] = static_cast<S>(acc);
  }
}

// Block (split, oc, tap): the sum over positions [r0, r0 + chunk) of
// go[n][oc][oy][ox] * in[n][oc / mult][oy*sh - ph + kh*dh][ox*sw - pw + kw*dw].
template <typename S, typename I>
__global__ void __launch_bounds__(kThreads)
    dw_grad_weight_kernel(const S* __restrict__ go, Strides4 gs, const S* __restrict__ in,
                          Strides4 is, at::opmath_type<S>* __restrict__ part, DwShape s,
                          int64_t chunk) {
  using T = at::opmath_type<S>;
  const int64_t taps = s.KH * s.KW;
  int64_t blk = blockIdx.x;
  const int64_t tap = blk % taps;
  blk /= taps;
  const int64_t oc = blk % s.OC, split = blk / s.OC;
  const int64_t kh = tap / s.KW, kw = tap % s.KW;
  const S* g = go + oc * gs.c;
  const S* src = in + (oc / s.mult) * is.c;
  const I OH = static_cast<I>(s.OH), OW = static_cast<I>(s.OW);
  const I r_end = static_cast<I>(std::min(s.N * s.OH * s.OW, (split + 1) * chunk));
  T acc = T(0);
  for (I r = static_cast<I>(split * chunk) + threadIdx.x; r < r_end; r += kThreads) {
    const I ox = r % OW, t = r / OW;
    const I oy = t % OH, n = t / OH;
    const int64_t y = oy * s.sh - s.ph + kh * s.dh, x = ox * s.sw - s.pw + kw * s.dw;
    if (y < 0 || y >= s.H || x < 0 || x >= s.W) continue;
    acc += static_cast<T>(g[n * gs.n + oy * gs.h + ox * gs.w]) *
           static_cast<T>(src[n * is.n + y * is.h + x * is.w]);
  }
  acc = block_sum<kThreads>(acc);
  if (threadIdx.x == 0) part[(split * s.OC + oc) * taps + tap] = acc;
}

template <typename S>
void forward_impl(const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  const int64_t total = out.numel();
  with_index_type(total, [&](auto index) {
    using I = decltype(index);
    dw_forward_kernel<S, I><<<loop_blocks(total), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        input.const_data_ptr<S>(), strides4(input), weight.const_data_ptr<S>(), strides4(weight),
        bias ? bias->const_data_ptr<S>() : nullptr, bias ? bias->stride(0) : 0,
        out.mutable_data_ptr<S>(), strides4(out), dw_shape(s), channels_fastest(out));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

template <typename S>
void grad_input_impl(const at::Tensor& grad_out, const at::Tensor& weight,
                          at::Tensor& grad_in, const ConvShape& s) {
  const int64_t total = grad_in.numel();
  with_index_type(total, [&](auto index) {
    using I = decltype(index);
    dw_grad_input_kernel<S, I>
        <<<loop_blocks(total), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
            grad_out.const_data_ptr<S>(), strides4(grad_out), weight.const_data_ptr<S>(),
            strides4(weight), grad_in.mutable_data_ptr<S>(), strides4(grad_in), dw_shape(s),
            channels_fastest(grad_in));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

template <typename S>
void grad_weight_impl(const at::Tensor& grad_out, const at::Tensor& input,
                           at::Tensor& grad_w, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const int64_t R = s.N * s.OH * s.OW, rows = s.OC, taps = s.taps();
  // Enough blocks for ~4 per SM, but at least 16 positions per thread.
  const int64_t want = ceil_div<int64_t>(4 * sm_count(), rows * taps);
  const int64_t most = std::max<int64_t>(1, R / (16 * kThreads));
  const int64_t splits = std::max<int64_t>(1, std::min(want, most));
  const int64_t chunk = std::max<int64_t>(1, ceil_div(R, splits));
  at::Tensor part = scratch<T>(grad_w, splits * rows * taps);
  with_index_type(R, [&](auto index) {
    using I = decltype(index);
    dw_grad_weight_kernel<S, I><<<static_cast<unsigned>(splits * rows * taps), kThreads, 0,
                                  c10::cuda::getCurrentCUDAStream()>>>(
        grad_out.const_data_ptr<S>(), strides4(grad_out), input.const_data_ptr<S>(),
        strides4(input), part.mutable_data_ptr<T>(), dw_shape(s), chunk);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  ReduceTarget<S> target;
  target.ptr = grad_w.mutable_data_ptr<S>();
  target.row_stride = grad_w.stride(0);
  target.cols = grid_axis(0, s.KH, s.KW, 1, 1, grad_w.stride(2), grad_w.stride(3));
  split_reduce<S, T>(part.const_data_ptr<T>(), splits, rows, taps, target);
}

}  // namespace

void depthwise_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                       at::Tensor& out, const ConvShape& s) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(),
                                  "convext_depthwise_forward_cuda",
                                  [&] { forward_impl<scalar_t>(input, weight, bias, out, s); });
}

void depthwise_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                          at::Tensor& grad_in, const ConvShape& s) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_depthwise_grad_input_cuda",
                                  [&] { grad_input_impl<scalar_t>(grad_out, weight, grad_in, s); });
}

void depthwise_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                           at::Tensor& grad_w, const ConvShape& s) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_depthwise_grad_weight_cuda",
                                  [&] { grad_weight_impl<scalar_t>(grad_out, input, grad_w, s); });
}

}  // namespace cuda
}  // namespace convext
