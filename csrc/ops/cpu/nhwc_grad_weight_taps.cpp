// The AMX grad_weight of stride-1 channels-last convs, with no packing in
// its GEMM loop. grad_weight is, tap by tap,
//   gW_t[m][c] = sum_p gout(p - shift_t)[m] * in(p)[c]
// over input pixels p: a tap shifts grad_out, not the input. Both tensors are
// laid out once on one grid of Hg x Wg pixels an image, large enough that
// every shifted pixel outside grad_out lands on zeros:
//  - B, the input, as pixel pairs interleaved (AMX's pair rows), every
//    channel of a pair side by side, zero off the input;
//  - A, grad_out transposed (a row of grid pixels per channel), zero off
//    grad_out and for a margin before and after.
// Then each tap's tile reads A from a shifted start and B where it is, both
// in place (UKernelRowsB): the input is interleaved once, not once per tap
// and column tile as grad_weight_packed does (its pair packing was 40% of a
// bf16 l1.3x3 grad_weight). The grid's margin costs (Hg*Wg)/(H*W) in
// multiply-adds, so nhwc_gw_taps_applies caps it.

#include "ops/cpu/nhwc_grad_weight_taps.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
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

// The grid: pixel (n, y, x) at n*Hg*Wg + y*Wg + x for input and grad_out
// alike. Input pixel (y, x) reads, through tap (i, j), the grad_out pixel
// (y + ph - i*dh, x + pw - j*dw): on the grid, `delta` = (ph - i*dh)*Wg +
// pw - j*dw past it. Hg and Wg are large enough that one out of range falls
// on the zero rows and columns past OH and OW (of the row or image before,
// when negative), or for the first image on the margin `before` the grid.
struct Grid {
  int64_t Hg, Wg, K, before, after;  // K: the grid's pixels rounded to chunks

  // Input pixels stay below H + ph rows (W + pw columns), so the grad_out
  // pixels their taps read stay below too: past OH (OW) they are zeros,
  // and negative ones reach back at most dh*(KH-1) - ph = H + ph - OH rows.
  explicit Grid(const ConvShape& s) {
    const int64_t reach_h = s.dh * (s.KH - 1) - s.ph, reach_w = s.dw * (s.KW - 1) - s.pw;
    Hg = std::max(s.H + s.ph, s.OH);
    Wg = std::max(s.W + s.pw, s.OW);
    K = round_up(s.N * Hg * Wg, kChunk);
    const int64_t most = s.ph * Wg + s.pw, least = -(reach_h * Wg + reach_w);
    before = round_up(std::max<int64_t>(0, -least), kChunk);
    after = round_up(std::max<int64_t>(0, most), kChunk);
  }
  // Where tap t's A starts, past a row's start: the grid's start + delta.
  int64_t a_offset(const ConvShape& s, int64_t t) const {
    return before + (s.ph - (t / s.KW) * s.dh) * Wg + (s.pw - (t % s.KW) * s.dw);
  }
  int64_t row() const { return before + K + after; }
};

}  // namespace

bool nhwc_gw_taps_applies(const ConvShape& s) {
  const auto& uk = ukernels().bf16_tiles_rows_b;
  if (!uk.fn || !ukernels().transpose_halves32 || !ukernels().interleave_halves) return false;
  if (s.sh != 1 || s.sw != 1 || s.icg() % uk.nr != 0 || s.depthwise()) return false;
  // The grid's margin adds multiply-adds; what it saves, the interleaving per
  // tap, counts for less the more output channels share it. Measured (bf16,
  // 2 threads) against grad_weight_packed: 3x3 at 56x56 and 28x28 (margin
  // 4-7%) 0.65-0.85x its time at 64-256 channels; at 14x14 (15%) 0.78-0.88x
  // up to 192 channels but 1.0-1.14x at 256-512; at 7x7 (31%) 0.83-0.93x at
  // 64-128, 1.03x at 512.
  const Grid g(s);
  const int64_t pixels = s.N * s.OH * s.OW;
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

  // B: pixel pairs of the grid, each pair's channels interleaved, in panels
  // of nr channels: a tile's pair rows are then 128 bytes apart, where rows
  // of every channel (1-2 KiB apart at 256-512 channels) ran 20% slower.
  Scratch<Bf16Bits> bmat(s.C / uk.nr * panel);
  at::parallel_for(0, g.K / 2, 256, [&](int64_t b, int64_t e) {
    auto at = [&](int64_t q) -> const Bf16Bits* {
      const Pixel px(q, g.Hg, g.Wg);
      return q < cells && px.y < s.H && px.x < s.W ? in + px.n * is[0] + px.y * is[2] +
                                                          px.x * is[3]
                                                    : nullptr;
    };
    bool bad = false;
    for (int64_t kp = b; kp < e; ++kp)
      bad |= interleave(bmat.ptr + kp * ldb, panel, uk.nr, at(2 * kp), at(2 * kp + 1), s.C);
    if (bad) nonfinite = true;
  });
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
        const Bf16Bits* bp = bmat.ptr + ch / uk.nr * panel + (k0 / 2) * ldb;
        const Bf16Bits* ap = a.ptr + (t.g * M + t.m0) * lda + g.a_offset(s, tap) + k0;
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
