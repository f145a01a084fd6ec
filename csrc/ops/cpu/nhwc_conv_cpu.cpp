// The channels-last (NHWC) dense conv kernels: forward and grad_input as
// indirect GEMMs that read the activations in place (nhwc_igemm.h), and
// grad_weight as a packed GEMM whose operands are plain row copies.
//   forward:    out[q][j]  = sum_{t,c} in[q @ t][c] * W[j][c][t]
//   grad_input: per stride phase (as in conv_grad_input_cpu.cpp),
//               gin[q][j]  = sum_{t,oc} gout[q @ t][oc] * W[oc][j][t]
//   grad_weight: gW[m][c][t] = sum_q gout[q][m] * in[q @ t][c]
// q: a pixel, "q @ t": the pixel tap t reads (zero in the padding).

#include "ops/cpu/nhwc_conv_cpu.h"
#include "ops/cpu/nhwc_grad_weight_taps.h"
#include "ops/cpu/stage_channels.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <array>
#include <deque>
#include <type_traits>
#include <vector>

#include "ops/cpu/bias.h"
#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/conv_taps.h"
#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/pack.h"
#include "ops/cpu/gemm/split_reduction.h"
#include "ops/cpu/nhwc_igemm.h"

namespace convext {
namespace cpu {
namespace {

// The indirect kernel that reads S in place (its packed type has S's bits);
// for float the tile whose panels waste the fewest columns of an N side of n.
template <typename S>
const auto* igemm_for(int64_t n = 0) {
  const UKernelSet& k = ukernels();
  if constexpr (std::is_same_v<S, float>) {
    const auto& wide = k.f32_igemm_wide;
    if (wide.fn && n > 0 && round_up(n, wide.nr) < round_up(n, k.f32_igemm.nr)) return &wide;
    return k.f32_igemm.fn ? &k.f32_igemm : nullptr;
  } else if constexpr (std::is_same_v<S, double>) {
    return k.f64_igemm.fn ? &k.f64_igemm : nullptr;
  } else {
    static_assert(std::is_same_v<S, c10::BFloat16>);
    if (k.bf16_igemm_tiles.fn) return &k.bf16_igemm_tiles;  // AMX
    return k.bf16_igemm.fn ? &k.bf16_igemm : nullptr;
  }
}

template <typename S, typename P>
const P* as_packed(const at::Tensor& t) {
  static_assert(sizeof(S) == sizeof(P));
  return reinterpret_cast<const P*>(t.const_data_ptr<S>());
}

// The weight of F fused groups (nhwc_fused_groups) as (OC, F*icg, KH, KW),
// contiguous: block-diagonal within each fused group, zero elsewhere.
template <typename S>
ScratchVector<S> fused_group_weight(const at::Tensor& weight, const ConvShape& s, int64_t F) {
  const int64_t icg = s.icg(), ocg = s.ocg(), taps = s.taps(), Cf = F * icg;
  ScratchVector<S> wf(s.OC * Cf * taps, S(0.0f));
  const S* w = weight.const_data_ptr<S>();
  const auto ws = weight.strides();
  std::vector<int64_t> toff(taps);
  for (int64_t t = 0; t < taps; ++t) toff[t] = (t / s.KW) * ws[2] + (t % s.KW) * ws[3];
  for (int64_t j = 0; j < s.OC; ++j) {
    const int64_t first = ((j / ocg) % F) * icg;  // its group's channels in the fused group
    for (int64_t t = 0; t < taps; ++t)
      for (int64_t c = 0; c < icg; ++c)
        wf[(j * Cf + first + c) * taps + t] = w[j * ws[0] + c * ws[1] + toff[t]];
  }
  return wf;
}

// Runs body(src, n0, nb) over the images [n0, n0 + nb) of the igemm's source
// t (N, C, H, W), src its view. With channels innermost: once, in place. With
// channels apart (nhwc_staged): a batch of images at a time, staged channels
// innermost into scratch of at most `budget` elements (at least one image),
// src then viewing the batch.
template <typename S, typename P, typename Body>
void over_images(const at::Tensor& t, GridView<const P> src, int64_t budget, Body&& body) {
  const int64_t N = t.size(0), C = t.size(1), image = C * t.size(2) * t.size(3);
  if (t.stride(1) == 1 || C == 1) return body(src, int64_t(0), N);
  const int64_t batch = std::clamp<int64_t>(budget / std::max<int64_t>(image, 1), 1,
                                            std::max<int64_t>(N, 1));
  Scratch<S> staged(batch * image);
  src.base = reinterpret_cast<const P*>(staged.ptr);
  src.sn = image; src.sc = 1; src.sw = C; src.sh = t.size(3) * C;
  for (int64_t n0 = 0; n0 < N; n0 += batch) {
    const int64_t nb = std::min(batch, N - n0);
    stage_channels_innermost(t, n0, nb, staged.ptr);
    body(src, n0, nb);
  }
}

template <typename S, typename P, typename T>
void forward_igemm(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                   at::Tensor& out, const ConvShape& conv, const UKernelIgemm<P, T>& uk) {
  const int64_t F = nhwc_fused_groups(conv, input);
  ConvShape s = conv;
  s.G /= F;
  const ScratchVector<S> wf = F > 1 ? fused_group_weight<S>(weight, conv, F) : ScratchVector<S>();
  const S* wp = F > 1 ? wf.data() : weight.const_data_ptr<S>();
  const std::array<int64_t, 4> ws =
      F > 1 ? std::array<int64_t, 4>{s.icg() * s.taps(), s.taps(), s.KW, 1}
            : std::array<int64_t, 4>{weight.stride(0), weight.stride(1), weight.stride(2),
                                     weight.stride(3)};
  const int64_t N = s.ocg(), Cg = s.icg();
  const KBlocks kb(s.taps(), Cg, kc_block(uk), k_pad(uk));
  std::vector<int64_t> toff(s.taps());
  for (int64_t t = 0; t < s.taps(); ++t) toff[t] = (t / s.KW) * ws[2] + (t % s.KW) * ws[3];
  const PackedWeights<P> b(s.G, kb, N, uk.nr, uk.kr, wp, N * ws[0], ws[0], ws[1], toff.data(),
                           s);
  const ScratchVector<T> bv = bias_values<S, T>(bias, bias ? s.OC : 0);
  const TapOffsets offs(s);
  GridView<const P> src = grid_view(as_packed<S, P>(input), input, 0);
  src.GH = s.OH; src.GW = s.OW; src.step_h = s.sh; src.step_w = s.sw;
  src.ntaps = s.taps(); src.off_h = offs.h.data(); src.off_w = offs.w.data();
  const GridView<S> out_view = grid_view(out.mutable_data_ptr<S>(), out, 0);
  // Staged: up to half the output's size.
  over_images<S>(input, src, out.numel() / 2, [&](const GridView<const P>& in, int64_t n0,
                                                   int64_t nb) {
    GridView<S> dst = out_view;
    dst.base += n0 * dst.sn;
    nhwc_igemm(uk, s.G, nb, in, Cg, dst, N, N, kb, b, bias ? bv.data() : nullptr, s);
  });
}

template <typename S, typename P, typename T>
void grad_input_igemm(const at::Tensor& grad_out, const at::Tensor& weight,
                      const at::Tensor* bias, at::Tensor& grad_in, const ConvShape& s,
                      const UKernelIgemm<P, T>& uk) {
  const int64_t N = s.icg(), Cg = s.ocg();
  const ScratchVector<T> bv = bias_values<S, T>(bias, bias ? s.C : 0);
  const auto ws = weight.strides();
  const DimPhases dims_h(s.H, s.OH, s.KH, s.sh, s.ph, s.dh);
  const DimPhases dims_w(s.W, s.OW, s.KW, s.sw, s.pw, s.dw);
  // Every stride phase's taps and packed weights (together, the weight once).
  struct Phase {
    int64_t rh, rw;
    PhaseTaps taps;
    KBlocks kb;
    PackedWeights<P> b;
    Phase(int64_t rh_, int64_t rw_, PhaseTaps ph, const std::vector<int64_t>& toff,
          const at::Tensor& weight, const ConvShape& s, const UKernelIgemm<P, T>& uk)
        : rh(rh_), rw(rw_), taps(std::move(ph)),
          kb(static_cast<int64_t>(taps.kh.size()), s.ocg(), kc_block(uk), k_pad(uk)),
          b(s.G, kb, s.icg(), uk.nr, uk.kr, weight.const_data_ptr<S>(), s.ocg() * weight.stride(0),
            weight.stride(1), weight.stride(0), toff.data(), s) {}
  };
  std::deque<Phase> phases;
  for (int64_t rh = 0; rh < std::min(s.sh, s.H); ++rh) {
    for (int64_t rw = 0; rw < std::min(s.sw, s.W); ++rw) {
      PhaseTaps ph(dims_h, dims_w, rh, rw);
      std::vector<int64_t> toff(ph.kh.size());
      for (size_t t = 0; t < toff.size(); ++t) toff[t] = ph.kh[t] * ws[2] + ph.kw[t] * ws[3];
      phases.emplace_back(rh, rw, std::move(ph), toff, weight, s, uk);
    }
  }
  const GridView<const P> src = grid_view(as_packed<S, P>(grad_out), grad_out, 0);
  const GridView<S> gin_view = grid_view(grad_in.mutable_data_ptr<S>(), grad_in, 0);
  // Staged: up to half grad_input's size.
  over_images<S>(grad_out, src, grad_in.numel() / 2, [&](const GridView<const P>& go_view,
                                                         int64_t n0, int64_t nb) {
    for (const Phase& p : phases) {
      GridView<const P> go = go_view;
      go.GH = ceil_div(s.H - p.rh, s.sh); go.GW = ceil_div(s.W - p.rw, s.sw);
      go.ntaps = static_cast<int64_t>(p.taps.kh.size());
      go.off_h = p.taps.off_h.data(); go.off_w = p.taps.off_w.data();
      GridView<S> dst = gin_view;
      dst.base += n0 * dst.sn;
      dst.step_h = s.sh; dst.step_w = s.sw; dst.off_h = &p.rh; dst.off_w = &p.rw;
      nhwc_igemm(uk, s.G, nb, go, Cg, dst, N, N, p.kb, p.b, bias ? bv.data() : nullptr, s);
    }
  });
}

// The kernel grad_weight runs: its A operand (grad_out) is packed into
// panels for `packed`, or read in place by `strided` (kr 1) when grad_out's
// pixels are evenly spaced, lda apart: then only B is packed.
template <typename P, typename T>
struct GwKernel {
  const UKernel<P, T>* packed = nullptr;
  const UKernelStrided<P, T>* strided = nullptr;
  int64_t lda = 0;
  int mr = 0, nr = 0, kr = 1, ka = 0;  // ka: a tile kernel's (see UKernel)
};

// The strided kernel for S (float, double) whose panels waste the fewest of
// n columns, if grad_out's pixel axis is dense; else the packed kernel.
template <typename S, typename P, typename T>
GwKernel<P, T> gw_kernel(const UKernel<P, T>& uk, const at::Tensor& grad_out, const ConvShape& s,
                         int64_t n) {
  GwKernel<P, T> k{&uk, nullptr, 0, uk.mr, uk.nr, uk.kr, uk.ka};
  const UKernelStrided<P, T>* st = nullptr;
  if constexpr (std::is_same_v<S, P> && std::is_same_v<S, float>) {
    const UKernelSet& set = ukernels();
    st = &set.f32_strided;
    if (set.f32_strided_wide.fn && round_up(n, set.f32_strided_wide.nr) < round_up(n, st->nr))
      st = &set.f32_strided_wide;
  } else if constexpr (std::is_same_v<S, P> && std::is_same_v<S, double>) {
    st = &ukernels().f64_strided;
  }
  if (!st || !st->fn) return k;
  const auto gs = grad_out.strides();
  const int64_t lda = s.OW > 1 ? gs[3] : s.OH > 1 ? gs[2] : gs[0];
  const bool dense = lda > 0 && (s.OW == 1 || gs[3] == lda) &&
                     (s.OH == 1 || gs[2] == s.OW * lda) && (s.N == 1 || gs[0] == s.OH * s.OW * lda);
  if (dense) k = {nullptr, st, lda, st->mr, st->nr, st->kr, 0};
  return k;
}

// grad_weight: M = a group's output channels, columns (t, c), reduction over
// every pixel of every image, tiled and split as split_reduction.h says.
template <typename S, typename P, typename T>
void grad_weight_packed(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                        const ConvShape& s, const GwKernel<P, T>& uk) {
  const int64_t M = s.ocg(), Cg = s.icg(), Ncols = s.taps() * Cg, R = s.N * s.OH * s.OW;
  const UKernel<P, T> shape{nullptr, uk.mr, uk.nr, uk.kr, uk.ka};  // for kc_block, k_pad
  const int64_t KC = kc_block(shape);
  const ReductionCut cut{KC, 4 * KC, grad_out.numel() * grad_out.element_size() / 2};
  SplitReduction<T> red(s.G, M, Ncols, R, cut, uk.mr, uk.nr, l2_block<P>(KC, uk.mr),
                        l2_block<P>(KC, uk.nr));
  const TilePlan& plan = red.plan;

  const TapOffsets offs(s);
  const S* go = grad_out.const_data_ptr<S>();
  const S* in = input.const_data_ptr<S>();
  const auto gs = grad_out.strides(), is = input.strides();
  TORCH_INTERNAL_ASSERT(gs[1] == 1 && is[1] == 1, "nhwc grad_weight: channels must be innermost");
  S* gw = grad_w.mutable_data_ptr<S>();
  const auto ws = grad_w.strides();
  struct Buffers {
    Scratch<P> a, b;
    ScratchVector<P> row, row2;  // converted runs (half types packed as float)
  };
  // A tile kernel's A is grad_out transposed (rows of pixels per channel):
  // transposed once here, 32 pixels at a time in registers
  // (transpose_halves32), each channel's 32 pixels one 64-byte run of goT.
  // Value by value this was 55% of a 1x1 64->256 grad_weight; per column
  // tile and reduction block, into a task's own buffer, it measured 10-30%
  // slower than once here. The tiles read it in place (UKernelRows): rows of
  // Rp pixels (R rounded up to a chunk, zero past R), and a chunk's 32 rows
  // past the last channel zero too, so a tile's whole chunks and rows stay
  // in the buffer.
  const bool transpose = a_interleave(shape) > 2;
  const auto& rows_kernel = ukernels().bf16_tiles_rows;
  const auto transpose_rows = ukernels().transpose_halves32;
  TORCH_INTERNAL_ASSERT(!transpose || (rows_kernel.fn && rows_kernel.mr == uk.mr &&
                                       rows_kernel.nr == uk.nr && transpose_rows));
  const int64_t Rp = round_up(R, int64_t(32));
  Scratch<P> goT(transpose ? (s.OC + 32) * Rp : 0);
  if constexpr (std::is_same_v<P, Bf16Bits> && sizeof(S) == sizeof(P)) {
    if (transpose) {
      at::parallel_for(0, ceil_div(R, int64_t(32)), 1, [&](int64_t b, int64_t e) {
        const uint16_t* pix[32];
        for (int64_t qb = b; qb < e; ++qb) {
          const int64_t q0 = qb * 32, nq = std::min<int64_t>(32, R - q0);
          Pixel px(q0, s.OH, s.OW);
          for (int64_t qq = 0; qq < nq; ++qq, px = px.next(s.OH, s.OW))
            pix[qq] = reinterpret_cast<const uint16_t*>(go + px.n * gs[0] + px.y * gs[2] +
                                                        px.x * gs[3]);
          transpose_rows(goT.ptr + q0, Rp, pix, nq, s.OC);
        }
      });
      std::fill(goT.ptr + s.OC * Rp, goT.ptr + (s.OC + 32) * Rp, P(0));
    }
  } else {
    TORCH_INTERNAL_ASSERT(!transpose);
  }
  // Packs A's channels [i0, i0 + mc) of the tile's rows (all of them, or a
  // strided kernel's last, partial panel).
  auto pack_a = [&](Buffers& buf, const OutTile& t, int64_t r0, int64_t kc, int64_t i0,
                    int64_t mc) {
    pack_pixel_rows(kc, mc, uk.mr, uk.kr, buf.a.ptr, buf.row,
                    [&](int64_t qq, std::vector<RowRun<P>>& runs, P* cvt) {
      const Pixel px(r0 + qq, s.OH, s.OW);
      const S* p = go + px.n * gs[0] + px.y * gs[2] + px.x * gs[3] + (t.g * M + t.m0 + i0);
      runs.push_back({0, mc, run_as_packed<P>(p, mc, cvt)});
    });
  };
  const int64_t a_rows = uk.strided ? uk.mr : plan.MC;
  red.run(s, [&] { return Buffers{Scratch<P>(a_rows * KC), Scratch<P>(KC * plan.NC), {}, {}}; },
          [&](Buffers& buf, const OutTile& t, int64_t r_begin, int64_t r_end, T* c) {
    // The tile's columns (tap, c) as runs of one tap's channels.
    struct TapRun {
      int64_t j, len, tap, c;
    };
    std::vector<TapRun> tap_runs;
    for (int64_t j = 0; j < t.nc;) {
      const int64_t col = t.n0 + j, tap = col / Cg, ch = col % Cg;
      const int64_t len = std::min(Cg - ch, t.nc - j);
      tap_runs.push_back({j, len, tap, t.g * Cg + ch});
      j += len;
    }
    for (int64_t r0 = r_begin; r0 < r_end; r0 += KC) {
      const int64_t kc = std::min(KC, r_end - r0);
      // B: the input channels every tap of pixel q reads, columns (tap, c):
      // one run per tap (the same for every pixel), zero in the padding.
      // Rows come in order: each pixel is the last one stepped (a division
      // per row was 12% of a bf16 l1.3x3 grad_weight).
      int64_t last = -2;
      Pixel px(r0, s.OH, s.OW);
      pack_pixel_rows(kc, t.nc, uk.nr, uk.kr, buf.b.ptr, buf.row2,
                      [&](int64_t qq, std::vector<RowRun<P>>& runs, P* cvt) {
        px = qq == last + 1 ? px.next(s.OH, s.OW) : Pixel(r0 + qq, s.OH, s.OW);
        last = qq;
        for (const TapRun& tr : tap_runs) {
          const int64_t y = px.y * s.sh + offs.h[tr.tap], x = px.x * s.sw + offs.w[tr.tap];
          const P* src = nullptr;
          if (y >= 0 && y < s.H && x >= 0 && x < s.W)
            src = run_as_packed<P>(in + px.n * is[0] + y * is[2] + x * is[3] + tr.c, tr.len,
                                   cvt + tr.j);
          runs.push_back({tr.j, tr.len, src});
        }
      }, k_pad(shape));
      const bool acc = r0 > r_begin;
      if constexpr (std::is_same_v<P, Bf16Bits> && std::is_same_v<T, float>) {
        if (transpose) {  // A: grad_out transposed, read in place
          const int64_t kp = round_up(kc, int64_t(32));
          const P* a = goT.ptr + (t.g * M + t.m0) * Rp + r0;
          for (int64_t jp = 0; jp * uk.nr < t.nc; ++jp)
            for (int64_t ip = 0; ip * uk.mr < t.mc; ++ip)
              rows_kernel.fn(kp, a + ip * uk.mr * Rp, Rp, buf.b.ptr + jp * kp * uk.nr,
                             c + ip * uk.mr * plan.NC + jp * uk.nr, plan.NC, acc);
          continue;
        }
      }
      if (!uk.strided) {  // A: pixel q's grad_out channels [m0, m0 + mc), packed
        pack_a(buf, t, r0, kc, 0, t.mc);
        gemm_tiles(*uk.packed, kc, buf.a.ptr, ceil_div(t.mc, uk.mr), buf.b.ptr,
                   ceil_div(t.nc, uk.nr), c, plan.NC, acc);
        continue;
      }
      // A in place: row k of a panel is pixel r0 + k's run of mr channels.
      // A partial last panel is packed (reading past the tile's channels
      // could run past the tensor's end).
      const P* a = reinterpret_cast<const P*>(go) + r0 * uk.lda + t.g * M + t.m0;
      const int64_t full = t.mc / uk.mr;
      if (full * uk.mr < t.mc) pack_a(buf, t, r0, kc, full * uk.mr, t.mc - full * uk.mr);
      for (int64_t jp = 0; jp * uk.nr < t.nc; ++jp) {
        const P* bp = buf.b.ptr + jp * kc * uk.nr;
        T* cp = c + jp * uk.nr;
        for (int64_t ip = 0; ip < full; ++ip)
          uk.strided->fn(kc, a + ip * uk.mr, uk.lda, bp, cp + ip * uk.mr * plan.NC, plan.NC, acc);
        if (full * uk.mr < t.mc)
          uk.strided->fn(kc, buf.a.ptr, uk.mr, bp, cp + full * uk.mr * plan.NC, plan.NC, acc);
      }
    }
  }, [&](const OutTile& t, const T* c) {  // the weight layout: column (tap, c)
    store_weight_tile(t, c, plan.NC, M, gw, ws, s.KW, [Cg](int64_t k, int64_t& ic, int64_t& tap) {
      tap = k / Cg;
      ic = k % Cg;
    });
  });
}

}  // namespace

int64_t nhwc_fused_groups(const ConvShape& s, const at::Tensor& input) {
  const auto& tiles = ukernels().bf16_igemm_tiles;
  if (input.scalar_type() != at::kBFloat16 || !tiles.fn || s.G < 2 || s.depthwise()) return 1;
  const int64_t F = tiles.ka / s.icg();
  return F == 2 && s.icg() * F == tiles.ka && s.G % F == 0 && 2 * s.ocg() * F >= tiles.nr ? F
                                                                                           : 1;
}

int igemm_nr(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return igemm_for<float>() ? igemm_for<float>()->nr : 0;
    case at::kDouble: return igemm_for<double>() ? igemm_for<double>()->nr : 0;
    case at::kBFloat16: return igemm_for<c10::BFloat16>() ? igemm_for<c10::BFloat16>()->nr : 0;
    default: return 0;
  }
}

void nhwc_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                  at::Tensor& out, const ConvShape& s) {
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, input.scalar_type(), "convext_nhwc_forward", [&] {
    forward_igemm<scalar_t>(input, weight, bias, out, s, *igemm_for<scalar_t>(s.ocg()));
  });
}

void nhwc_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                     const at::Tensor* bias, at::Tensor& grad_in, const ConvShape& s) {
  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, grad_out.scalar_type(), "convext_nhwc_grad_input",
                                 [&] {
    grad_input_igemm<scalar_t>(grad_out, weight, bias, grad_in, s,
                               *igemm_for<scalar_t>(s.icg()));
  });
}

void nhwc_grad_weight(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                      const ConvShape& s) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_nhwc_grad_weight", [&] {
    auto run = [&](const at::Tensor& go, const at::Tensor& in, at::Tensor& gw) {
      if constexpr (std::is_same_v<scalar_t, c10::BFloat16>)
        if (nhwc_gw_taps_applies(s) && nhwc_gw_taps(go, in, gw, s)) return;
      with_ukernel<scalar_t, true>([&](const auto& uk) {
        grad_weight_packed<scalar_t>(go, in, gw, s,
                                     gw_kernel<scalar_t>(uk, go, s, s.taps() * s.icg()));
      });
    };
    if (grad_out.stride(1) == 1 && input.stride(1) == 1) return run(grad_out, input, grad_w);
    // nhwc_staged: the tensors with channels apart staged whole, channels
    // innermost (the reduction runs over every image at once). The weight is
    // computed channels innermost too, then transposed: stored in place, each
    // tap's tile wrote every 9th value of lines the other taps wrote again.
    auto staged = [&](const at::Tensor& t, Scratch<scalar_t>& buf) {
      if (t.stride(1) == 1) return t;
      stage_channels_innermost(t, 0, t.size(0), buf.ptr);
      return channels_last_view(t, buf.ptr);
    };
    Scratch<scalar_t> go_buf(grad_out.stride(1) == 1 ? 0 : grad_out.numel());
    Scratch<scalar_t> in_buf(input.stride(1) == 1 ? 0 : input.numel());
    const at::Tensor go = staged(grad_out, go_buf), in = staged(input, in_buf);
    if (grad_w.stride(1) == 1) return run(go, in, grad_w);
    Scratch<scalar_t> w_buf(grad_w.numel());
    at::Tensor gw = channels_last_view(grad_w, w_buf.ptr);
    run(go, in, gw);
    if (!grad_w.is_contiguous()) return void(grad_w.copy_(gw));
    // (OC, taps, C) -> (OC, C, taps): the staging transpose, the taps as the
    // channels and the channels as the pixels (at::copy_ ran 2x slower).
    const int64_t OC = grad_w.size(0), C = grad_w.size(1), taps = s.taps();
    stage_channels_innermost(gw.view({OC, C, taps}).transpose(1, 2).unsqueeze(3), 0, OC,
                             grad_w.mutable_data_ptr<scalar_t>());
  });
}

}  // namespace cpu
}  // namespace convext
