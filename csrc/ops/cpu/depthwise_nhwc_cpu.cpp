// Depthwise kernels for channels-last tensors (multiplier 1), vectorised
// over channels: every output pixel is a sum over taps of elementwise
// products of channel vectors (weights laid out [tap][channel]). Reading
// channels-last data plane by plane would touch one element per cache line.
//
// An output row reads KH input rows; a ring of zero-padded, op-math copies
// of them (RowRing) lets consecutive output rows load each input row once.
// The row kernels (vtaps_row, vtaps_acc) run a whole row of pixels, a block
// of pixels per weight/grad_output vector held in registers.

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <limits>
#include <type_traits>
#include <vector>

#include "ops/cpu/bias.h"
#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/conv_taps.h"
#include "ops/cpu/copy_runs.h"
#include "ops/cpu/depthwise_cpu.h"
#include "ops/cpu/gemm/grid.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {
namespace {

// Weights (C, 1, KH, KW) as [tap][C] in the op-math type; `flip` reverses
// the taps (grad_input as a correlation of grad_output).
template <typename S, typename T>
ScratchVector<T> taps_by_channel(const at::Tensor& weight, const ConvShape& s,
                                 bool flip = false) {
  ScratchVector<T> wt(s.taps() * s.C);
  const S* w = weight.const_data_ptr<S>();
  const auto ws = weight.strides();
  for (int64_t c = 0; c < s.C; ++c)
    for (int64_t t = 0; t < s.taps(); ++t) {
      const int64_t u = flip ? s.taps() - 1 - t : t;
      wt[t * s.C + c] = static_cast<T>(w[c * ws[0] + (u / s.KW) * ws[2] + (u % s.KW) * ws[3]]);
    }
  return wt;
}

// Converts `nc` channels of `width` pixels from src (one pixel every
// `src_stride` elements) into dst (one every `dst_stride`): rows into the
// op-math buffers and results back out.
template <typename S, typename T>
void copy_pixels(const S* src, int64_t width, int64_t src_stride, int64_t nc, T* dst,
                 int64_t dst_stride) {
  if (src_stride == nc && dst_stride == nc) nc *= width, width = 1;  // one run
  for (int64_t x = 0; x < width; ++x)
    copy_run<false>(dst + x * dst_stride, 1, src + x * src_stride, 1, nc);
}

// The input rows of consecutive output rows of one image. In the op-math
// type (float) they are read in place: the output columns whose taps all
// fall inside the row run as one block, and the few edge columns one at a
// time with the taps that land inside. Other types (bfloat16, half) go
// through a ring of (KH-1)*dh + 1 converted rows of W + 2*pw pixels of C
// channels, zero-padded left and right, row ih in slot (ih + ph) % R, so a
// row is converted once for all the output rows that read it.
template <typename S, typename T>
struct RowRing {
  static constexpr bool kDirect = std::is_same_v<S, T>;
  const ConvShape& s;
  int64_t R, PW;
  ScratchVector<T> data;
  int64_t next = std::numeric_limits<int64_t>::min();  // rows below are loaded
  const S* image = nullptr;
  int64_t hs = 0, ws = 0;
  int64_t lo = 0, hi = 0;  // output columns all of whose taps are inside (direct)

  explicit RowRing(const ConvShape& shape)
      : s(shape), R((shape.KH - 1) * shape.dh + 1), PW(shape.W + 2 * shape.pw),
        data(kDirect ? 0 : R * PW * shape.C, T(0)) {
    if (kDirect) {
      // ow*sw - pw >= 0 and ow*sw - pw + (KW-1)*dw < W
      lo = std::min(ceil_div(s.pw, s.sw), s.OW);
      const int64_t last = s.W - 1 + s.pw - (s.KW - 1) * s.dw;
      hi = last < 0 ? 0 : std::min(last / s.sw + 1, s.OW);
    } else {
      hi = s.OW;
    }
  }

  void reset() { next = std::numeric_limits<int64_t>::min(); }
  T* row(int64_t ih) { return data.data() + ((ih + s.ph) % R) * PW * s.C; }
  int64_t step() const { return s.sw * (kDirect ? ws : s.C); }  // between output pixels

  // Makes the rows output row oh reads available, from an image with row
  // stride hs and pixel stride ws (channels contiguous).
  void advance(const S* img, int64_t h_stride, int64_t w_stride, int64_t oh) {
    image = img, hs = h_stride, ws = w_stride;
    if constexpr (kDirect) return;
    const int64_t first = oh * s.sh - s.ph, last = first + R - 1;
    for (int64_t ih = std::max(first, next); ih <= last; ++ih)
      if (ih >= 0 && ih < s.H)
        copy_pixels(image + ih * hs, s.W, ws, s.C, row(ih) + s.pw * s.C, s.C);
    next = last + 1;
  }

  // Calls f(ow0, np) for runs of output columns that share their taps: the
  // whole row from the ring, the edge columns one by one read in place.
  template <class F>
  void column_runs(F f) const {
    for (int64_t ow = 0; ow < s.OW;) {
      const int64_t np = ow >= lo && ow < hi ? hi - ow : 1;
      f(ow, np);
      ow += np;
    }
  }

  // The taps of output row oh, columns [ow0, ow0 + np), that read inside
  // the input (the others add zero): src[i] = the run of column ow0 (column
  // ow0 + j at src[i] + j*step()), tap[i] = kh*KW + kw.
  int64_t taps(int64_t oh, int64_t ow0, int64_t np, const T** src, int64_t* tap) {
    int64_t nt = 0;
    for (int64_t kh = 0; kh < s.KH; ++kh) {
      const int64_t ih = oh * s.sh + kh * s.dh - s.ph;
      if (ih < 0 || ih >= s.H) continue;
      for (int64_t kw = 0; kw < s.KW; ++kw) {
        const int64_t iw = ow0 * s.sw - s.pw + kw * s.dw;  // column ow0's input
        if constexpr (kDirect) {
          if (iw < 0 || iw + (np - 1) * s.sw >= s.W) continue;
          src[nt] = image + ih * hs + iw * ws;
        } else {
          src[nt] = row(ih) + (iw + s.pw) * s.C;
        }
        tap[nt++] = kh * s.KW + kw;
      }
    }
    return nt;
  }
};

// out = bias + the depthwise correlation of src (N, H, W, C with unit
// channel stride) with taps wt ([tap][C]), for the shape s (multiplier 1).
template <typename S, typename T>
void correlate_nhwc(const S* src, at::IntArrayRef is, const T* wt, const T* bias, S* out,
                    at::IntArrayRef os, const ConvShape& s) {
  const RowKernels<T>& rk = row_kernels_for<T>();
  constexpr bool same = std::is_same_v<S, T>;
  // Whole images per task once there are enough of them, else row blocks.
  const int64_t blocks = std::min<int64_t>(s.OH, ceil_div(4 * at::get_num_threads(), s.N));
  const int64_t rows = ceil_div(s.OH, blocks), tasks = s.N * ceil_div(s.OH, rows);
  at::parallel_for(0, tasks, grain_size(tasks, s), [&](int64_t begin, int64_t end) {
    RowRing<S, T> ring(s);
    ScratchVector<T> orow(same ? 0 : s.OW * s.C);
    std::vector<const T*> from(s.taps()), w(s.taps());
    std::vector<int64_t> tap(s.taps());
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / ceil_div(s.OH, rows), oh0 = task % ceil_div(s.OH, rows) * rows;
      ring.reset();
      for (int64_t oh = oh0; oh < std::min(oh0 + rows, s.OH); ++oh) {
        ring.advance(src + n * is[0], is[2], is[3], oh);
        S* dst = out + n * os[0] + oh * os[2];
        T* row = same ? reinterpret_cast<T*>(dst) : orow.data();
        const int64_t ldo = same ? os[3] : s.C;
        ring.column_runs([&](int64_t ow0, int64_t np) {
          const int64_t nt = ring.taps(oh, ow0, np, from.data(), tap.data());
          for (int64_t i = 0; i < nt; ++i) w[i] = wt + tap[i] * s.C;
          rk.vtaps_row(row + ow0 * ldo, ldo, np, s.C, from.data(), ring.step(), w.data(), nt,
                       bias);
        });
        if constexpr (!same) copy_pixels(orow.data(), s.OW, s.C, s.C, dst, os[3]);
      }
    }
  });
}

// grad_input of a stride-1 conv is a correlation of grad_output with the
// flipped taps and padding (K-1)*d - p, where that is not negative.
bool grad_input_as_correlation(const ConvShape& s) {
  return s.sh == 1 && s.sw == 1 && s.ph <= (s.KH - 1) * s.dh && s.pw <= (s.KW - 1) * s.dw;
}

}  // namespace

template <typename S>
void depthwise_nhwc_forward(const at::Tensor& input, const at::Tensor& weight,
                            const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const ScratchVector<T> wt = taps_by_channel<S, T>(weight, s);
  const ScratchVector<T> b = bias_values<S, T>(bias, s.C);
  correlate_nhwc(input.const_data_ptr<S>(), input.strides(), wt.data(), b.data(),
                 out.mutable_data_ptr<S>(), out.strides(), s);
}

template <typename S>
void depthwise_nhwc_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                               at::Tensor& grad_in, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const RowKernels<T>& rk = row_kernels_for<T>();
  const int64_t C = s.C;
  const ScratchVector<T> zeros(C, T(0));
  const S* go = grad_out.const_data_ptr<S>();
  S* gi = grad_in.mutable_data_ptr<S>();
  const auto gs = grad_out.strides();
  const auto is = grad_in.strides();
  if (grad_input_as_correlation(s)) {
    ConvShape t = s;
    t.H = s.OH, t.W = s.OW, t.OH = s.H, t.OW = s.W;
    t.ph = (s.KH - 1) * s.dh - s.ph, t.pw = (s.KW - 1) * s.dw - s.pw;
    const ScratchVector<T> wt = taps_by_channel<S, T>(weight, s, /*flip=*/true);
    correlate_nhwc(go, gs, wt.data(), zeros.data(), gi, is, t);
    return;
  }
  // Strided (or padded past (K-1)*d): input row by input row, its pixels in
  // width phases (rw, rw + sw, ...), each phase a run over the taps reaching
  // it, reading grad_output rows zero-padded to the phases' span [lo, hi).
  const DimPhases pw(s.W, s.OW, s.KW, s.sw, s.pw, s.dw);
  const int64_t GW = pw.hi - pw.lo;
  const ScratchVector<T> wt = taps_by_channel<S, T>(weight, s);
  constexpr bool same = std::is_same_v<S, T>;
  at::parallel_for(0, s.N * s.H, grain_size(s.N * s.H, s), [&](int64_t begin, int64_t end) {
    ScratchVector<T> rows(s.KH * GW * C, T(0)), res(same ? 0 : s.W * C);
    std::vector<const T*> src(s.taps()), w(s.taps());
    std::vector<int64_t> oh_of(s.KH);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / s.H, ih = task % s.H;
      // grad_output row read through tap kh: oh = (ih + ph - kh*dh) / sh.
      for (int64_t kh = 0; kh < s.KH; ++kh) {
        const int64_t v = ih + s.ph - kh * s.dh;
        oh_of[kh] = (v >= 0 && v % s.sh == 0 && v / s.sh < s.OH) ? v / s.sh : -1;
        if (oh_of[kh] >= 0)
          copy_pixels(go + n * gs[0] + oh_of[kh] * gs[2], s.OW, gs[3], C,
                   rows.data() + (kh * GW - pw.lo) * C, C);
      }
      S* dst = gi + n * is[0] + ih * is[2];
      for (int64_t rw = 0; rw < static_cast<int64_t>(pw.taps.size()); ++rw) {
        int64_t nt = 0;
        for (int64_t kh = 0; kh < s.KH; ++kh) {
          if (oh_of[kh] < 0) continue;
          for (size_t j = 0; j < pw.taps[rw].size(); ++j) {
            src[nt] = rows.data() + (kh * GW + pw.offs[rw][j] - pw.lo) * C;
            w[nt++] = wt.data() + (kh * s.KW + pw.taps[rw][j]) * C;
          }
        }
        T* out = same ? reinterpret_cast<T*>(dst + rw * is[3]) : res.data() + rw * C;
        rk.vtaps_row(out, (same ? is[3] : C) * s.sw, ceil_div(s.W - rw, s.sw), C, src.data(), C,
                     w.data(), nt, zeros.data());
      }
      if constexpr (!same) copy_pixels(res.data(), s.W, C, C, dst, is[3]);
    }
  });
}

template <typename S>
void depthwise_nhwc_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                                at::Tensor& grad_w, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const RowKernels<T>& rk = row_kernels_for<T>();
  constexpr bool same = std::is_same_v<S, T>;
  const int64_t C = s.C, taps = s.taps(), rows = s.N * s.OH;
  // The (n, oh) rows split into a fixed number of chunks (whatever the thread
  // count), each summing into its own [tap][C] partial, reduced in chunk
  // order: deterministic. The partials together stay within a quarter of
  // grad_output's bytes (the scratch rule), up to 16 of them.
  const int64_t fit = rows * s.OW * int64_t(sizeof(S)) / (4 * taps * int64_t(sizeof(T)));
  const int64_t chunks = std::clamp<int64_t>(std::min<int64_t>(fit, rows), 1, 16);
  ScratchVector<T> part(chunks * taps * C, T(0));
  const S* go = grad_out.const_data_ptr<S>();
  const S* in = input.const_data_ptr<S>();
  const auto gs = grad_out.strides();
  const auto is = input.strides();
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    RowRing<S, T> ring(s);
    ScratchVector<T> grow(same ? 0 : s.OW * C);
    std::vector<const T*> src(taps);
    std::vector<T*> acc(taps);
    std::vector<int64_t> tap(taps);
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      T* sums = part.data() + chunk * taps * C;
      int64_t image = -1;
      for (int64_t r = chunk * rows / chunks; r < (chunk + 1) * rows / chunks; ++r) {
        const int64_t n = r / s.OH, oh = r % s.OH;
        if (n != image) ring.reset(), image = n;
        ring.advance(in + n * is[0], is[2], is[3], oh);
        const S* g = go + n * gs[0] + oh * gs[2];
        if constexpr (!same) copy_pixels(g, s.OW, gs[3], C, grow.data(), C);
        const T* gr = same ? reinterpret_cast<const T*>(g) : grow.data();
        const int64_t ldg = same ? gs[3] : C;
        ring.column_runs([&](int64_t ow0, int64_t np) {
          const int64_t nt = ring.taps(oh, ow0, np, src.data(), tap.data());
          for (int64_t i = 0; i < nt; ++i) acc[i] = sums + tap[i] * C;
          rk.vtaps_acc(acc.data(), np, C, gr + ow0 * ldg, ldg, src.data(), ring.step(), nt);
        });
      }
    }
  });
  S* gw = grad_w.mutable_data_ptr<S>();
  const auto ws = grad_w.strides();
  for (int64_t t = 0; t < taps; ++t)
    for (int64_t c = 0; c < C; ++c) {
      T sum = 0;
      for (int64_t k = 0; k < chunks; ++k) sum += part[(k * taps + t) * C + c];
      gw[c * ws[0] + (t / s.KW) * ws[2] + (t % s.KW) * ws[3]] = static_cast<S>(sum);
    }
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
