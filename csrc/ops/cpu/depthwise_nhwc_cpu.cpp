// Depthwise kernels for channels-last tensors (multiplier 1), vectorised
// over channels: every output pixel is a sum over taps of elementwise
// products of channel vectors (weights laid out [tap][channel]). Reading
// channels-last data plane by plane would touch one element per cache line.

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <cstring>
#include <type_traits>
#include <vector>

#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/depthwise_cpu.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {
namespace {

// Weights (C, 1, KH, KW) as [tap][C] in the op-math type.
template <typename S, typename T>
ScratchVector<T> taps_by_channel(const at::Tensor& weight, const ConvShape& s) {
  ScratchVector<T> wt(s.taps() * s.C);
  const S* w = weight.const_data_ptr<S>();
  const auto ws = weight.strides();
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t t = 0; t < s.taps(); ++t)
      wt[t * s.C + c] = static_cast<T>(w[c * ws[0] + (t / s.KW) * ws[2] + (t % s.KW) * ws[3]]);
  return wt;
}

// Converts `nc` channels of `width` pixels of one row into dst, one pixel
// every `dst_stride` elements.
template <typename S, typename T>
void load_row(const S* row, int64_t width, int64_t pixel_stride, int64_t nc, T* dst,
              int64_t dst_stride) {
  for (int64_t x = 0; x < width; ++x) {
    const S* p = row + x * pixel_stride;
    T* d = dst + x * dst_stride;
    if constexpr (std::is_same_v<S, T>) {
      std::memcpy(d, p, nc * sizeof(T));
    } else {
      for (int64_t c = 0; c < nc; ++c) d[c] = static_cast<T>(p[c]);
    }
  }
}

template <typename S, typename T>
void store_pixel(const T* src, int64_t nc, S* dst) {
  if constexpr (std::is_same_v<S, T>) {
    std::memcpy(dst, src, nc * sizeof(T));
  } else {
    for (int64_t c = 0; c < nc; ++c) dst[c] = static_cast<S>(src[c]);
  }
}

}  // namespace

template <typename S>
void depthwise_nhwc_forward(const at::Tensor& input, const at::Tensor& weight,
                            const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const RowKernels<T>& rk = row_kernels_for<T>();
  const int64_t C = s.C, PW = s.W + 2 * s.pw;
  const ScratchVector<T> wt = taps_by_channel<S, T>(weight, s);
  ScratchVector<T> b(C, T(0));
  if (bias) {
    const at::Tensor bc = bias->contiguous();
    for (int64_t c = 0; c < C; ++c) b[c] = static_cast<T>(bc.const_data_ptr<S>()[c]);
  }
  const S* in = input.const_data_ptr<S>();
  S* o = out.mutable_data_ptr<S>();
  const auto is = input.strides();
  const auto os = out.strides();
  at::parallel_for(0, s.N * s.OH, grain_size(s.N * s.OH, s), [&](int64_t begin, int64_t end) {
    // The KH input rows of an output row, zero-padded left and right.
    ScratchVector<T> rows(s.KH * PW * C, T(0)), acc(C);
    std::vector<const T*> src(s.taps()), w(s.taps());
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / s.OH, oh = task % s.OH;
      for (int64_t kh = 0; kh < s.KH; ++kh) {
        const int64_t ih = oh * s.sh + kh * s.dh - s.ph;
        if (ih >= 0 && ih < s.H)
          load_row(in + n * is[0] + ih * is[2], s.W, is[3], C, rows.data() + (kh * PW + s.pw) * C, C);
      }
      for (int64_t ow = 0; ow < s.OW; ++ow) {
        int64_t nt = 0;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          const int64_t ih = oh * s.sh + kh * s.dh - s.ph;
          if (ih < 0 || ih >= s.H) continue;  // a zero row adds nothing
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            src[nt] = rows.data() + (kh * PW + ow * s.sw + kw * s.dw) * C;
            w[nt++] = wt.data() + (kh * s.KW + kw) * C;
          }
        }
        rk.vtaps_row(acc.data(), C, src.data(), w.data(), nt, b.data());
        store_pixel(acc.data(), C, o + n * os[0] + oh * os[2] + ow * os[3]);
      }
    }
  });
}

template <typename S>
void depthwise_nhwc_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                               at::Tensor& grad_in, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const RowKernels<T>& rk = row_kernels_for<T>();
  const int64_t C = s.C;
  const ScratchVector<T> wt = taps_by_channel<S, T>(weight, s);
  const ScratchVector<T> zeros(C, T(0));
  const S* go = grad_out.const_data_ptr<S>();
  S* gi = grad_in.mutable_data_ptr<S>();
  const auto gs = grad_out.strides();
  const auto is = grad_in.strides();
  at::parallel_for(0, s.N * s.H, grain_size(s.N * s.H, s), [&](int64_t begin, int64_t end) {
    ScratchVector<T> rows(s.KH * s.OW * C), acc(C);
    std::vector<const T*> src(s.taps()), w(s.taps());
    std::vector<int64_t> oh_of(s.KH);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / s.H, ih = task % s.H;
      // grad_output row read through tap kh: oh = (ih + ph - kh*dh) / sh.
      for (int64_t kh = 0; kh < s.KH; ++kh) {
        const int64_t v = ih + s.ph - kh * s.dh;
        oh_of[kh] = (v >= 0 && v % s.sh == 0 && v / s.sh < s.OH) ? v / s.sh : -1;
        if (oh_of[kh] >= 0)
          load_row(go + n * gs[0] + oh_of[kh] * gs[2], s.OW, gs[3], C,
                   rows.data() + kh * s.OW * C, C);
      }
      for (int64_t iw = 0; iw < s.W; ++iw) {
        int64_t nt = 0;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          if (oh_of[kh] < 0) continue;
          for (int64_t kw = 0; kw < s.KW; ++kw) {
            const int64_t v = iw + s.pw - kw * s.dw;
            if (v < 0 || v % s.sw != 0 || v / s.sw >= s.OW) continue;
            src[nt] = rows.data() + (kh * s.OW + v / s.sw) * C;
            w[nt++] = wt.data() + (kh * s.KW + kw) * C;
          }
        }
        rk.vtaps_row(acc.data(), C, src.data(), w.data(), nt, zeros.data());
        store_pixel(acc.data(), C, gi + n * is[0] + ih * is[2] + iw * is[3]);
      }
    }
  });
}

template <typename S>
void depthwise_nhwc_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                                at::Tensor& grad_w, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const RowKernels<T>& rk = row_kernels_for<T>();
  constexpr int64_t kChunk = 32;  // channels per task
  const int64_t chunks = (s.C + kChunk - 1) / kChunk, PW = s.W + 2 * s.pw;
  const S* go = grad_out.const_data_ptr<S>();
  const S* in = input.const_data_ptr<S>();
  S* gw = grad_w.mutable_data_ptr<S>();
  const auto gs = grad_out.strides();
  const auto is = input.strides();
  const auto ws = grad_w.strides();
  // Each task owns a channel chunk and walks the batch in a fixed order, so
  // the sums do not depend on the thread count.
  at::parallel_for(0, chunks, grain_size(chunks, s), [&](int64_t begin, int64_t end) {
    // Pixels are kChunk apart whatever the chunk's width, so the zero padding
    // stays where it was put.
    ScratchVector<T> rows(s.KH * PW * kChunk, T(0)), g(s.OW * kChunk), acc(s.taps() * kChunk);
    std::vector<const T*> src(s.taps());
    std::vector<T*> dst(s.taps());
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t c0 = chunk * kChunk, nc = std::min(kChunk, s.C - c0);
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t n = 0; n < s.N; ++n) {
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          load_row(go + n * gs[0] + oh * gs[2] + c0, s.OW, gs[3], nc, g.data(), kChunk);
          for (int64_t kh = 0; kh < s.KH; ++kh) {
            const int64_t ih = oh * s.sh + kh * s.dh - s.ph;
            if (ih >= 0 && ih < s.H)
              load_row(in + n * is[0] + ih * is[2] + c0, s.W, is[3], nc,
                       rows.data() + (kh * PW + s.pw) * kChunk, kChunk);
          }
          for (int64_t ow = 0; ow < s.OW; ++ow) {
            int64_t nt = 0;
            for (int64_t kh = 0; kh < s.KH; ++kh) {
              const int64_t ih = oh * s.sh + kh * s.dh - s.ph;
              if (ih < 0 || ih >= s.H) continue;
              for (int64_t kw = 0; kw < s.KW; ++kw) {
                src[nt] = rows.data() + (kh * PW + ow * s.sw + kw * s.dw) * kChunk;
                dst[nt++] = acc.data() + (kh * s.KW + kw) * kChunk;
              }
            }
            rk.vtaps_acc(dst.data(), nc, g.data() + ow * kChunk, src.data(), nt);
          }
        }
      }
      for (int64_t c = 0; c < nc; ++c)
        for (int64_t t = 0; t < s.taps(); ++t)
          gw[(c0 + c) * ws[0] + (t / s.KW) * ws[2] + (t % s.KW) * ws[3]] =
              static_cast<S>(acc[t * kChunk + c]);
    }
  });
}

#define CONVEXT_INSTANTIATE(S)                                                               \
  template void depthwise_nhwc_forward<S>(const at::Tensor&, const at::Tensor&,             \
                                          const at::Tensor*, at::Tensor&, const ConvShape&); \
  template void depthwise_nhwc_grad_input<S>(const at::Tensor&, const at::Tensor&,          \
                                             at::Tensor&, const ConvShape&);                 \
  template void depthwise_nhwc_grad_weight<S>(const at::Tensor&, const at::Tensor&,         \
                                              at::Tensor&, const ConvShape&);
CONVEXT_CPU_TYPES(CONVEXT_INSTANTIATE)
#undef CONVEXT_INSTANTIATE

}  // namespace cpu
}  // namespace convext
