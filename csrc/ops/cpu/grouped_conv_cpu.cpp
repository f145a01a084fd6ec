// Grouped direct conv (see grouped_conv_cpu.h). Forward and grad_input are
// one correlation, Corr below: Y's channel j (group g = j / jg) sums its
// group's ig channels of X over the taps; grad_input is the correlation of
// grad_output with the flipped, transposed weights (stride 1). Per output
// row, the X rows its taps read sit in a ring of converted, zero-padded rows
// (channels innermost, whatever the tensors' layout and dtype), each loaded
// once per task; where a vector of W lanes covers several groups, the ring
// holds "expanded" rows: per pixel and lane block b, ig vectors whose lane l
// is input channel i of lane l's group. grad_weight runs the same rows with
// lanes along output channels, one task per lane block summing over every
// image and row in a fixed order (deterministic for any thread count).

#include "ops/cpu/grouped_conv_cpu.h"

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/depthwise_cpu.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {
namespace {

// Y[n][j][y][x] = init[j] + sum_{ky,kx,i<ig} w(j, i, ky, kx)
//                 * X[n][g(j)*ig + i][y*sh + ky*dh - ph][x*sw + kx*dw - pw],
// X zero outside; ph and pw may be negative (grad_input).
struct Corr {
  int64_t N, G, CX, XH, XW, CY, YH, YW, KH, KW, sh, sw, dh, dw, ph, pw;
  int64_t ig() const { return CX / G; }
  int64_t jg() const { return CY / G; }
  int64_t taps() const { return KH * KW; }
};

Corr forward_corr(const ConvShape& s) {
  return {s.N, s.G, s.C, s.H, s.W, s.OC, s.OH, s.OW, s.KH, s.KW,
          s.sh, s.sw, s.dh, s.dw, s.ph, s.pw};
}

// grad_in[ih][iw] = sum grad_out[ih + ph - kh*dh][iw + pw - kw*dw] * w[kh][kw]:
// with the taps flipped (ky = KH-1-kh), a correlation padded by
// (KH-1)*dh - ph.
Corr grad_input_corr(const ConvShape& s) {
  return {s.N, s.G, s.OC, s.OH, s.OW, s.C, s.H, s.W, s.KH, s.KW,
          1, 1, s.dh, s.dw, (s.KH - 1) * s.dh - s.ph, (s.KW - 1) * s.dw - s.pw};
}

// How rows are laid out for W-lane vectors along Y's channels.
struct Plan {
  int64_t W = 0, NB = 0;    // lanes, lane blocks
  bool bcast = false;       // a group spans whole vectors: broadcast X channels
  int64_t R = 0;            // ring rows: every X row one output row reads
  int64_t padl = 0, BW = 0; // buffer columns: padl zeros, then X's columns
  int64_t XWv = 0;          // X columns held (the rest of BW is zeros)

  Plan(const Corr& c, int64_t lanes) : W(lanes) {
    NB = (c.CY + W - 1) / W;
    bcast = c.jg() % W == 0;
    R = (c.KH - 1) * c.dh + 1;
    padl = std::max<int64_t>(c.pw, 0);
    BW = (c.YW - 1) * c.sw + (c.KW - 1) * c.dw - c.pw + padl + 1;
    XWv = std::max<int64_t>(std::min(c.XW, BW - padl), 0);
  }
  // At most, the X channels read by nb lane blocks (all of them, or one: W
  // lanes span at most (W-1)/jg + 2 groups), and the elements per pixel of
  // a ring row holding them (expanded rows are built from raw ones).
  int64_t raw(const Corr& c, int64_t nb) const {
    return nb == NB ? c.CX : std::min(c.CX, ((W - 1) / c.jg() + 2) * c.ig());
  }
  int64_t pixel(const Corr& c, int64_t nb) const { return bcast ? raw(c, nb) : nb * c.ig() * W; }
  // Scratch elements of one thread's rows for nb (1 or NB) lane blocks.
  int64_t row_buffers(const Corr& c, int64_t nb) const {
    return R * BW * pixel(c, nb) + (bcast ? 0 : XWv * raw(c, nb) + W);
  }
};

// The X channels lane block b's lanes read: [first, end).
std::pair<int64_t, int64_t> block_channels(const Corr& c, const Plan& p, int64_t b) {
  const int64_t j0 = b * p.W, j1 = std::min(c.CY, j0 + p.W) - 1;
  return {j0 / c.jg() * c.ig(), (j1 / c.jg() + 1) * c.ig()};
}

// Expansion indices of lane blocks [b0, b1) into raw rows starting at X
// channel c0: [b][i][l] -> channel of lane l's group, or -1 past CY.
std::vector<int32_t> expand_index(const Corr& c, const Plan& p, int64_t b0, int64_t b1,
                                  int64_t c0) {
  std::vector<int32_t> idx;
  for (int64_t b = b0; b < b1; ++b)
    for (int64_t i = 0; i < c.ig(); ++i)
      for (int64_t l = 0; l < p.W; ++l) {
        const int64_t j = b * p.W + l;
        idx.push_back(j < c.CY ? static_cast<int32_t>(j / c.jg() * c.ig() + i - c0) : -1);
      }
  return idx;
}

// Converts channels [c0, c1) of `cols` pixels of row (n, h) of t (N, C, H, W
// view, any strides) into dst, pixel x at dst + x*ps, channels innermost.
template <typename S, typename T>
void load_row(const at::Tensor& t, int64_t n, int64_t h, int64_t c0, int64_t c1, int64_t cols,
              T* dst, int64_t ps) {
  const S* src = t.const_data_ptr<S>() + n * t.stride(0) + h * t.stride(2) + c0 * t.stride(1);
  const int64_t sc = t.stride(1), sx = t.stride(3), nc = c1 - c0;
  if (sc <= sx) {
    for (int64_t x = 0; x < cols; ++x)
      for (int64_t c = 0; c < nc; ++c) dst[x * ps + c] = static_cast<T>(src[x * sx + c * sc]);
  } else {
    for (int64_t c = 0; c < nc; ++c)
      for (int64_t x = 0; x < cols; ++x) dst[x * ps + c] = static_cast<T>(src[x * sx + c * sc]);
  }
}

// Stores channels [0, nc) of `cols` pixels (pixel x at src + x*ps) into row
// (n, h) of t.
template <typename S, typename T>
void store_row(const T* src, int64_t ps, int64_t nc, int64_t cols, at::Tensor& t, int64_t n,
               int64_t h) {
  S* dst = t.mutable_data_ptr<S>() + n * t.stride(0) + h * t.stride(2);
  const int64_t sc = t.stride(1), sx = t.stride(3);
  if (sc <= sx) {
    for (int64_t x = 0; x < cols; ++x)
      for (int64_t c = 0; c < nc; ++c) dst[x * sx + c * sc] = static_cast<S>(src[x * ps + c]);
  } else {
    for (int64_t c = 0; c < nc; ++c)
      for (int64_t x = 0; x < cols; ++x) dst[x * sx + c * sc] = static_cast<S>(src[x * ps + c]);
  }
}

// One thread's ring of X rows for lane blocks [b0, b0 + nb): row h of image
// n sits in slot h % R, zero-padded, converted, expanded where the plan says.
template <typename S, typename T>
class RowRing {
 public:
  RowRing(const Corr& c, const Plan& p, const at::Tensor& x, int64_t b0, int64_t nb)
      : c_(c), p_(p), x_(x), tags_(p.R, -1) {
    c0_ = block_channels(c, p, b0).first;
    c1_ = b0 + nb == p.NB ? c.CX : block_channels(c, p, b0 + nb - 1).second;
    ps_ = p.bcast ? c1_ - c0_ : nb * c.ig() * p.W;
    rows_.assign(p.R * p.BW * ps_, T(0));
    if (!p.bcast) {
      raw_.assign(p.XWv * (c1_ - c0_) + p.W, T(0));
      idx_ = expand_index(c, p, b0, b0 + nb, c0_);
    }
  }
  int64_t pixel() const { return ps_; }
  int64_t first_channel() const { return c0_; }

  // Row h of image n (valid), pixel 0 at buffer column 0.
  const T* row(int64_t n, int64_t h) {
    const int64_t slot = h % p_.R, tag = n * c_.XH + h;
    T* dst = rows_.data() + slot * p_.BW * ps_;
    if (tags_[slot] != tag) {
      tags_[slot] = tag;
      if (p_.bcast) {
        load_row<S>(x_, n, h, c0_, c1_, p_.XWv, dst + p_.padl * ps_, ps_);
      } else {
        const int64_t rs = c1_ - c0_;
        load_row<S>(x_, n, h, c0_, c1_, p_.XWv, raw_.data(), rs);
        grouped_kernels_for<T>().expand(dst + p_.padl * ps_, ps_, raw_.data(), rs, p_.XWv,
                                        idx_.data(), static_cast<int64_t>(idx_.size()));
      }
    }
    return dst;
  }

 private:
  const Corr& c_;
  const Plan& p_;
  const at::Tensor& x_;
  int64_t ps_ = 0, c0_ = 0, c1_ = 0;
  ScratchVector<T> rows_, raw_;
  std::vector<int64_t> tags_;
  std::vector<int32_t> idx_;
};

// Y = Corr(X) for weights w(j, i, ky, kx) = weight_at(...) (S values) plus
// the bias, if any.
template <typename S, typename T, typename WeightAt>
void correlate(const Corr& c, const at::Tensor& x, WeightAt weight_at, const at::Tensor* bias,
               at::Tensor& y, const ConvShape& s) {
  const GroupedKernels<T>& gk = grouped_kernels_for<T>();
  const Plan p(c, gk.W);
  const int64_t W = p.W, NB = p.NB, ig = c.ig(), taps = c.taps();
  // Weights as wp[b][tap][i][W], the bias as per-lane init, zero past CY.
  ScratchVector<T> wp(NB * taps * ig * W, T(0)), init(NB * W, T(0));
  for (int64_t j = 0; j < c.CY; ++j)
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t i = 0; i < ig; ++i)
        wp[((j / W * taps + t) * ig + i) * W + j % W] =
            static_cast<T>(weight_at(j, i, t / c.KW, t % c.KW));
  if (bias) {
    const at::Tensor bc = bias->contiguous();
    for (int64_t j = 0; j < c.CY; ++j) init[j] = static_cast<T>(bc.const_data_ptr<S>()[j]);
  }
  // Tasks of whole rows: about 4 per thread over the batch.
  const int64_t per_image = std::clamp<int64_t>(
      (4 * at::get_num_threads() + c.N - 1) / std::max<int64_t>(c.N, 1), 1, c.YH);
  const int64_t rows_per_task = (c.YH + per_image - 1) / per_image;
  const int64_t tasks_per_image = (c.YH + rows_per_task - 1) / rows_per_task;
  const int64_t tasks = c.N * tasks_per_image;
  at::parallel_for(0, tasks, grain_size(tasks, s), [&](int64_t begin, int64_t end) {
    RowRing<S, T> ring(c, p, x, 0, NB);
    const int64_t ps = ring.pixel();
    ScratchVector<T> yrow(c.YW * NB * W);
    std::vector<const T*> rows(c.KH), src(taps), w(taps);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / tasks_per_image, y0 = (task % tasks_per_image) * rows_per_task;
      for (int64_t yy = y0; yy < std::min(c.YH, y0 + rows_per_task); ++yy) {
        for (int64_t ky = 0; ky < c.KH; ++ky) {
          const int64_t h = yy * c.sh + ky * c.dh - c.ph;
          rows[ky] = h >= 0 && h < c.XH ? ring.row(n, h) : nullptr;  // zero rows add nothing
        }
        for (int64_t b = 0; b < NB; ++b) {
          const int64_t off = p.bcast ? b * W / c.jg() * ig : b * ig * W;
          int64_t nt = 0;
          for (int64_t ky = 0; ky < c.KH; ++ky) {
            if (!rows[ky]) continue;
            for (int64_t kx = 0; kx < c.KW; ++kx) {
              src[nt] = rows[ky] + (kx * c.dw - c.pw + p.padl) * ps + off;
              w[nt++] = wp.data() + ((b * taps + ky * c.KW + kx) * ig) * W;
            }
          }
          gk.row(yrow.data() + b * W, c.YW, NB * W, src.data(), c.sw * ps, w.data(), nt, ig,
                 p.bcast, init.data() + b * W);
        }
        store_row<S>(yrow.data(), NB * W, c.CY, c.YW, y, n, yy);
      }
    }
  });
}

int64_t lanes_for(at::ScalarType dtype) {
  return dtype == at::kDouble ? grouped_kernels_for<double>().W : grouped_kernels_for<float>().W;
}

}  // namespace

bool grouped_applies(ConvDirection dir, const ConvShape& s, at::ScalarType dtype,
                     bool channels_innermost) {
  constexpr int64_t threads = 2;
  if (s.G <= 1 || s.depthwise() || s.icg() > kGroupedMaxChannels ||
      s.ocg() > kGroupedMaxChannels)
    return false;
  const bool strided = s.sh != 1 || s.sw != 1;
  if (strided && (dir == ConvDirection::kGradInput ||
                  (dir == ConvDirection::kForward && !channels_innermost)))
    return false;
  const int64_t W = lanes_for(dtype);
  if (W == 0) return false;
  const Corr c = dir == ConvDirection::kGradInput ? grad_input_corr(s) : forward_corr(s);
  const Plan p(c, W);
  int64_t scratch = 0;  // elements of the compute type
  if (dir == ConvDirection::kGradWeight) {
    const int64_t per_block = p.row_buffers(c, 1) + c.YW * W + c.taps() * c.ig() * W;
    scratch = std::min(threads, p.NB) * per_block;
  } else {
    scratch = p.NB * W * (c.taps() * c.ig() + 1) +
              std::min(threads, c.N * c.YH) * (p.row_buffers(c, p.NB) + c.YW * p.NB * W);
  }
  const int64_t compute_size = dtype == at::kDouble ? 8 : 4;
  const int64_t out_bytes = s.N * s.OC * s.OH * s.OW * at::elementSize(dtype);
  return scratch * compute_size <= out_bytes;
}

template <typename S>
void grouped_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                     at::Tensor& out, const ConvShape& s) {
  const S* wt = weight.const_data_ptr<S>();
  const auto ws = weight.strides();
  correlate<S, at::opmath_type<S>>(forward_corr(s), input, [&](int64_t j, int64_t i, int64_t ky,
                                                               int64_t kx) {
    return wt[j * ws[0] + i * ws[1] + ky * ws[2] + kx * ws[3]];
  }, bias, out, s);
}

template <typename S>
void grouped_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                        at::Tensor& grad_in, const ConvShape& s) {
  const S* wt = weight.const_data_ptr<S>();
  const auto ws = weight.strides();
  const int64_t icg = s.icg(), ocg = s.ocg();
  // Lane j: input channel j (group j / icg); its i-th X channel: output
  // channel g*ocg + i; taps flipped.
  correlate<S, at::opmath_type<S>>(grad_input_corr(s), grad_out, [&](int64_t j, int64_t i,
                                                                     int64_t ky, int64_t kx) {
    return wt[(j / icg * ocg + i) * ws[0] + (j % icg) * ws[1] + (s.KH - 1 - ky) * ws[2] +
              (s.KW - 1 - kx) * ws[3]];
  }, nullptr, grad_in, s);
}

template <typename S>
void grouped_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                         at::Tensor& grad_w, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const GroupedKernels<T>& gk = grouped_kernels_for<T>();
  const Corr c = forward_corr(s);
  const Plan p(c, gk.W);
  const int64_t W = p.W, ig = c.ig(), taps = c.taps();
  S* gw = grad_w.mutable_data_ptr<S>();
  const auto ws = grad_w.strides();
  // One task per lane block, summing over images and rows in order.
  at::parallel_for(0, p.NB, grain_size(p.NB, s), [&](int64_t begin, int64_t end) {
    ScratchVector<T> g(c.YW * W), acc(taps * ig * W);
    std::vector<const T*> src(c.KW * ig);
    for (int64_t b = begin; b < end; ++b) {
      RowRing<S, T> ring(c, p, input, b, 1);
      const int64_t ps = ring.pixel(), j0 = b * W, nj = std::min(W, c.CY - j0);
      // Where lane i's values start within a pixel of a ring row.
      const int64_t off = p.bcast ? j0 / c.jg() * ig - ring.first_channel() : 0;
      const int64_t step = p.bcast ? 1 : W;
      std::fill(acc.begin(), acc.end(), T(0));
      std::fill(g.begin(), g.end(), T(0));  // lanes past CY stay zero
      for (int64_t n = 0; n < c.N; ++n) {
        for (int64_t yy = 0; yy < c.YH; ++yy) {
          load_row<S>(grad_out, n, yy, j0, j0 + nj, c.YW, g.data(), W);
          for (int64_t ky = 0; ky < c.KH; ++ky) {
            const int64_t h = yy * c.sh + ky * c.dh - c.ph;
            if (h < 0 || h >= c.XH) continue;
            const T* row = ring.row(n, h);
            for (int64_t kx = 0; kx < c.KW; ++kx)
              for (int64_t i = 0; i < ig; ++i)
                src[kx * ig + i] = row + (kx * c.dw - c.pw + p.padl) * ps + off + i * step;
            gk.acc(acc.data() + ky * c.KW * ig * W, c.YW, g.data(), W, src.data(), c.sw * ps,
                   c.KW * ig, p.bcast);
          }
        }
      }
      for (int64_t l = 0; l < nj; ++l)
        for (int64_t t = 0; t < taps; ++t)
          for (int64_t i = 0; i < ig; ++i)
            gw[(j0 + l) * ws[0] + i * ws[1] + (t / c.KW) * ws[2] + (t % c.KW) * ws[3]] =
                static_cast<S>(acc[(t * ig + i) * W + l]);
    }
  });
}

#define CONVEXT_INSTANTIATE(S)                                                               \
  template void grouped_forward<S>(const at::Tensor&, const at::Tensor&, const at::Tensor*, \
                                   at::Tensor&, const ConvShape&);                           \
  template void grouped_grad_input<S>(const at::Tensor&, const at::Tensor&, at::Tensor&,     \
                                      const ConvShape&);                                     \
  template void grouped_grad_weight<S>(const at::Tensor&, const at::Tensor&, at::Tensor&,    \
                                       const ConvShape&);
CONVEXT_CPU_TYPES(CONVEXT_INSTANTIATE)
#undef CONVEXT_INSTANTIATE

}  // namespace cpu
}  // namespace convext
