// Depthwise kernels (one input channel per group, any channel multiplier).
//
// Each task copies one channel plane into a zero-padded op-math buffer split
// by both strides into phase planes (PhasePlane), so that every tap reads a
// unit-stride run for the whole plane at once: the inner loops are the
// vectorised row microkernels taps_row (sum of taps) and taps_dot (per-tap
// dot products) over the plane, with no bounds checks. A stride-1
// grad_input is the same correlation of grad_output with flipped taps.

#include "ops/cpu/depthwise_cpu.h"

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/conv_taps.h"
#include "ops/cpu/copy_runs.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {
namespace {

// A zero-padded channel plane split by both strides into sh*sw phase
// planes of X = ceil(PW/sw) columns, phase (rh, rw) holding padded pixels
// (y*sh + rh, x*sw + rw). Output (oh, ow) then reads tap (kh, kw) at
// index oh*X + ow + tap_off[t] of the flat buffer, so the whole plane's
// output, computed on a grid of X columns (ow >= OW discarded), is one
// unit-stride run per tap: one row-kernel call per plane, full vectors even
// for 7x7 planes, no gathers for strided convs.
template <typename T>
struct PhasePlane {
  const ConvShape& s;
  int64_t X, Y;  // a phase plane's columns and rows
  ScratchVector<T> data;
  std::vector<int64_t> tap_off;
  // Column phase r holds padded columns r, r + sw, ...: input columns
  // x0 + j*sw (j < count) land at offset at + j of a row of phase (., 0).
  // The same for every row, so worked out once (a plane may be 14 x 14).
  struct ColRun {
    int64_t at, count, x0;
  };
  std::vector<ColRun> cols;

  explicit PhasePlane(const ConvShape& shape)
      : s(shape), X(ceil_div(shape.W + 2 * shape.pw, shape.sw)),
        Y(ceil_div(shape.H + 2 * shape.ph, shape.sh)),
        // Discarded columns of the last rows read up to X + kRowSlack past
        // the last phase plane (OH + (KH-1)*dh/sh <= Y).
        data(shape.sh * shape.sw * Y * X + X + kRowSlack, T(0)), tap_off(shape.taps()) {
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t a = kh * s.dh, b = kw * s.dw;
        const int64_t phase = (a % s.sh) * s.sw + b % s.sw;
        tap_off[kh * s.KW + kw] = phase * Y * X + (a / s.sh) * X + b / s.sw;
      }
    for (int64_t r = 0; r < std::min(s.sw, s.W + s.pw); ++r) {
      const int64_t first = ceil_div(std::max<int64_t>(s.pw - r, 0), s.sw);
      const int64_t count = ceil_div(s.W + s.pw - r, s.sw) - first;
      if (count > 0) cols.push_back({r * Y * X + first, count, first * s.sw + r - s.pw});
    }
  }

  // Output positions (flat run length) to compute for the plane.
  int64_t run() const { return s.OH * X; }

  // Copies a channel plane in (the padding stays zero from construction);
  // returns whether every value is finite (always true unless kCheck).
  template <bool kCheck, typename S>
  bool load(const S* src, int64_t hs, int64_t ws) {
    bool ok = true;
    // padded row y + ph is row yy of row phase rh
    int64_t rh = s.ph % s.sh, yy = s.ph / s.sh;
    for (int64_t y = 0; y < s.H; ++y) {
      T* dst = data.data() + (rh * s.sw * Y + yy) * X;
      for (const ColRun& c : cols)
        ok &= copy_run<kCheck>(dst + c.at, 1, src + y * hs + c.x0 * ws, s.sw * ws, c.count);
      if (++rh == s.sh) rh = 0, ++yy;
    }
    return ok;
  }

  void taps(const T** ptrs) const {
    for (size_t t = 0; t < tap_off.size(); ++t) ptrs[t] = data.data() + tap_off[t];
  }
};

template <typename S, typename T>
ScratchVector<T> to_opmath(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  const S* p = c.const_data_ptr<S>();
  return ScratchVector<T>(p, p + c.numel());
}

// dst = bias + the depthwise correlation of src's channel planes with w
// ([oc][tap], mult output channels per source channel) for the shape s.
template <typename S, typename T>
void correlate_planes(const S* src, at::IntArrayRef ss, const T* w, const T* bias, S* dst,
                      at::IntArrayRef ds, const ConvShape& s) {
  const RowKernels<T>& rk = row_kernels_for<T>();
  const int64_t mult = s.ocg(), taps = s.taps();
  at::parallel_for(0, s.N * s.C, grain_size(s.N * s.C, s), [&](int64_t begin, int64_t end) {
    PhasePlane<T> plane(s);
    std::vector<const T*> ptrs(taps);
    plane.taps(ptrs.data());
    ScratchVector<T> res(plane.run() + kRowSlack);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / s.C, ic = task % s.C;
      plane.template load<false>(src + n * ss[0] + ic * ss[1], ss[2], ss[3]);
      for (int64_t m = 0; m < mult; ++m) {
        const int64_t oc = ic * mult + m;
        rk.taps_row(res.data(), plane.run(), ptrs.data(), w + oc * taps, taps, bias[oc]);
        for (int64_t oh = 0; oh < s.OH; ++oh)
          copy_run<false>(dst + n * ds[0] + oc * ds[1] + oh * ds[2], ds[3],
                          res.data() + oh * plane.X, 1, s.OW);
      }
    }
  });
}

}  // namespace

template <typename S>
void depthwise_forward(const at::Tensor& input, const at::Tensor& weight,
                       const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const ScratchVector<T> w = to_opmath<S, T>(weight);
  const ScratchVector<T> b = bias ? to_opmath<S, T>(*bias) : ScratchVector<T>(s.OC, T(0));
  correlate_planes(input.const_data_ptr<S>(), input.strides(), w.data(), b.data(),
                   out.mutable_data_ptr<S>(), out.strides(), s);
}

template <typename S>
void depthwise_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                          at::Tensor& grad_in, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const RowKernels<T>& rk = row_kernels_for<T>();
  const int64_t mult = s.ocg(), taps = s.taps();
  ScratchVector<T> w = to_opmath<S, T>(weight);
  if (mult == 1 && s.sh == 1 && s.sw == 1 && s.ph <= (s.KH - 1) * s.dh &&
      s.pw <= (s.KW - 1) * s.dw) {
    // A correlation of grad_output with the flipped taps, padded (K-1)*d - p.
    ConvShape t = s;
    t.H = s.OH, t.W = s.OW, t.OH = s.H, t.OW = s.W;
    t.ph = (s.KH - 1) * s.dh - s.ph, t.pw = (s.KW - 1) * s.dw - s.pw;
    for (int64_t c = 0; c < s.C; ++c)
      std::reverse(w.begin() + c * taps, w.begin() + (c + 1) * taps);
    const ScratchVector<T> zeros(s.C, T(0));
    correlate_planes(grad_out.const_data_ptr<S>(), grad_out.strides(), w.data(), zeros.data(),
                     grad_in.mutable_data_ptr<S>(), grad_in.strides(), t);
    return;
  }
  const DimPhases ph(s.H, s.OH, s.KH, s.sh, s.ph, s.dh);
  const DimPhases pw(s.W, s.OW, s.KW, s.sw, s.pw, s.dw);
  // grad_output planes on a grid of GH x GW (every phase's reads in bounds).
  // Input phase (rh, rw) is one taps_row run over its TH rows of GW
  // columns (those past its TW discarded), as PhasePlane does for the
  // forward; the sw column phases of a row are then interleaved into it.
  const int64_t GH = ph.hi - ph.lo, GW = pw.hi - pw.lo;
  const int64_t nrw = std::min(s.sw, s.W);
  std::vector<int64_t> TW(nrw);
  for (int64_t rw = 0; rw < nrw; ++rw) TW[rw] = ceil_div(s.W - rw, s.sw);
  const S* go = grad_out.const_data_ptr<S>();
  S* gi = grad_in.mutable_data_ptr<S>();
  const auto gs = grad_out.strides();
  const auto is = grad_in.strides();
  at::parallel_for(0, s.N * s.C, grain_size(s.N * s.C, s), [&](int64_t begin, int64_t end) {
    // Discarded columns read up to GW + kRowSlack past the last plane.
    ScratchVector<T> planes(mult * GH * GW + GW + kRowSlack, T(0));
    ScratchVector<T> res(nrw * (ceil_div(s.H, s.sh) * GW + kRowSlack));
    std::vector<const T*> rows(nrw);
    ScratchVector<T> wt(mult * taps);
    std::vector<const T*> ptrs(mult * taps);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / s.C, ic = task % s.C;
      for (int64_t m = 0; m < mult; ++m) {
        const S* src = go + n * gs[0] + (ic * mult + m) * gs[1];
        T* plane = planes.data() + m * GH * GW - ph.lo * GW - pw.lo;
        for (int64_t y = 0; y < s.OH; ++y)
          copy_run<false>(plane + y * GW, 1, src + y * gs[2], gs[3], s.OW);
      }
      S* dst = gi + n * is[0] + ic * is[1];
      for (int64_t rh = 0; rh < s.sh && rh < s.H; ++rh) {
        const int64_t TH = ceil_div(s.H - rh, s.sh);
        for (int64_t rw = 0; rw < nrw; ++rw) {
          // The taps (over every multiplier channel) that reach this phase.
          int64_t nt = 0;
          for (int64_t m = 0; m < mult; ++m)
            for (size_t i = 0; i < ph.taps[rh].size(); ++i)
              for (size_t j = 0; j < pw.taps[rw].size(); ++j, ++nt) {
                wt[nt] = w[(ic * mult + m) * taps + ph.taps[rh][i] * s.KW + pw.taps[rw][j]];
                ptrs[nt] = planes.data() + m * GH * GW + (ph.offs[rh][i] - ph.lo) * GW +
                           (pw.offs[rw][j] - pw.lo);
              }
          T* r = res.data() + rw * (res.size() / nrw);
          rk.taps_row(r, TH * GW, ptrs.data(), wt.data(), nt, T(0));
          rows[rw] = r;
        }
        for (int64_t th = 0; th < TH; ++th) {
          interleave(dst + (rh + th * s.sh) * is[2], is[3], rows.data(), nrw, TW.data());
          for (auto& row : rows) row += GW;
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
    PhasePlane<T> plane(s);
    std::vector<const T*> ptrs(taps), row(taps);
    plane.taps(ptrs.data());
    // grad_output on the plane's grid of X columns; the rest stays zero.
    ScratchVector<T> g(plane.run(), T(0)), acc(mult * taps * kDotLanes);
    for (int64_t ic = begin; ic < end; ++ic) {
      std::fill(acc.begin(), acc.end(), T(0));
      for (int64_t n = 0; n < s.N; ++n) {
        // The discarded columns multiply zeros into the input, which gives
        // NaN for an infinite input: such planes go row by row.
        const bool finite = plane.template load<true>(in + n * is[0] + ic * is[1], is[2], is[3]);
        for (int64_t m = 0; m < mult; ++m) {
          const S* src = go + n * gs[0] + (ic * mult + m) * gs[1];
          for (int64_t oh = 0; oh < s.OH; ++oh) {
            const S* grow = src + oh * gs[2];
            T* d = g.data() + oh * plane.X;
            if (gs[3] == 1) {
              for (int64_t ow = 0; ow < s.OW; ++ow) d[ow] = static_cast<T>(grow[ow]);
            } else {
              for (int64_t ow = 0; ow < s.OW; ++ow) d[ow] = static_cast<T>(grow[ow * gs[3]]);
            }
          }
          T* a = acc.data() + m * taps * kDotLanes;
          if (finite) {
            rk.taps_dot(a, g.data(), plane.run(), ptrs.data(), taps);
            continue;
          }
          for (int64_t oh = 0; oh < s.OH; ++oh) {
            for (int64_t t = 0; t < taps; ++t) row[t] = ptrs[t] + oh * plane.X;
            rk.taps_dot(a, g.data() + oh * plane.X, s.OW, row.data(), taps);
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
