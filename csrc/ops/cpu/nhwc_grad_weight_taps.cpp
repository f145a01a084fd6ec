// The AMX grad_weight of channels-last bfloat16 convs, with no packing in
// its GEMM loop. With stride 1, grad_weight is, tap by tap,
//   gW_t[m][c] = sum_p gout(p - shift_t)[m] * in(p)[c]
// over input pixels p: a tap shifts grad_out, not the input. A stride s
// splits the input into s*s phase planes (rows and columns r mod s), and a
// tap reads one plane, shifted by whole plane pixels: the same form, plane
// by plane. Both tensors are laid out once on one grid of Hg x Wg pixels an
// image, large enough that every shifted pixel outside grad_out lands on
// zeros:
//  - B, the input's planes, as pixel pairs interleaved (AMX's pair rows), in
//    panels of 32 channels, zero off the plane;
//  - A, grad_out transposed (a row of grid pixels per channel), zero off
//    grad_out and for a margin before and after.
// Then each tap's tile reads A from a shifted start and its plane of B
// where it is, both in place (UKernelRowsB): the input is interleaved once,
// not once per tap and column tile as grad_weight_packed does (its pair
// packing was 40% of a bf16 l1.3x3 grad_weight). The grid's margin costs
// (Hg*Wg)/(OH*OW) in multiply-adds, so nhwc_gw_taps_applies caps it.

#include "ops/cpu/nhwc_grad_weight_taps.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <utility>
#include <vector>

#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/split_reduction.h"
#include "ops/cpu/nhwc_igemm.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {
namespace {

constexpr int64_t kChunk = 32;  // the tiles' k chunk: pixels a step

// Input row y = Y*sh + r is row Y of plane r (r < sh). Tap row i reads
// input row oy*sh + i*dh - ph, which is plane r_i = (i*dh - ph) mod sh, row
// oy + q_i with q_i = floor((i*dh - ph) / sh); likewise for columns.
struct TapDim {
  std::vector<int64_t> r, q;  // per tap index along the dim
  int64_t q_min = 0, q_max = 0, plane_rows = 0;  // plane_rows: the largest plane's

  TapDim(int64_t size, int64_t K, int64_t stride, int64_t pad, int64_t dil) : r(K), q(K) {
    for (int64_t i = 0; i < K; ++i) {
      const int64_t e = i * dil - pad;
      r[i] = ((e % stride) + stride) % stride;
      q[i] = (e - r[i]) / stride;
      q_min = i ? std::min(q_min, q[i]) : q[i];
      q_max = i ? std::max(q_max, q[i]) : q[i];
    }
    plane_rows = ceil_div(size, stride);
  }
  int64_t rows(int64_t plane, int64_t size, int64_t stride) const {
    return plane < size ? ceil_div(size - plane, stride) : 0;
  }
};

// The grid: pixel (n, y, x) at n*Hg*Wg + y*Wg + x for grad_out and every
// input plane alike. Plane pixel (Y, X) meets, through tap (i, j), grad_out
// pixel (Y - q_i, X - q_j): on the grid, `delta` = -(q_i*Wg + q_j) past it.
// Hg and Wg are large enough that one out of range falls on the zero rows
// and columns past OH and OW (of the row or image before, when negative), or
// for the first image on the margin `before` the grid: plane rows reach
// Hp - q_min, and negative ones reach back q_max rows.
struct Grid {
  TapDim h, w;
  int64_t Hg, Wg, K, before, after;  // K: the grid's pixels rounded to chunks

  explicit Grid(const ConvShape& s)
      : h(s.H, s.KH, s.sh, s.ph, s.dh), w(s.W, s.KW, s.sw, s.pw, s.dw) {
    Hg = std::max(s.OH + std::max<int64_t>(0, h.q_max), h.plane_rows - std::min<int64_t>(0, h.q_min));
    Wg = std::max(s.OW + std::max<int64_t>(0, w.q_max), w.plane_rows - std::min<int64_t>(0, w.q_min));
    K = round_up(s.N * Hg * Wg, kChunk);
    before = round_up(std::max<int64_t>(0, h.q_max * Wg + w.q_max), kChunk);
    after = round_up(std::max<int64_t>(0, -(h.q_min * Wg + w.q_min)), kChunk);
  }
  // Where tap t's A starts, past a row's start: the grid's start + delta.
  int64_t a_offset(int64_t t, int64_t KW) const {
    return before - (h.q[t / KW] * Wg + w.q[t % KW]);
  }
  int64_t row() const { return before + K + after; }
};

// The input planes the taps read, (r_h, r_w) each, and tap t's among them.
struct Planes {
  std::vector<std::pair<int64_t, int64_t>> r;
  std::vector<int64_t> slot;

  Planes(const Grid& g, const ConvShape& s) : slot(s.taps()) {
    for (int64_t t = 0; t < s.taps(); ++t) {
      const std::pair<int64_t, int64_t> rt{g.h.r[t / s.KW], g.w.r[t % s.KW]};
      slot[t] = std::find(r.begin(), r.end(), rt) - r.begin();
      if (slot[t] == size()) r.push_back(rt);
    }
  }
  int64_t size() const { return int64_t(r.size()); }
};

}  // namespace

bool nhwc_gw_taps_applies(const ConvShape& s) {
  const auto& uk = ukernels().bf16_tiles_rows_b;
  if (!uk.fn || !ukernels().transpose_halves32 || !ukernels().interleave_halves) return false;
  if (s.icg() % uk.nr != 0 || s.depthwise()) return false;
  // The grid's margin adds multiply-adds; what it saves, the interleaving per
  // tap, counts for less the more output channels share it. Measured (bf16,
  // 2 threads) against grad_weight_packed: 3x3 at 56x56 and 28x28 (margin
  // 4-7%) 0.65-0.85x its time at 64-256 channels; at 14x14 (15%) 0.78-0.88x
  // up to 192 channels but 1.0-1.14x at 256-512; at 7x7 (31%) 0.83-0.93x at
  // 64-128, 1.03x at 512. Stride 2: 3x3 56x56 -> 28x28 0.62x, 1x1 0.55-0.66x
  // (at 14x14 out, 2048 channels, a tie); 1x1 stride 1 0.62-0.81x.
  // Large problems lose to the packed GEMM, which reads its operands straight
  // from the tensors: a 3x3 64->64 at 224x224 (26 MB of grids) 1.03x, a 2x2
  // stride-2 64->128 at 224x224 (19 MB) 1.15-1.23x, where every measured win
  // built at most 8 MB.
  const Grid g(s);
  const int64_t pixels = s.N * s.OH * s.OW, planes = Planes(g, s).size();
  const int64_t bytes = int64_t(sizeof(Bf16Bits)) * g.K * (s.OC + planes * s.C);
  if (bytes > (int64_t(10) << 20)) return false;
  return 8 * g.K <= 9 * pixels || (s.ocg() < 256 && 3 * g.K <= 4 * pixels);
}

bool nhwc_gw_taps(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                  const ConvShape& s) {
  const UKernelRowsB<Bf16Bits, float>& uk = ukernels().bf16_tiles_rows_b;
  const auto transpose = ukernels().transpose_halves32;
  const auto interleave = ukernels().interleave_halves;
  TORCH_INTERNAL_ASSERT(nhwc_gw_taps_applies(s) && grad_out.stride(1) == 1 &&
                        input.stride(1) == 1 && grad_out.scalar_type() == at::kBFloat16);
  const Grid g(s);
  const int64_t M = s.ocg(), Cg = s.icg(), lda = g.row(), ldb = 2 * uk.nr;
  const int64_t panel = g.K / 2 * ldb;  // B's values for nr channels
  const auto gs = grad_out.strides(), is = input.strides();
  const auto* go = reinterpret_cast<const Bf16Bits*>(grad_out.const_data_ptr<c10::BFloat16>());
  const auto* in = reinterpret_cast<const Bf16Bits*>(input.const_data_ptr<c10::BFloat16>());

  // A: OC rows (and a chunk of zero rows, so a tile's last rows stay in the
  // buffer) of grid pixels, 32 at a time through transpose_halves32; pixels
  // off grad_out read a zero row.
  Scratch<Bf16Bits> a(lda * (s.OC + kChunk));
  std::vector<Bf16Bits> zeros(std::max(s.OC, s.C), 0);
  const int64_t cells = s.N * g.Hg * g.Wg;
  std::atomic<bool> nonfinite{false};
  at::parallel_for(0, g.K / kChunk, 1, [&](int64_t b, int64_t e) {
    bool bad = false;
    const Bf16Bits* pix[kChunk];
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t q0 = blk * kChunk;
      Pixel px(q0, g.Hg, g.Wg);
      for (int64_t i = 0; i < kChunk; ++i, px = px.next(g.Hg, g.Wg))
        pix[i] = q0 + i < cells && px.y < s.OH && px.x < s.OW
                     ? go + px.n * gs[0] + px.y * gs[2] + px.x * gs[3]
                     : zeros.data();
      bad |= transpose(a.ptr + g.before + q0, lda, pix, kChunk, s.OC);
    }
    if (bad) nonfinite = true;
  });
  for (int64_t m = 0; m < s.OC + kChunk; ++m) {
    Bf16Bits* r = a.ptr + m * lda;
    if (m >= s.OC) {
      std::fill(r, r + lda, Bf16Bits(0));
      continue;
    }
    std::fill(r, r + g.before, Bf16Bits(0));
    std::fill(r + g.before + g.K, r + lda, Bf16Bits(0));
  }

  // B: for each plane a tap reads, pixel pairs of the grid, each pair's
  // channels interleaved, in panels of nr channels: a tile's pair rows are
  // then 128 bytes apart, where rows of every channel (1-2 KiB apart at
  // 256-512 channels) ran 20% slower.
  const int64_t plane_size = s.C / uk.nr * panel;
  const Planes planes(g, s);
  const std::vector<int64_t>& slot = planes.slot;
  Scratch<Bf16Bits> bmat(planes.size() * plane_size);
  for (int64_t pl = 0; pl < planes.size(); ++pl) {
    const auto [ry, rx] = planes.r[pl];
    const int64_t Hp = g.h.rows(ry, s.H, s.sh), Wp = g.w.rows(rx, s.W, s.sw);
    const Bf16Bits* base = in + (Hp && Wp ? ry * is[2] + rx * is[3] : 0);
    Bf16Bits* out = bmat.ptr + pl * plane_size;
    at::parallel_for(0, g.K / 2, 256, [&](int64_t b, int64_t e) {
      auto at = [&](int64_t q) -> const Bf16Bits* {
        const Pixel px(q, g.Hg, g.Wg);
        return q < cells && px.y < Hp && px.x < Wp
                   ? base + px.n * is[0] + px.y * s.sh * is[2] + px.x * s.sw * is[3]
                   : nullptr;
      };
      bool bad = false;
      for (int64_t kp = b; kp < e; ++kp)
        bad |= interleave(out + kp * ldb, panel, uk.nr, at(2 * kp), at(2 * kp + 1), s.C);
      if (bad) nonfinite = true;
    });
  }
  // An inf or NaN would meet the grid's zeros: 0 * inf is NaN where torch
  // has no product (an input pixel a tap never reads), and grad_out pixels
  // whose tap reads padding before the first image are never multiplied.
  if (nonfinite) return false;

  // The GEMM: rows (a group's output channels) x columns (tap, channel),
  // reduced over the grid's chunks, tiled and split as split_reduction.h says.
  const int64_t KC = 16;  // chunks a block: 512 pixels of A rows and B
  const ReductionCut cut{KC, 4 * KC, grad_out.numel() * grad_out.element_size() / 2};
  SplitReduction<float> red(s.G, M, s.taps() * Cg, g.K / kChunk, cut, uk.mr, uk.nr,
                            l2_block<Bf16Bits>(KC * kChunk, uk.mr),
                            l2_block<Bf16Bits>(KC * kChunk, uk.nr));
  const TilePlan& plan = red.plan;
  red.run(s, [] { return 0; },
          [&](int, const OutTile& t, int64_t r_begin, int64_t r_end, float* c) {
    for (int64_t r0 = r_begin; r0 < r_end; r0 += KC) {
      const int64_t k0 = r0 * kChunk, kc = std::min(KC, r_end - r0) * kChunk;
      for (int64_t j = 0; j < t.nc; j += uk.nr) {
        const int64_t col = t.n0 + j, tap = col / Cg, ch = t.g * Cg + col % Cg;
        const Bf16Bits* bp = bmat.ptr + slot[tap] * plane_size +
                             ch / uk.nr * panel + (k0 / 2) * ldb;
        const Bf16Bits* ap = a.ptr + (t.g * M + t.m0) * lda + g.a_offset(tap, s.KW) + k0;
        for (int64_t i = 0; i < t.mc; i += uk.mr)
          uk.fn(kc, ap + i * lda, lda, bp, ldb, c + i * plan.NC + j, plan.NC, r0 > r_begin);
      }
    }
  }, [&](const OutTile& t, const float* c) {  // the weight layout: column (tap, c)
    store_weight_tile(t, c, plan.NC, M, grad_w.mutable_data_ptr<c10::BFloat16>(),
                      grad_w.strides(), s.KW, [Cg](int64_t k, int64_t& ic, int64_t& tap) {
      tap = k / Cg;
      ic = k % Cg;
    });
  });
  return true;
}

}  // namespace cpu
}  // namespace convext
