// Depthwise kernels. The forward, grad_input and (compile-time taps)
// grad_weight are tiled bandwidth kernels (depthwise_tile.cuh), any stride,
// dilation and channel multiplier. The rest (a halo too large for the
// shared tile, geometry past 32-bit tile math, runtime-tap grad_weight) take
// the per-element kernels here: each thread gives one element of the result and gathers over the
// taps (grad_input keeps only the taps whose stride phase matches, so no
// scatter and no atomics); neighbouring threads take neighbouring elements
// in the result's memory order (NCHW or NHWC).
// The weight gradient (tiled kernel, or else one block per (channel, tap)
// and slice of the positions) writes per-block partial sums that are added
// in a fixed order afterwards (split_reduce). The number of slices depends
// only on the problem's sizes, never on the GPU, so results are bitwise the
// same on every GPU model.

#include "ops/cuda/depthwise_cuda.cuh"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>

#include <type_traits>

#include "ops/cuda/block_reduce.cuh"
#include "ops/cuda/depthwise_tile.cuh"
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

// plan_tile for staging `src` (its layout picks the mapping; 16-byte loads
// where its strides and address allow) and results strided like `out`.
template <typename S>
bool plan_tile(const at::Tensor& src, const at::Tensor& out, DwTile& g, int64_t* blocks) {
  constexpr int V = 16 / sizeof(S);
  const Strides4 is = strides4(src);
  const bool cf = channels_fastest(src);
  const bool vec_ok = reinterpret_cast<uintptr_t>(src.const_data_ptr()) % 16 == 0 &&
                      is.n % V == 0 && is.h % V == 0 &&
                      (cf ? is.c == 1 && is.w % V == 0 : is.w == 1 && is.c % V == 0);
  g.is = is;
  g.os = strides4(out);
  return plan_tile(g, src.size(0), sizeof(S), cf, vec_ok, blocks);
}

// Plans g for src -> out and calls launch(KH, KW, blocks, g) with the
// compile-time tap shape (integral constants); false when the problem does
// not fit the tiled kernels.
template <typename S, class Launch>
bool tile_launch(const at::Tensor& src, const at::Tensor& out, DwTile g, Launch&& launch) {
  int64_t blocks = 0;
  if (!plan_tile<S>(src, out, g, &blocks)) return false;
  if (blocks > 0)
    with_taps(g.KH, g.KW,
              [&](auto kh, auto kw) { launch(kh, kw, static_cast<unsigned>(blocks), g); });
  return true;
}

// The shared geometry of a tiled launch (or false: past its 32-bit tile math).
bool tile_geometry(DwTile& g, const ConvShape& s) {
  if (!fits_tile_math({s.H, s.W, s.OH, s.OW, s.ph, s.pw, s.sh, s.sw, s.dh, s.dw, s.OC,
                       (s.KH - 1) * s.dh, (s.KW - 1) * s.dw, s.OH * s.sh, s.OW * s.sw,
                       s.H + s.ph, s.W + s.pw}))
    return false;
  g.C = static_cast<int>(s.C), g.mult = static_cast<int>(s.OC / s.C);
  g.KH = static_cast<int>(s.KH), g.KW = static_cast<int>(s.KW);
  g.dh = static_cast<int>(s.dh), g.dw = static_cast<int>(s.dw);
  return true;
}

// Geometry of the forward-direction tiles (forward, grad_weight): the input
// (H x W) staged, the output's positions tiled.
bool forward_geometry(DwTile& g, const ConvShape& s) {
  if (!tile_geometry(g, s)) return false;
  g.IH = static_cast<int>(s.H), g.IW = static_cast<int>(s.W);
  g.OH = static_cast<int>(s.OH), g.OW = static_cast<int>(s.OW);
  g.sh = static_cast<int>(s.sh), g.sw = static_cast<int>(s.sw);
  g.ph = static_cast<int>(s.ph), g.pw = static_cast<int>(s.pw);
  g.hh = (g.KH - 1) * g.dh, g.hw = (g.KW - 1) * g.dw;
  return true;
}

// Geometry of grad_input's tiles: grad_out (OH x OW) staged; the tiles cover
// the stride lattice of grad_in: lattice row a holds grad_in rows
// (a0 + a) * sh - ph + ry, ry < sh, a0 = ph / sh (the first with a row >= 0),
// and takes grad_out rows a0 + a - (kh * dh - ry) / sh for the taps with
// kh * dh >= ry and a multiple of sh apart: at most (KH - 1) * dh / sh rows
// above it (the staged halo). Columns alike.
bool grad_input_geometry(DwTile& g, const ConvShape& s) {
  if (!tile_geometry(g, s) || s.H == 0 || s.W == 0) return false;
  const int64_t ay0 = s.ph / s.sh, ax0 = s.pw / s.sw;
  g.IH = static_cast<int>(s.OH), g.IW = static_cast<int>(s.OW);
  g.OH = static_cast<int>((s.H - 1 + s.ph) / s.sh - ay0 + 1);
  g.OW = static_cast<int>((s.W - 1 + s.pw) / s.sw - ax0 + 1);
  g.hh = static_cast<int>((s.KH - 1) * s.dh / s.sh);
  g.hw = static_cast<int>((s.KW - 1) * s.dw / s.sw);
  g.sh = g.sw = 1;  // lattice points step one grad_out row / col
  g.ph = static_cast<int>(g.hh - ay0), g.pw = static_cast<int>(g.hw - ax0);
  g.sc = g.mult;  // the mult grad_out channels of an input channel
  g.ush = static_cast<int>(s.sh), g.usw = static_cast<int>(s.sw);
  g.uy0 = static_cast<int>(ay0 * s.sh - s.ph), g.ux0 = static_cast<int>(ax0 * s.sw - s.pw);
  g.UH = static_cast<int>(s.H), g.UW = static_cast<int>(s.W);
  return true;
}

template <typename S>
void forward_impl(const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  DwTile g;
  if (forward_geometry(g, s) &&
      tile_launch<S>(input, out, g, [&](auto kh, auto kw, unsigned blocks, const DwTile& g) {
        launch<dw_tile_kernel<S, decltype(kh)::value, decltype(kw)::value>>(
            blocks, kThreads, read_ptr<S>(input), read_ptr<S>(weight), strides4(weight),
            bias ? read_ptr<S>(*bias) : nullptr, bias ? bias->stride(0) : 0, write_ptr<S>(out),
            g);
      }))
    return;
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
  DwTile g;
  if (grad_input_geometry(g, s) &&
      tile_launch<S>(grad_out, grad_in, g, [&](auto kh, auto kw, unsigned blocks,
                                               const DwTile& g) {
        launch<dw_tile_grad_input_kernel<S, decltype(kh)::value, decltype(kw)::value>>(
            blocks, kThreads, read_ptr<S>(grad_out), read_ptr<S>(weight), strides4(weight),
            write_ptr<S>(grad_in), g);
      }))
    return;
  const int64_t total = grad_in.numel();
  with_index_type(total, [&](auto index) {
    using I = decltype(index);
    launch<dw_grad_input_kernel<S, I>>(
        loop_blocks(total), kThreads, read_ptr<S>(grad_out), strides4(grad_out),
        read_ptr<S>(weight), strides4(weight), write_ptr<S>(grad_in), strides4(grad_in), s,
        channels_fastest(grad_in));
  });
}

constexpr int64_t kGradWeightBlocks = 1024;

// grad_weight by tiles (compile-time taps): about kGradWeightBlocks blocks,
// each walking a fixed set of tiles for one multiplier output; false when
// the problem does not fit.
template <typename S>
bool grad_weight_tiled(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                       const ConvShape& s, const ReduceTarget<S>& target) {
  using T = at::opmath_type<S>;
  DwTile g;
  int64_t blocks = 0;
  if (!forward_geometry(g, s) || !plan_tile<S>(input, grad_out, g, &blocks))
    return false;
  bool done = false;
  with_taps(s.KH, s.KW, [&](auto kh, auto kw) {
    constexpr int KH = decltype(kh)::value, KW = decltype(kw)::value;
    if constexpr (KH > 0) {
      const int64_t tiles = blocks / g.chunks;  // N x tiles_y x tiles_x
      const int64_t splits =
          std::clamp<int64_t>(ceil_div<int64_t>(kGradWeightBlocks, g.chunks * g.mult), 1,
                              std::max<int64_t>(tiles, 1));
      if (splits * g.chunks * g.mult > INT32_MAX) return;
      at::Tensor part = scratch<T>(grad_w, splits * s.OC * s.taps());
      launch<dw_tile_grad_weight_kernel<S, KH, KW>>(
          static_cast<unsigned>(splits * g.chunks * g.mult), kThreads, read_ptr<S>(input),
          read_ptr<S>(grad_out), write_ptr<T>(part), g, static_cast<int>(s.N),
          static_cast<int>(splits));
      split_reduce<S, T>(read_ptr<T>(part), splits, s.OC, s.taps(), target);
      done = true;
    }
  });
  return done;
}

template <typename S>
void grad_weight_impl(const at::Tensor& grad_out, const at::Tensor& input,
                           at::Tensor& grad_w, const ConvShape& s) {
  using T = at::opmath_type<S>;
  ReduceTarget<S> target;
  target.ptr = write_ptr<S>(grad_w);
  target.row_stride = grad_w.stride(0);
  target.cols = grid_axis(0, s.KH, s.KW, 1, 1, grad_w.stride(2), grad_w.stride(3));
  if (grad_weight_tiled<S>(grad_out, input, grad_w, s, target)) return;
  const int64_t R = s.N * s.OH * s.OW, rows = s.OC, taps = s.taps();
  // About kGradWeightBlocks blocks (8 per SM of a 132-SM GPU), but at least
  // 16 positions per thread: a function of the sizes only, never of the GPU
  // (sm_count), so the sums' order and so the result are the same on any GPU.
  const int64_t want = ceil_div<int64_t>(kGradWeightBlocks, rows * taps);
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
