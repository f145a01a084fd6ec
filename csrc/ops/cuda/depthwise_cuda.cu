// Depthwise kernels. Forward and grad_input give each thread one element of
// their result and gather over the taps (grad_input keeps only the taps whose
// stride phase matches, so no scatter and no atomics); neighbouring threads
// take neighbouring elements in the result's memory order (NCHW or NHWC).
// The weight gradient gives each block one (channel, tap) and a slice of the
// positions; the slices' sums are added in a fixed order afterwards.

#include "ops/cuda/depthwise_cuda.cuh"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <type_traits>

#include "ops/cuda/block_reduce.cuh"
#include "ops/cuda/device.cuh"
#include "ops/cuda/launch_utils.cuh"
#include "ops/cuda/split_reduce.cuh"

namespace convext {
namespace cuda {
namespace {

// The kernels take the conv problem itself (its methods are host-only, so
// they read its fields; the channel multiplier is OC / C).
static_assert(std::is_trivially_copyable_v<ConvShape>, "ConvShape is a kernel argument");

template <typename S, typename I>
__global__ void __launch_bounds__(kThreads)
    dw_forward_kernel(const S* __restrict__ in, Strides4 is, const S* __restrict__ w,
                      Strides4 ws, const S* __restrict__ bias, int64_t bs, S* __restrict__ out,
                      Strides4 os, ConvShape s, bool channels_last) {
  using T = at::opmath_type<S>;
  const int64_t mult = s.OC / s.C;
  const I total = static_cast<I>(s.N * s.OC * s.OH * s.OW);
  for (I e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const Coord4<I> o = unravel<I>(e, s.OC, s.OH, s.OW, channels_last);
    const int64_t src = o.n * is.n + (o.c / mult) * is.c, wk = o.c * ws.n;
    const int64_t y0 = o.y * s.sh - s.ph, x0 = o.x * s.sw - s.pw;
    T acc = bias ? static_cast<T>(gload(bias, o.c * bs)) : T(0);
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      const int64_t y = y0 + kh * s.dh;
      if (y < 0 || y >= s.H) continue;
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t x = x0 + kw * s.dw;
        if (x < 0 || x >= s.W) continue;
        acc += static_cast<T>(gload(w, wk + kh * ws.h + kw * ws.w)) *
               static_cast<T>(gload(in, src + y * is.h + x * is.w));
      }
    }
    gstore(out, o.n * os.n + o.c * os.c + o.y * os.h + o.x * os.w, static_cast<S>(acc));
  }
}

// grad_in[n][c][y][x] = sum over m, taps with y = oy*sh - ph + kh*dh (same for x)
// of w[c*mult + m][kh][kw] * go[n][c*mult + m][oy][ox].
template <typename S, typename I>
__global__ void __launch_bounds__(kThreads)
    dw_grad_input_kernel(const S* __restrict__ go, Strides4 gs, const S* __restrict__ w,
                         Strides4 ws, S* __restrict__ gi, Strides4 is, ConvShape s,
                         bool channels_last) {
  using T = at::opmath_type<S>;
  const int64_t mult = s.OC / s.C;
  const I total = static_cast<I>(s.N * s.C * s.H * s.W);
  for (I e = blockIdx.x * blockDim.x + threadIdx.x; e < total; e += gridDim.x * blockDim.x) {
    const Coord4<I> p = unravel<I>(e, s.C, s.H, s.W, channels_last);
    T acc = T(0);
    for (int64_t m = 0; m < mult; ++m) {
      const int64_t oc = p.c * mult + m;
      const int64_t g = p.n * gs.n + oc * gs.c, wk = oc * ws.n;
      for (int64_t kh = 0; kh < s.KH; ++kh) {
        const int64_t vy = p.y + s.ph - kh * s.dh;
        if (vy < 0) break;  // and for every larger kh
        if (vy % s.sh != 0 || vy / s.sh >= s.OH) continue;
        const int64_t oy = vy / s.sh;
        for (int64_t kw = 0; kw < s.KW; ++kw) {
          const int64_t vx = p.x + s.pw - kw * s.dw;
          if (vx < 0) break;
          if (vx % s.sw != 0 || vx / s.sw >= s.OW) continue;
          acc += static_cast<T>(gload(w, wk + kh * ws.h + kw * ws.w)) *
                 static_cast<T>(gload(go, g + oy * gs.h + (vx / s.sw) * gs.w));
        }
      }
    }
    gstore(gi, p.n * is.n + p.c * is.c + p.y * is.h + p.x * is.w, static_cast<S>(acc));
  }
}

// Block (split, oc, tap): the sum over positions [r0, r0 + chunk) of
// go[n][oc][oy][ox] * in[n][oc / mult][oy*sh - ph + kh*dh][ox*sw - pw + kw*dw].
template <typename S, typename I>
__global__ void __launch_bounds__(kThreads)
    dw_grad_weight_kernel(const S* __restrict__ go, Strides4 gs, const S* __restrict__ in,
                          Strides4 is, at::opmath_type<S>* __restrict__ part, ConvShape s,
                          int64_t chunk) {
  using T = at::opmath_type<S>;
  const int64_t mult = s.OC / s.C, taps = s.KH * s.KW;
  int64_t blk = blockIdx.x;
  const int64_t tap = blk % taps;
  blk /= taps;
  const int64_t oc = blk % s.OC, split = blk / s.OC;
  const int64_t kh = tap / s.KW, kw = tap % s.KW;
  const int64_t g = oc * gs.c, src = (oc / mult) * is.c;
  const I OH = static_cast<I>(s.OH), OW = static_cast<I>(s.OW);
  const I r_end = static_cast<I>(std::min(s.N * s.OH * s.OW, (split + 1) * chunk));
  T acc = T(0);
  for (I r = static_cast<I>(split * chunk) + threadIdx.x; r < r_end; r += kThreads) {
    const I ox = r % OW, t = r / OW;
    const I oy = t % OH, n = t / OH;
    const int64_t y = oy * s.sh - s.ph + kh * s.dh, x = ox * s.sw - s.pw + kw * s.dw;
    if (y < 0 || y >= s.H || x < 0 || x >= s.W) continue;
    acc += static_cast<T>(gload(go, g + n * gs.n + oy * gs.h + ox * gs.w)) *
           static_cast<T>(gload(in, src + n * is.n + y * is.h + x * is.w));
  }
  acc = block_sum<kThreads>(acc);
  if (threadIdx.x == 0) gstore(part, (split * s.OC + oc) * taps + tap, acc);
}

template <typename S>
void forward_impl(const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  const int64_t total = out.numel();
  with_index_type(total, [&](auto index) {
    using I = decltype(index);
    launch<dw_forward_kernel<S, I>>(
        loop_blocks(total), kThreads, read_ptr<S>(input), strides4(input), read_ptr<S>(weight),
        strides4(weight), bias ? read_ptr<S>(*bias) : nullptr, bias ? bias->stride(0) : 0,
        write_ptr<S>(out), strides4(out), s, channels_fastest(out));
  });
}

template <typename S>
void grad_input_impl(const at::Tensor& grad_out, const at::Tensor& weight,
                          at::Tensor& grad_in, const ConvShape& s) {
  const int64_t total = grad_in.numel();
  with_index_type(total, [&](auto index) {
    using I = decltype(index);
    launch<dw_grad_input_kernel<S, I>>(
        loop_blocks(total), kThreads, read_ptr<S>(grad_out), strides4(grad_out),
        read_ptr<S>(weight), strides4(weight), write_ptr<S>(grad_in), strides4(grad_in), s,
        channels_fastest(grad_in));
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
    launch<dw_grad_weight_kernel<S, I>>(
        static_cast<unsigned>(splits * rows * taps), kThreads, read_ptr<S>(grad_out),
        strides4(grad_out), read_ptr<S>(input), strides4(input), write_ptr<T>(part), s, chunk);
  });
  ReduceTarget<S> target;
  target.ptr = write_ptr<S>(grad_w);
  target.row_stride = grad_w.stride(0);
  target.cols = grid_axis(0, s.KH, s.KW, 1, 1, grad_w.stride(2), grad_w.stride(3));
  split_reduce<S, T>(read_ptr<T>(part), splits, rows, taps, target);
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
