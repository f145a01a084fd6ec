#pragma once
// Channels-last (NHWC) convolution as an indirect GEMM, after XNNPACK's igemm:
//   C[q][j] = sum_{t, c} A[q][(t, c)] * B[(t, c)][j]
// q: a pixel of the output grid (the M side), j: a channel of the output (the
// N side), the reduction over taps t and channels c. With channels innermost,
// A's row for one (pixel, tap) is one contiguous run of channels, so the
// microkernel reads it in place through a row pointer (a zero row for taps in
// the padding): the activations are never gathered or packed. Only the
// weights are packed, once per call, and each C row is stored as one run of
// an output pixel's channels. The forward and grad_input kernels run on it;
// grad_weight, whose reduction runs over pixels, packs plain row copies
// instead (pack_pixel_rows below).

#include <ATen/Parallel.h>

#include <algorithm>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/conv_params.h"
#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/grid.h"
#include "ops/cpu/gemm/pack.h"

namespace convext {
namespace cpu {

// A block of the reduction: taps [t0, t1) x channels [c0, c0 + kc), one
// microkernel call. Its B rows, (t1 - t0) runs of kc rounded up to the
// kernel's padding (k_pad: kr, or a tile kernel's ka), start at row `row` of
// the packed B.
struct KBlock {
  int64_t t0, t1, c0, kc, row;
};

// The reduction of `taps` taps of Cg channels in blocks of about KC rows:
// channel chunks of at most KC (whole kr groups but the last), and when a
// tap has fewer channels than that, several taps per block. kr: the
// kernel's k_pad.
struct KBlocks {
  std::vector<KBlock> blocks;
  int64_t rows = 0;  // B rows over all blocks
  int pad = 1;       // each tap's rows are padded to a multiple of pad (= kr)
  KBlocks(int64_t taps, int64_t Cg, int64_t KC, int kr) : pad(kr) {
    if (Cg == 0) return;
    const int64_t chunk = round_up(ceil_div(Cg, ceil_div(Cg, KC)), kr);
    const int64_t per_block = std::max<int64_t>(1, KC / round_up(chunk, kr));
    for (int64_t t0 = 0; t0 < taps; t0 += per_block) {
      const int64_t t1 = std::min(taps, t0 + per_block);
      for (int64_t c0 = 0; c0 < Cg; c0 += chunk) {
        const int64_t kc = std::min(chunk, Cg - c0);
        blocks.push_back({t0, t1, c0, kc, rows});
        rows += (t1 - t0) * round_up(kc, kr);
      }
    }
  }
};

// out[2j] = a[j], out[2j + 1] = b[j] for j < n, a null source reading zeros.
template <typename P>
void interleave_pair(P* out, const P* a, const P* b, int64_t n) {
  if (a && b) {
    for (int64_t j = 0; j < n; ++j) { out[2 * j] = a[j]; out[2 * j + 1] = b[j]; }
  } else if (a) {
    for (int64_t j = 0; j < n; ++j) { out[2 * j] = a[j]; out[2 * j + 1] = P(0); }
  } else if (b) {
    for (int64_t j = 0; j < n; ++j) { out[2 * j] = P(0); out[2 * j + 1] = b[j]; }
  } else {
    std::fill(out, out + 2 * n, P(0));
  }
}

// Packs B[(t, c)][j] = w[j*js + toff[t] + c*cs] for block `blk`, j < N, as
// panels of NR columns in the microkernel's layout (pairs along k for kr 2),
// zero past N and in each tap's pad rows. dst: the block's first panel.
// Tap by tap, column by column: a column's source is one run along c (unit
// stride in a channels-last weight) and the tap's rows stay in L1, so the
// loop is a load and a store per value (row-major walks cost a cache line
// per value and were a third of a 7x7 layer's forward; all taps of a column
// at once outgrew L1 at 256 channels).
// Each tap's rows are padded with zero rows to a multiple of `pad`.
template <typename P, typename S>
void pack_weight_block(const S* w, int64_t js, int64_t cs, const int64_t* toff, int64_t N,
                       const KBlock& blk, int NR, int R, int pad, P* dst) {
  TORCH_INTERNAL_ASSERT(R == 1 || R == 2);
  const int64_t kcR = round_up(blk.kc, std::max(R, pad)), rows = (blk.t1 - blk.t0) * kcR;
  const auto transpose = ukernels().transpose_words16;
  if (transpose && cs == 1 && NR % 16 == 0 && R * sizeof(P) == 4 && sizeof(P) == sizeof(S)) {
    // A channels-last weight: a float, or a bfloat16 (c, c+1) pair, is a
    // 4-byte word, so 16 columns' words transpose in registers; an odd last
    // channel and the pad rows after, column by column. (One value at a time
    // this was a third of a bf16 l4.3x3 forward.)
    const int64_t words = blk.kc / R;
    for (int64_t p = 0; p * NR < N; ++p) {
      P* panel = dst + p * rows * NR;
      for (int64_t t = blk.t0; t < blk.t1; ++t) {
        P* tap = panel + (t - blk.t0) * kcR * NR;
        for (int64_t j0 = 0; j0 < NR; j0 += 16) {
          const int64_t jj0 = p * NR + j0, nj = std::clamp<int64_t>(N - jj0, 0, 16);
          const S* src = w + jj0 * js + toff[t] + blk.c0;
          transpose(tap + j0 * R, NR * 4, src, js * int64_t(sizeof(S)), nj, words);
          for (int64_t j = 0; j < 16; ++j) {
            P* out = tap + (j0 + j) * R;
            for (int64_t cc = R * words; cc < kcR; ++cc)
              out[(cc / R) * NR * R + cc % R] =
                  j < nj && cc < blk.kc ? pack_value<P>(src[j * js + cc]) : P(0);
          }
        }
      }
    }
    return;
  }
  if (js == 1 && sizeof(P) == sizeof(S)) {
    // Columns adjacent (grad_input's transposed channels-last weight): each
    // row is a run of columns (R = 1), or interleaves two (a pair row).
    for (int64_t p = 0; p * NR < N; ++p) {
      P* panel = dst + p * rows * NR;
      const int64_t nj = std::min<int64_t>(NR, N - p * NR);
      for (int64_t t = blk.t0; t < blk.t1; ++t) {
        P* tap = panel + (t - blk.t0) * kcR * NR;
        const S* src = w + p * NR + toff[t] + blk.c0 * cs;
        for (int64_t cc = 0; cc < kcR; cc += R) {
          const P* a = cc < blk.kc ? reinterpret_cast<const P*>(src + cc * cs) : nullptr;
          P* out = tap + (cc / R) * NR * R;
          if (R == 1) {
            if (a) std::copy(a, a + nj, out);
            std::fill(out + (a ? nj : 0), out + NR, P(0));
            continue;
          }
          const P* b = cc + 1 < blk.kc ? reinterpret_cast<const P*>(src + (cc + 1) * cs) : nullptr;
          interleave_pair(out, a, b, nj);
          std::fill(out + 2 * nj, out + 2 * NR, P(0));
        }
      }
    }
    return;
  }
  for (int64_t p = 0; p * NR < N; ++p) {
    P* panel = dst + p * rows * NR;
    for (int64_t t = blk.t0; t < blk.t1; ++t) {  // a tap's panel rows stay in L1
      for (int64_t j = 0; j < NR; ++j) {
        const int64_t jj = p * NR + j;
        P* out = panel + (t - blk.t0) * kcR * NR + j * R;  // row (t - t0)*kcR, column j
        const S* src = w + jj * js + toff[t] + blk.c0 * cs;
        const int64_t valid = jj < N ? blk.kc : 0;
        if (R == 1) {
          for (int64_t cc = 0; cc < valid; ++cc) out[cc * NR] = pack_value<P>(src[cc * cs]);
        } else {  // R == 2: pairs (cc, cc + 1) side by side
          for (int64_t cc = 0; cc < valid; ++cc)
            out[(cc >> 1) * NR * 2 + (cc & 1)] = pack_value<P>(src[cc * cs]);
        }
        for (int64_t cc = valid; cc < kcR; ++cc) out[(cc / R) * NR * R + cc % R] = P(0);
      }
    }
  }
}

// Weights packed for every group: group g, block b at buf + g*group + b.row*Np.
// Group g's B[(t, c)][j] = w[g*w_g + j*js + toff[t] + c*cs].
template <typename P>
struct PackedWeights {
  int64_t Np, group;
  Scratch<P> buf;
  template <typename S>
  PackedWeights(int64_t G, const KBlocks& kb, int64_t N, int NR, int R, const S* w, int64_t w_g,
                int64_t js, int64_t cs, const int64_t* toff, const ConvShape& s)
      : Np(round_up(N, NR)), group(kb.rows * Np), buf(G * group) {
    const int64_t nb = static_cast<int64_t>(kb.blocks.size());
    at::parallel_for(0, G * nb, grain_size(G * nb, s), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const KBlock& blk = kb.blocks[i % nb];
        const int64_t g = i / nb;
        pack_weight_block(w + g * w_g, js, cs, toff, N, blk, NR, R, kb.pad,
                          buf.ptr + g * group + blk.row * Np);
      }
    });
  }
};

// (n, y, x) of grid pixel q.
struct Pixel {
  int64_t n, y, x;
  Pixel(int64_t q, int64_t GH, int64_t GW)
      : n(q / (GH * GW)), y((q / GW) % GH), x(q % GW) {}
  // The next pixel q + 1, without a division.
  Pixel next(int64_t GH, int64_t GW) const {
    Pixel p = *this;
    if (++p.x == GW) {
      p.x = 0;
      if (++p.y == GH) p.y = 0, ++p.n;
    }
    return p;
  }
};

// dst(q, j) = bias[j] + sum_{t, c} src(q, t, c) * B_g[(t, c)][j] for every
// group g, pixel q of the grid and j < N, where
//   src(q, t, c) = src view at (n, channel g*src_g + c, y*step_h + off_h[t],
//                  x*step_w + off_w[t]), zero outside (channel stride 1),
//   dst(q, j)    = dst view at (n, channel g*dst_g + j, y*step_h + off_h,
//                  x*step_w + off_w), with the dst view's own steps/offsets,
// both views over the same grid of Nimg images (src.GH x src.GW).
// Each C element sums its blocks in one fixed order, whatever the tiling.
template <typename P, typename T, typename S>
void nhwc_igemm(const UKernelIgemm<P, T>& uk, int64_t G, int64_t Nimg,
                const GridView<const P>& src, int64_t src_g, const GridView<S>& dst,
                int64_t dst_g, int64_t N, const KBlocks& kb, const PackedWeights<P>& b,
                const T* bias, const ConvShape& s) {
  const int64_t GH = src.GH, GW = src.GW, Q = Nimg * GH * GW;
  const int64_t KC = kc_block(uk);
  const int mr = uk.mr, nr = uk.nr;
  const TilePlan plan = plan_tiles(G, Q, N, mr, nr, l2_block<P>(KC, mr), l2_block<P>(KC, nr));
  int64_t max_kc = 0, max_ks = 0;
  for (const KBlock& blk : kb.blocks) {
    max_kc = std::max(max_kc, blk.kc);
    max_ks = std::max(max_ks, blk.t1 - blk.t0);
  }
  const ScratchVector<P> zero(std::max<int64_t>(max_kc, 1), P(0));  // the padding's row
  const int64_t tasks = G * plan.tasks_per_group();
  const auto bf16_store = ukernels().bf16_store;  // bfloat16 rows' converting store

  at::parallel_for(0, tasks, grain_size(tasks, s), [&](int64_t begin, int64_t end) {
    Scratch<T> c(plan.MC * plan.NC);
    // C rows rounded to S (bfloat16 stored with channels apart, every other
    // pixel: the strided store below).
    const bool strided_rows = dst.sc != 1 && dst.step_w * dst.sw != 1;
    ScratchVector<S> rounded(std::is_same_v<S, c10::BFloat16> && strided_rows ? plan.MC * plan.NC
                                                                               : 0);
    std::vector<const P*> rows(plan.MC * max_ks);
    std::vector<Pixel> pix;
    // Per pixel: its offset in src at tap offset (0, 0), and that position.
    std::vector<int64_t> pix_off, pix_y, pix_x;
    // The pixels (and, with one K block, the row pointers) of the previous
    // task: tasks run the groups of a pixel block one after the other, and
    // a group's rows are the previous group's moved by src_g.
    int64_t last_q0 = -1, last_g = 0;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task % G, rest = task / G;  // groups fastest
      const int64_t mb = rest / plan.n_blocks, nb = rest % plan.n_blocks;
      const int64_t q0 = mb * plan.MC, mq = std::min(plan.MC, Q - q0);
      const int64_t j0 = nb * plan.NC, nj = std::min(plan.NC, N - j0);
      const int64_t mp = ceil_div(mq, mr), np = ceil_div(nj, nr);
      const bool same_pixels = q0 == last_q0;
      if (!same_pixels) {
        pix.clear();
        pix_off.clear();
        pix_y.clear();
        pix_x.clear();
        for (int64_t i = 0; i < mq; ++i) {
          pix.push_back(i == 0 ? Pixel(q0, GH, GW) : pix.back().next(GH, GW));
          const Pixel& px = pix.back();
          pix_y.push_back(px.y * src.step_h);
          pix_x.push_back(px.x * src.step_w);
          pix_off.push_back(px.n * src.sn + pix_y.back() * src.sh + pix_x.back() * src.sw);
        }
      }
      const P* in = src.base + g * src_g;
      const bool moved_rows = same_pixels && kb.blocks.size() == 1;
      if (moved_rows && g != last_g) {
        const int64_t delta = (g - last_g) * src_g;
        const int64_t n_rows = mp * (kb.blocks[0].t1 - kb.blocks[0].t0) * mr;
        for (int64_t r = 0; r < n_rows; ++r)
          if (rows[r] != zero.data()) rows[r] += delta;
      }
      last_q0 = q0;
      last_g = g;

      for (size_t bi = 0; bi < kb.blocks.size(); ++bi) {
        const KBlock& blk = kb.blocks[bi];
        const int64_t ks = blk.t1 - blk.t0, kcR = round_up(blk.kc, k_pad(uk));
        // Row pointers, per panel of mr pixels: rows[(ip*ks + tt)*mr + i].
        for (int64_t tt = 0; tt < ks && !moved_rows; ++tt) {
          const int64_t dy = src.toff_h(blk.t0 + tt), dx = src.toff_w(blk.t0 + tt);
          const P* tap = in + dy * src.sh + dx * src.sw + blk.c0;
          for (int64_t ip = 0; ip < mp; ++ip) {
            const P** r = rows.data() + (ip * ks + tt) * mr;
            const int64_t n = std::min<int64_t>(mr, mq - ip * mr);
            for (int64_t i = 0; i < n; ++i) {
              const int64_t q = ip * mr + i, y = pix_y[q] + dy, x = pix_x[q] + dx;
              const bool inside = uint64_t(y) < uint64_t(src.H) && uint64_t(x) < uint64_t(src.W);
              r[i] = inside ? tap + pix_off[q] : zero.data();
            }
            for (int64_t i = n; i < mr; ++i) r[i] = zero.data();
          }
        }
        const P* bp = b.buf.ptr + g * b.group + blk.row * b.Np + (j0 / nr) * ks * kcR * nr;
        for (int64_t jp = 0; jp < np; ++jp) {
          for (int64_t ip = 0; ip < mp; ++ip) {
            uk.fn(ks, blk.kc, rows.data() + ip * ks * mr, bp + jp * ks * kcR * nr,
                  c.ptr + ip * mr * plan.NC + jp * nr, plan.NC, bi > 0);
          }
        }
      }
      if (kb.blocks.empty()) std::fill(c.ptr, c.ptr + plan.MC * plan.NC, T(0));

      // Store: per pixel, a run of nj channels (channels innermost), or
      // per channel, runs of pixels (channels apart).
      S* out = dst.base + (g * dst_g + j0) * dst.sc;
      const int64_t oh = dst.toff_h(0), ow = dst.toff_w(0);
      for (int64_t i = 0; i < mq; ++i) {
        const Pixel& px = pix[i];
        S* d = out + px.n * dst.sn + (px.y * dst.step_h + oh) * dst.sh +
               (px.x * dst.step_w + ow) * dst.sw;
        const T* row = c.ptr + i * plan.NC;
        if constexpr (std::is_same_v<S, c10::BFloat16> && std::is_same_v<T, float>) {
          if (dst.sc == 1 && bf16_store) {
            bf16_store(reinterpret_cast<Bf16Bits*>(d), row, bias ? bias + g * N + j0 : nullptr, nj);
            continue;
          }
        }
        if (dst.sc == 1) {  // disjoint runs, the bias test hoisted: this vectorises
          S* __restrict dv = d;
          const T* __restrict rv = row;
          if (bias) {
            const T* __restrict bv = bias + g * N + j0;
            for (int64_t j = 0; j < nj; ++j) dv[j] = static_cast<S>(rv[j] + bv[j]);
          } else {
            for (int64_t j = 0; j < nj; ++j) dv[j] = static_cast<S>(rv[j]);
          }
        } else {
          // Channels apart (an NCHW output): the pixels from this one on
          // that share its output row, stored channel by channel.
          int64_t len = 1;
          while (i + len < mq && pix[i + len].x == px.x + len && pix[i + len].y == px.y &&
                 pix[i + len].n == px.n)
            ++len;
          const int64_t xs = dst.step_w * dst.sw;
          if constexpr (std::is_same_v<S, c10::BFloat16> && std::is_same_v<T, float>) {
            if (xs != 1 && bf16_store) {
              // Every other pixel (a stride phase): rows rounded with the
              // vector store first, then moved as bits.
              for (int64_t l = 0; l < len; ++l)
                bf16_store(reinterpret_cast<Bf16Bits*>(rounded.data()) + l * nj,
                           row + l * plan.NC, bias ? bias + g * N + j0 : nullptr, nj);
              for (int64_t j = 0; j < nj; ++j)
                for (int64_t l = 0; l < len; ++l) d[j * dst.sc + l * xs] = rounded[l * nj + j];
              i += len - 1;
              continue;
            }
          }
          for (int64_t j = 0; j < nj; ++j) {
            const T bj = bias ? bias[g * N + j0 + j] : T(0);
            S* __restrict dj = d + j * dst.sc;
            const T* __restrict rj = row + j;
            if (xs == 1) {  // a unit-stride run: this vectorises (gathers from C)
              for (int64_t l = 0; l < len; ++l) dj[l] = static_cast<S>(rj[l * plan.NC] + bj);
            } else {
              for (int64_t l = 0; l < len; ++l) dj[l * xs] = static_cast<S>(rj[l * plan.NC] + bj);
            }
          }
          i += len - 1;
        }
      }
    }
  });
}

// A run of one packed row: columns [j0, j0 + len) come from src[0, len), a
// contiguous run in the packed type, or are zero when src is null.
template <typename P>
struct RowRun {
  int64_t j0, len;
  const P* src;
};

// p as a run of the packed type: the source itself when they share bits
// (float, double, bfloat16 bits), else converted into buf.
template <typename P, typename S>
const P* run_as_packed(const S* p, int64_t len, P* buf) {
  if constexpr (sizeof(P) == sizeof(S) && !std::is_same_v<S, c10::Half>) {
    return reinterpret_cast<const P*>(p);
  } else {
    for (int64_t i = 0; i < len; ++i) buf[i] = pack_value<P>(p[i]);
    return buf;
  }
}

// Packs rows qq < kc of a matrix X[qq][j], j < nj, as panels of NP columns
// in the microkernel's layout (pairs of rows interleaved for R = 2):
//   dst[p*kcR*NP + (qq/R)*NP*R + j*R + qq%R] = X[qq][p*NP + j],
// zero past nj and past kc. runs(qq, out, buf) appends row qq's runs to out,
// split at the same columns for every row (buf: room for nj converted
// values, see run_as_packed). grad_weight packs both operands this way: in
// NHWC a row is one pixel's channels, one or a few runs copied straight
// into the panels (a memcpy per panel for R = 1, an interleave for R = 2).
// A tile kernel's panels are padded to a multiple of kpad rows (its A, a
// transpose, is packed from a transposed copy instead: nhwc_conv_cpu.cpp).
template <typename P, typename Runs>
void pack_pixel_rows(int64_t kc, int64_t nj, int NP, int R, P* dst, ScratchVector<P>& buf,
                     Runs runs, int kpad = 1) {
  const int64_t kcR = round_up(kc, std::max(R, kpad)), panels = ceil_div(nj, NP), tail = nj % NP;
  buf.resize(2 * std::max<int64_t>(nj, 1));
  zero_pad_rows(dst, panels, NP, round_up(kc, R), kcR);
  std::vector<RowRun<P>> r0, r1;
  // Where the runs' values go, worked out on the first row (every row is
  // split alike): values [off, off + n) of run `run` at `out` past the row's
  // start, one piece per panel a run crosses. No division per row.
  struct Piece {
    size_t run;
    int64_t off, n, out;
  };
  std::vector<Piece> pieces;
  // bfloat16 pairs interleave a whole run at a time in vectors
  // (interleave_halves) when it starts a panel: 4x fewer calls than a piece
  // per panel, and 16 columns a store.
  decltype(UKernelSet::interleave_halves) il = nullptr;
  if constexpr (std::is_same_v<P, Bf16Bits>)
    if (R == 2 && NP % 16 == 0) il = ukernels().interleave_halves;
  std::vector<std::pair<size_t, int64_t>> whole;  // (run, its panel's offset)
  for (int64_t qq = 0; qq < kc; qq += R) {
    r0.clear();
    r1.clear();
    runs(qq, r0, buf.data());
    const bool second = R == 2 && qq + 1 < kc;
    if (second) runs(qq + 1, r1, buf.data() + nj);
    if (qq == 0) {
      for (size_t i = 0; i < r0.size(); ++i) {
        if (il && r0[i].j0 % NP == 0) {
          whole.push_back({i, (r0[i].j0 / NP) * kcR * NP});
          continue;
        }
        for (int64_t j = r0[i].j0; j < r0[i].j0 + r0[i].len;) {
          const int64_t jj = j % NP, n = std::min(r0[i].j0 + r0[i].len - j, NP - jj);
          pieces.push_back({i, j - r0[i].j0, n, (j / NP) * kcR * NP + jj * R});
          j += n;
        }
      }
    }
    P* rows = dst + (qq / R) * NP * R;
    if constexpr (std::is_same_v<P, Bf16Bits>)
      for (const auto& [i, off] : whole)
        il(rows + off, kcR * NP, NP, r0[i].src, second ? r1[i].src : nullptr, r0[i].len);
    for (const Piece& pc : pieces) {
      P* out = rows + pc.out;
      const P* s0 = r0[pc.run].src ? r0[pc.run].src + pc.off : nullptr;
      if (R == 1) {
        if (s0) std::memcpy(out, s0, pc.n * sizeof(P));
        else std::fill(out, out + pc.n, P(0));
      } else {
        const P* s1 = second && r1[pc.run].src ? r1[pc.run].src + pc.off : nullptr;
        interleave_pair(out, s0, s1, pc.n);
      }
    }
    if (tail) {
      P* out = rows + (panels - 1) * kcR * NP + tail * R;
      std::fill(out, out + (NP - tail) * R, P(0));
    }
  }
}

}  // namespace cpu
}  // namespace convext
