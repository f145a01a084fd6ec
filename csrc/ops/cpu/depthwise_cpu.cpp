// Depthwise kernels (one input channel per group, any channel multiplier).
//
// Each task copies one channel plane into a zero-padded op-math buffer laid
// out so that every tap of an output row is a unit-stride run of it: for a
// stride s the padded row is split into s phase rows, P_r[x] = P[s*x + r].
// The inner loops are then the vectorised row microkernels taps_row (sum of
// taps) and taps_dot (per-tap dot products), with no bounds checks.

#include "ops/cpu/depthwise_cpu.h"

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/conv_taps.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {
namespace {

// A zero-padded channel plane of the input, phase-split by the conv's
// width stride, giving the source run of each tap for an output row.
template <typename T>
struct InputPlane {
  const ConvShape& s;
  int64_t PH, PW, sub;  // padded size, length of a phase row
  ScratchVector<T> data;
  std::vector<int64_t> tap_off;  // tap's run, relative to its output row's start

  explicit InputPlane(const ConvShape& shape)
      : s(shape), PH(shape.H + 2 * shape.ph), PW(shape.W + 2 * shape.pw),
        sub(ceil_div(PW, shape.sw)),
        data(PH * shape.sw * sub + kRowSlack, T(0)), tap_off(shape.taps()) {
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t off = kw * s.dw;
        tap_off[kh * s.KW + kw] = kh * s.dh * s.sw * sub + (off % s.sw) * sub + off / s.sw;
      }
    }
  }

  // Copies a channel plane in; the padding stays zero from construction.
  template <typename S>
  void load(const S* src, int64_t sh, int64_t sw) {
    for (int64_t y = 0; y < s.H; ++y) {
      const S* row = src + y * sh;
      T* dst = data.data() + (y + s.ph) * s.sw * sub;
      if (s.sw == 1 && sw == 1) {  // the common case, vectorised
        for (int64_t x = 0; x < s.W; ++x) dst[s.pw + x] = static_cast<T>(row[x]);
        continue;
      }
      for (int64_t r = 0; r < s.sw; ++r) {
        // phase row r holds padded columns r, r + sw, ...: input x = px - pw
        const int64_t first = (std::max<int64_t>(s.pw - r, 0) + s.sw - 1) / s.sw;
        T* d = dst + r * sub;
        const S* in = row + (first * s.sw + r - s.pw) * sw;
        for (int64_t j = first; j * s.sw + r - s.pw < s.W; ++j, in += s.sw * sw)
          d[j] = static_cast<T>(*in);
      }
    }
  }

  // ptrs[t][ow] = padded input at (oh*sh + kh*dh, ow*sw + kw*dw).
  void taps(int64_t oh, const T** ptrs) const {
    const T* row = data.data() + oh * s.sh * s.sw * sub;
    for (size_t t = 0; t < tap_off.size(); ++t) ptrs[t] = row + tap_off[t];
  }
};

template <typename S, typename T>
ScratchVector<T> to_opmath(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  const S* p = c.const_data_ptr<S>();
  return ScratchVector<T>(p, p + c.numel());
}

}  // namespace

template <typename S>
void depthwise_forward(const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const RowKernels<T>& rk = row_kernels_for<T>();
  const int64_t mult = s.ocg(), taps = s.taps();
  const ScratchVector<T> w = to_opmath<S, T>(weight);
  const ScratchVector<T> b = bias ? to_opmath<S, T>(*bias) : ScratchVector<T>(s.OC, T(0));
  const S* in = input.const_data_ptr<S>();
  S* o = out.mutable_data_ptr<S>();
  const auto is = input.strides();
  const auto os = out.strides();
  at::parallel_for(0, s.N * s.C, grain_size(s.N * s.C, s), [&](int64_t begin, int64_t end) {
    InputPlane<T> plane(s);
    std::vector<const T*> ptrs(taps);
    ScratchVector<T> row(s.OW + kRowSlack);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / s.C, ic = task % s.C;
      plane.load(in + n * is[0] + ic * is[1], is[2], is[3]);
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t oc = ic * mult + m;
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          plane.taps(oh, ptrs.data());
          rk.taps_row(row.data(), s.OW, ptrs.data(), w.data() + oc * taps, taps, b[oc]);
          S* dst = o + n * os[0] + oc * os[1] + oh * os[2];
          for (int64_t ow = 0; ow < s.OW; ++ow) dst[ow * os[3]] = static_cast<S>(row[ow]);
        }
      }
    }
  });
}

template <typename S>
void depthwise_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                          at::Tensor& grad_in, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const RowKernels<T>& rk = row_kernels_for<T>();
  const int64_t mult = s.ocg(), taps = s.taps();
  const ScratchVector<T> w = to_opmath<S, T>(weight);
  const DimPhases ph(s.H, s.OH, s.KH, s.sh, s.ph, s.dh);
  const DimPhases pw(s.W, s.OW, s.KW, s.sw, s.pw, s.dw);
  // grad_output planes padded so every phase's reads are in bounds.
  const int64_t GH = ph.hi - ph.lo, GW = pw.hi - pw.lo;
  const S* go = grad_out.const_data_ptr<S>();
  S* gi = grad_in.mutable_data_ptr<S>();
  const auto gs = grad_out.strides();
  const auto is = grad_in.strides();
  at::parallel_for(0, s.N * s.C, grain_size(s.N * s.C, s), [&](int64_t begin, int64_t end) {
    ScratchVector<T> planes(mult * GH * GW + kRowSlack, T(0)), row(s.W + kRowSlack);
    ScratchVector<T> wt(mult * taps);
    std::vector<const T*> ptrs(mult * taps);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / s.C, ic = task % s.C;
      for (int64_t m = 0; m < mult; ++m) {
        const S* src = go + n * gs[0] + (ic * mult + m) * gs[1];
        T* plane = planes.data() + m * GH * GW;
        for (int64_t y = 0; y < s.OH; ++y)
          for (int64_t x = 0; x < s.OW; ++x)
            plane[(y - ph.lo) * GW + (x - pw.lo)] = static_cast<T>(src[y * gs[2] + x * gs[3]]);
      }
      S* dst = gi + n * is[0] + ic * is[1];
      for (int64_t rh = 0; rh < s.sh && rh < s.H; ++rh) {
        for (int64_t rw = 0; rw < s.sw && rw < s.W; ++rw) {
          const int64_t TW = ceil_div(s.W - rw, s.sw);
          // The taps (over every multiplier channel) that reach this phase.
          int64_t nt = 0;
          for (int64_t m = 0; m < mult; ++m)
            for (size_t i = 0; i < ph.taps[rh].size(); ++i)
              for (size_t j = 0; j < pw.taps[rw].size(); ++j)
                wt[nt++] = w[(ic * mult + m) * taps + ph.taps[rh][i] * s.KW + pw.taps[rw][j]];
          for (int64_t th = 0; rh + th * s.sh < s.H; ++th) {
            int64_t t = 0;
            for (int64_t m = 0; m < mult; ++m)
              for (size_t i = 0; i < ph.taps[rh].size(); ++i)
                for (size_t j = 0; j < pw.taps[rw].size(); ++j)
                  ptrs[t++] = planes.data() + m * GH * GW +
                              (th + ph.offs[rh][i] - ph.lo) * GW + (pw.offs[rw][j] - pw.lo);
            rk.taps_row(row.data(), TW, ptrs.data(), wt.data(), nt, T(0));
            S* d = dst + (rh + th * s.sh) * is[2] + rw * is[3];
            for (int64_t tw = 0; tw < TW; ++tw) d[tw * s.sw * is[3]] = static_cast<S>(row[tw]);
          }
        }
      }
    }
  });
}

template <typename S>
void depthwise_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                           at::Tensor& grad_w, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const RowKernels<T>& rk = row_kernels_for<T>();
  const int64_t mult = s.ocg(), taps = s.taps();
  const S* go = grad_out.const_data_ptr<S>();
  const S* in = input.const_data_ptr<S>();
  S* gw = grad_w.mutable_data_ptr<S>();
  const auto gs = grad_out.strides();
  const auto is = input.strides();
  const auto ws = grad_w.strides();
  // One task per input channel, looping over the batch in order, so the sum
  // is the same whatever the thread count.
  at::parallel_for(0, s.C, grain_size(s.C, s), [&](int64_t begin, int64_t end) {
    InputPlane<T> plane(s);
    std::vector<const T*> ptrs(taps);
    ScratchVector<T> g(s.OW), acc(mult * taps * kDotLanes);
    for (int64_t ic = begin; ic < end; ++ic) {
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t n = 0; n < s.N; ++n) {
        plane.load(in + n * is[0] + ic * is[1], is[2], is[3]);
        for (int64_t m = 0; m < mult; ++m) {
          const S* src = go + n * gs[0] + (ic * mult + m) * gs[1];
          for (int64_t oh = 0; oh < s.OH; ++oh) {
            for (int64_t ow = 0; ow < s.OW; ++ow) g[ow] = static_cast<T>(src[oh * gs[2] + ow * gs[3]]);
            plane.taps(oh, ptrs.data());
            rk.taps_dot(acc.data() + m * taps * kDotLanes, g.data(), s.OW, ptrs.data(), taps);
          }
        }
      }
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t oc = ic * mult + m;
        for (int64_t t = 0; t < taps; ++t) {
          const T* lanes = acc.data() + (m * taps + t) * kDotLanes;
          T sum = 0;
          for (int64_t l = 0; l < kDotLanes; ++l) sum += lanes[l];
          gw[oc * ws[0] + (t / s.KW) * ws[2] + (t % s.KW) * ws[3]] = static_cast<S>(sum);
        }
      }
    }
  });
}

#define CONVEXT_INSTANTIATE(S)                                                          \
  template void depthwise_forward<S>(const at::Tensor&, const at::Tensor&,             \
                                     const at::Tensor*, at::Tensor&, const ConvShape&); \
  template void depthwise_grad_input<S>(const at::Tensor&, const at::Tensor&,          \
                                        at::Tensor&, const ConvShape&);                 \
  template void depthwise_grad_weight<S>(const at::Tensor&, const at::Tensor&,         \
                                         at::Tensor&, const ConvShape&);
CONVEXT_CPU_TYPES(CONVEXT_INSTANTIATE)
#undef CONVEXT_INSTANTIATE

}  // namespace cpu
}  // namespace convext
