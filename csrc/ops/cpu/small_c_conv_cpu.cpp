// Kernels for dense convs with very few input channels (see
// small_c_conv_cpu.h for the plan of each direction). All three run the
// compute type's register-blocked microkernel (ukernels/microkernel.h, kr ==
// 1: float for float/bfloat16/half, double for double) on panels packed here
// from the tensors' strides, so NCHW, channels_last and 1D share one code.
// On AMX, bfloat16 grad_input multiplies on the tiles here, and grad_weight
// runs small_c_tiles_cpu.cpp's.

#include "ops/cpu/small_c_conv_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <type_traits>
#include <vector>

#include "ops/cpu/bias.h"
#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/grid.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {

bool small_c_applies(const ConvShape& s) {
  return s.G == 1 && s.C >= 1 && s.C <= kSmallCMaxChannels &&
         s.C * s.taps() <= kSmallCMaxK && (s.KH - 1) * s.dh + 1 <= kSmallCMaxSpan &&
         (s.KW - 1) <= (kSmallCMaxSpanW - 1) / s.dw;
}

namespace {

template <typename T>
const UKernel<T>& small_c_ukernel() {
  const UKernel<T>& uk = ukernel_for<T>();
  TORCH_INTERNAL_ASSERT(uk.kr == 1, "small_c: needs a kernel with kr == 1");
  return uk;
}

// Positions i < len of the run start + i*step that fall in [lo, hi).
inline void range_in(int64_t start, int64_t step, int64_t len, int64_t lo, int64_t hi,
                     int64_t& i0, int64_t& i1) {
  valid_range(start - lo, step, len, hi - lo, i0, i1);
}

// ---------------------------------------------------------------- forward
// out[oc][oh][ow] = bias + sum_k A[oc][k] * B[k][(oh, ow)], k = (kh, c, kw).
// For a band of output rows and a few column panels, each input row the band
// reads is packed once as C*KW rows of NR columns (column j: ow = ow0 + j),
// so the B panel of output row oh is the KH consecutive input rows' blocks
// starting at row oh*sh - ph: one microkernel call of K rows (per kh when the
// kernel is dilated in H).
template <typename S>
void forward_impl(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                  at::Tensor& out, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const UKernel<T>& uk = small_c_ukernel<T>();
  const int64_t MR = uk.mr, NR = uk.nr;
  const int64_t CKW = s.C * s.KW, K = s.KH * CKW, M = s.OC, Mp = round_up(M, MR);

  Scratch<T> a(Mp * K);  // a[(m / MR) * K * MR + k * MR + m % MR]
  const S* w = weight.const_data_ptr<S>();
  const auto ws = weight.strides();
  for (int64_t m = 0; m < Mp; ++m)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t kw = 0; kw < s.KW; ++kw) {
          const int64_t k = (kh * s.C + c) * s.KW + kw;
          a.ptr[(m / MR) * K * MR + k * MR + m % MR] =
              m < M ? static_cast<T>(w[m * ws[0] + c * ws[1] + kh * ws[2] + kw * ws[3]]) : T(0);
        }
  const ScratchVector<T> b = bias_values<S, T>(bias, M);

  // Output rows per task: a band of 8 shares its input rows when strides are
  // shorter than the kernel; otherwise rows share nothing (and a huge
  // stride would make the band's span huge): one row.
  const int64_t R = s.sh < (s.KH - 1) * s.dh + 1 ? std::min<int64_t>(s.OH, 8) : 1;
  const int64_t PC = 4;                          // column panels per task
  const int64_t rows = (R - 1) * s.sh + (s.KH - 1) * s.dh + 1;
  const int64_t h_tasks = ceil_div(s.OH, R), n_panels = ceil_div(s.OW, NR);
  const int64_t w_tasks = ceil_div(n_panels, PC), tasks = s.N * h_tasks * w_tasks;
  const S* in = input.const_data_ptr<S>();
  const auto is = input.strides();
  S* o = out.mutable_data_ptr<S>();
  const auto os = out.strides();

  at::parallel_for(0, tasks, grain_size(tasks, s), [&](int64_t begin, int64_t end) {
    Scratch<T> buf(PC * rows * CKW * NR), c(Mp * NR);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / (h_tasks * w_tasks);
      const int64_t oh0 = (task / w_tasks) % h_tasks * R, p0 = task % w_tasks * PC;
      const int64_t noh = std::min(R, s.OH - oh0), np = std::min(PC, n_panels - p0);
      const int64_t nrows = (noh - 1) * s.sh + (s.KH - 1) * s.dh + 1;
      for (int64_t p = 0; p < np; ++p) {
        const int64_t ow0 = (p0 + p) * NR, ncol = std::min(NR, s.OW - ow0);
        for (int64_t r = 0; r < nrows; ++r) {
          T* dst = buf.ptr + (p * rows + r) * CKW * NR;
          const int64_t ih = oh0 * s.sh - s.ph + r;
          if (ih < 0 || ih >= s.H) {
            std::fill(dst, dst + CKW * NR, T(0));
            continue;
          }
          for (int64_t ci = 0; ci < s.C; ++ci) {
            const S* src = in + n * is[0] + ci * is[1] + ih * is[2];
            for (int64_t kw = 0; kw < s.KW; ++kw) {
              T* d = dst + (ci * s.KW + kw) * NR;
              const int64_t iw0 = ow0 * s.sw - s.pw + kw * s.dw;
              int64_t j0, j1;
              valid_range(iw0, s.sw, ncol, s.W, j0, j1);
              std::fill(d, d + j0, T(0));
              const int64_t xs = s.sw * is[3];
              const S* sp = src + (iw0 + j0 * s.sw) * is[3];
              for (int64_t j = j0; j < j1; ++j) d[j] = static_cast<T>(sp[(j - j0) * xs]);
              std::fill(d + j1, d + NR, T(0));
            }
          }
        }
      }
      for (int64_t oh = oh0; oh < oh0 + noh; ++oh) {
        for (int64_t p = 0; p < np; ++p) {
          const int64_t ow0 = (p0 + p) * NR, ncol = std::min(NR, s.OW - ow0);
          const T* bp = buf.ptr + (p * rows + (oh - oh0) * s.sh) * CKW * NR;
          for (int64_t ip = 0; ip < Mp / MR; ++ip) {
            const T* ap = a.ptr + ip * K * MR;
            T* ct = c.ptr + ip * MR * NR;
            if (s.dh == 1) {
              uk.fn(K, ap, bp, ct, NR, false);
            } else {
              for (int64_t kh = 0; kh < s.KH; ++kh)
                uk.fn(CKW, ap + kh * CKW * MR, bp + kh * s.dh * CKW * NR, ct, NR, kh > 0);
            }
          }
          S* base = o + n * os[0] + oh * os[2] + ow0 * os[3];
          if (os[1] == 1 && M > 1) {  // channels innermost
            for (int64_t j = 0; j < ncol; ++j)
              for (int64_t m = 0; m < M; ++m)
                base[j * os[3] + m] = static_cast<S>(c.ptr[m * NR + j] + b[m]);
          } else {
            for (int64_t m = 0; m < M; ++m)
              for (int64_t j = 0; j < ncol; ++j)
                base[m * os[1] + j * os[3]] = static_cast<S>(c.ptr[m * NR + j] + b[m]);
          }
        }
      }
    }
  });
}

// B of the AMX grad_input: len <= nr positions of grad_out (from g, strides
// gs) as channel pairs, b[(oc/2)*2*nr + 2j + oc%2] = g(oc, j), zero past len
// (pairs past OC are left as they are: zero). Channels innermost, a pair is
// a 4-byte word of a position: 16 positions at a time through the word
// transpose; channels apart, two channel rows interleaved.
inline void bf16_column_pairs(const Bf16Bits* g, at::IntArrayRef gs, int64_t OC, int64_t len,
                              int64_t nr, Bf16Bits* b) {
  const UKernelSet& k = ukernels();
  if (gs[1] == 1 && OC % 2 == 0) {
    for (int64_t j0 = 0; j0 < nr; j0 += 16)
      k.transpose_words16(b + 2 * j0, 4 * nr, g + j0 * gs[3], 2 * gs[3],
                          std::clamp<int64_t>(len - j0, 0, 16), OC / 2);
    return;
  }
  for (int64_t oc = 0; oc < OC; oc += 2) {
    Bf16Bits* row = b + oc * nr;
    if (gs[3] == 1) {
      k.interleave_halves(row, 2 * nr, nr, g + oc * gs[1], oc + 1 < OC ? g + (oc + 1) * gs[1] : nullptr,
                          len);
    } else {
      for (int64_t j = 0; j < len; ++j) {
        row[2 * j] = g[oc * gs[1] + j * gs[3]];
        row[2 * j + 1] = oc + 1 < OC ? g[(oc + 1) * gs[1] + j * gs[3]] : Bf16Bits(0);
      }
    }
    std::fill(row + 2 * len, row + 2 * nr, Bf16Bits(0));
  }
}

// ------------------------------------------------------------- grad_input
// col[k][(oh, ow)] = sum_oc W[oc][k] * grad_out[oc][(oh, ow)], k = (c, kh, kw),
// then grad_in[c][oh*sh - ph + kh*dh][ow*sw - pw + kw*dw] += col[k][(oh, ow)].
// A task owns a band of input rows and columns (a fixed split of the image,
// whatever the thread count) and computes every output position reaching
// it, in a fixed order, so the sums are deterministic with no races.
template <typename S>
void grad_input_impl(const at::Tensor& grad_out, const at::Tensor& weight, at::Tensor& grad_in,
                     const ConvShape& s) {
  using T = at::opmath_type<S>;
  const UKernel<T>& uk = small_c_ukernel<T>();
  // bfloat16 on AMX multiplies on the tiles (the float kernel's products
  // were 57% of the stem's grad_input): A the transposed weight in the
  // tiles' layout, B grad_out's channel pairs of 32 positions.
  const UKernel<Bf16Bits, float>& tiles = ukernels().bf16_tiles;
  const bool amx = std::is_same_v<S, c10::BFloat16> && tiles.fn &&
                   ukernels().transpose_words16 && ukernels().interleave_halves;
  const int64_t MR = amx ? tiles.mr : uk.mr, NR = amx ? tiles.nr : uk.nr;
  const int64_t K = s.C * s.taps(), Kp = round_up(K, MR), OC = s.OC;
  const int64_t OCp = amx ? round_up(OC, tiles.ka) : OC;

  // a[(k / MR) * OC * MR + oc * MR + k % MR] = W[oc][k]; on the tiles,
  // at[(k / MR) * OCp * MR + (oc / 32) * MR * 32 + (k % MR) * 32 + oc % 32]
  Scratch<T> a(amx ? 0 : Kp * OC);
  Scratch<Bf16Bits> at(amx ? Kp * OCp : 0);
  const S* w = weight.const_data_ptr<S>();
  const auto ws = weight.strides();
  for (int64_t k = 0; k < Kp; ++k) {
    const int64_t c = k / s.taps(), t = k % s.taps();
    for (int64_t oc = 0; oc < OCp; ++oc) {
      const S v = k < K && oc < OC
                      ? w[oc * ws[0] + c * ws[1] + (t / s.KW) * ws[2] + (t % s.KW) * ws[3]]
                      : S(0);
      if constexpr (std::is_same_v<S, c10::BFloat16>) {
        if (amx) {
          at.ptr[(k / MR) * OCp * MR + (oc / 32) * MR * 32 + (k % MR) * 32 + oc % 32] = v.x;
          continue;
        }
      }
      a.ptr[(k / MR) * OC * MR + oc * MR + k % MR] = static_cast<T>(v);
    }
  }

  const int64_t span_h = (s.KH - 1) * s.dh + 1, span_w = (s.KW - 1) * s.dw + 1;
  const int64_t HS = ceil_div(s.H, std::clamp<int64_t>(s.H / (8 * span_h), 1, 8));
  const int64_t WS = ceil_div(s.W, std::clamp<int64_t>(s.W / (64 * span_w), 1, 8));
  const int64_t h_bands = ceil_div(s.H, HS), w_bands = ceil_div(s.W, WS);
  const int64_t tasks = s.N * h_bands * w_bands;
  const S* go = grad_out.const_data_ptr<S>();
  const auto gs = grad_out.strides();
  S* gi = grad_in.mutable_data_ptr<S>();
  const auto is = grad_in.strides();

  // A band's sums are kept by column phase (column x of the band at
  // phase x % sw, position x / sw), so that a tap's row of the stride-sw
  // scatter is a contiguous run: added value by value, stride 2, it was
  // half of the stem's grad_input.
  const int64_t PH = std::min(s.sw, WS), PW = ceil_div(WS, s.sw);  // phases, positions
  // Per column k = (c, kh, kw): its channel, row offset and column offset
  // (worked out once, not per output row: the divisions cost more than the
  // adds).
  struct Col {
    int64_t ci, dy, dx;
  };
  std::vector<Col> cols(K);
  for (int64_t k = 0; k < K; ++k) {
    const int64_t t = k % s.taps();
    cols[k] = {k / s.taps(), (t / s.KW) * s.dh - s.ph, (t % s.KW) * s.dw - s.pw};
  }
  at::parallel_for(0, tasks, grain_size(tasks, s), [&](int64_t begin, int64_t end) {
    Scratch<T> bp(amx ? 0 : OC * NR), c(Kp * NR), acc(s.C * HS * PH * PW);
    Scratch<Bf16Bits> bt(amx ? OCp * NR : 0);
    if (amx) std::fill(bt.ptr, bt.ptr + OCp * NR, Bf16Bits(0));  // pairs past OC stay zero
    std::vector<int64_t> phase(K), shift(K);
    for (int64_t task = begin; task < end; ++task) {
      const int64_t n = task / (h_bands * w_bands);
      const int64_t h0 = (task / w_bands) % h_bands * HS, h1 = std::min(s.H, h0 + HS);
      const int64_t w0 = task % w_bands * WS, w1 = std::min(s.W, w0 + WS);
      const int64_t hl = h1 - h0, wl = w1 - w0;
      std::fill(acc.ptr, acc.ptr + s.C * hl * PH * PW, T(0));
      // column q*sw + dx of the input is band column x = q*sw + dx - w0:
      // phase x % sw (the same for every q), position q + shift
      for (int64_t k = 0; k < K; ++k) {
        const int64_t x = cols[k].dx - w0;
        phase[k] = (x % s.sw + s.sw) % s.sw;
        shift[k] = (x - phase[k]) / s.sw;
      }
      // output rows (columns) with some tap inside [h0, h1) ([w0, w1))
      int64_t oh_lo, oh_hi, ow_lo, ow_hi;
      range_in(-s.ph, s.sh, s.OH, h0 - span_h + 1, h1, oh_lo, oh_hi);
      range_in(-s.pw, s.sw, s.OW, w0 - span_w + 1, w1, ow_lo, ow_hi);
      for (int64_t oh = oh_lo; oh < oh_hi; ++oh) {
        for (int64_t q0 = ow_lo; q0 < ow_hi; q0 += NR) {
          const int64_t len = std::min(NR, ow_hi - q0);
          const S* g = go + n * gs[0] + oh * gs[2] + q0 * gs[3];
          if (amx) {
            if constexpr (std::is_same_v<S, c10::BFloat16>) {
              bf16_column_pairs(reinterpret_cast<const Bf16Bits*>(g), gs, OC, len, NR, bt.ptr);
              for (int64_t ip = 0; ip < Kp / MR; ++ip)
                tiles.fn(OCp, at.ptr + ip * OCp * MR, bt.ptr, c.ptr + ip * MR * NR, NR, false);
            }
          } else if (gs[1] == 1) {  // channels innermost: read each pixel's run in order
            for (int64_t j = 0; j < len; ++j)
              for (int64_t oc = 0; oc < OC; ++oc)
                bp.ptr[oc * NR + j] = static_cast<T>(g[j * gs[3] + oc]);
            for (int64_t oc = 0; oc < OC; ++oc)
              std::fill(bp.ptr + oc * NR + len, bp.ptr + (oc + 1) * NR, T(0));
          } else {
            for (int64_t oc = 0; oc < OC; ++oc) {
              T* d = bp.ptr + oc * NR;
              for (int64_t j = 0; j < len; ++j)
                d[j] = static_cast<T>(g[oc * gs[1] + j * gs[3]]);
              std::fill(d + len, d + NR, T(0));
            }
          }
          if (!amx)
            for (int64_t ip = 0; ip < Kp / MR; ++ip)
              uk.fn(OC, a.ptr + ip * OC * MR, bp.ptr, c.ptr + ip * MR * NR, NR, false);
          for (int64_t k = 0; k < K; ++k) {
            const int64_t ih = oh * s.sh + cols[k].dy;
            if (ih < h0 || ih >= h1) continue;
            const int64_t iw0 = q0 * s.sw + cols[k].dx;
            int64_t j0, j1;
            range_in(iw0, s.sw, len, w0, w1, j0, j1);
            if (j0 >= j1) continue;  // (then phase < PH: a column of the band)
            const int64_t base = ((cols[k].ci * hl + ih - h0) * PH + phase[k]) * PW + q0 + shift[k];
            const T* col = c.ptr + k * NR;
            for (int64_t j = j0; j < j1; ++j) acc.ptr[base + j] += col[j];
          }
        }
      }
      for (int64_t ci = 0; ci < s.C; ++ci)
        for (int64_t ih = h0; ih < h1; ++ih) {
          S* dst = gi + n * is[0] + ci * is[1] + ih * is[2] + w0 * is[3];
          const T* src = acc.ptr + (ci * hl + ih - h0) * PH * PW;
          for (int64_t r = 0; r < std::min(s.sw, wl); ++r)
            for (int64_t x = r, p = 0; x < wl; x += s.sw, ++p)
              dst[x * is[3]] = static_cast<S>(src[r * PW + p]);
        }
    }
  });
}

// ------------------------------------------------------------ grad_weight
// grad_w[oc][k] = sum_q grad_out[oc][q] * col[k][q], k = (c, kh, kw), as a
// GEMM over blocks of positions whose tile shape is the one wasting least:
//   kOcByK   M = OC, N = K (the plain MR x NR kernel)
//   kKByOc   M = K, N = OC (the same kernel, transposed)
//   kKByOcWide  M = K, N = OC on the wide indirect float kernel (6 x 64 on
//            AVX-512), its MR rows read through pointers into a few packed
//            rows per run (below): the stem's 147 x 64 fills 98% of its
//            tiles (64 x 147 on 8 x 48 tiles: 77%). Taken while a tap's
//            shift (below) stays within a block.
// Positions are split into fixed chunks (the shape decides, not the thread
// count); each chunk sums into its own partial tile, added in chunk order.
enum class WeightTiles { kOcByK, kKByOc, kKByOcWide };

template <typename S>
void grad_weight_impl(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                      const ConvShape& s) {
  using T = at::opmath_type<S>;
  const UKernel<T>& uk = small_c_ukernel<T>();
  const int64_t K = s.C * s.taps(), OC = s.OC;
  auto use = [&](int64_t m, int64_t n, int64_t mr, int64_t nr) {
    return double(m) / round_up(m, mr) * double(n) / round_up(n, nr);
  };
  WeightTiles mode = use(OC, K, uk.mr, uk.nr) >= use(K, OC, uk.mr, uk.nr) ? WeightTiles::kOcByK
                                                                          : WeightTiles::kKByOc;
  const UKernelIgemm<float>& wide = ukernels().f32_igemm_wide;
  if constexpr (std::is_same_v<T, float>) {
    if (wide.fn && wide.kr == 1 && (s.KW - 1) * s.dw / s.sw <= kc_block(uk) &&
        use(K, OC, wide.mr, wide.nr) > std::max(use(OC, K, uk.mr, uk.nr), use(K, OC, uk.mr, uk.nr)))
      mode = WeightTiles::kKByOcWide;
  }
  const bool m_is_oc = mode == WeightTiles::kOcByK;
  const int64_t MR = mode == WeightTiles::kKByOcWide ? wide.mr : uk.mr;
  const int64_t NR = mode == WeightTiles::kKByOcWide ? wide.nr : uk.nr;
  const int64_t M = m_is_oc ? OC : K, N = m_is_oc ? K : OC;
  const int64_t Mp = round_up(M, MR), Np = round_up(N, NR);
  const int64_t R = s.N * s.OH * s.OW, KC = kc_block(uk);
  if (R == 0) {  // empty batch: no position, a zero gradient
    grad_w.zero_();
    return;
  }
  // chunks of at least 8 KC blocks, at most 32, partial sums at most half
  // the conv's output
  const int64_t max_chunks = std::clamp<int64_t>(R * OC / (2 * Mp * Np), 1, 32);
  const int64_t chunk = ceil_div(R, std::clamp<int64_t>(R / (8 * KC), 1, max_chunks));
  const int64_t chunks = ceil_div(R, chunk);
  Scratch<T> partial(chunks * Mp * Np);

  const S* go = grad_out.const_data_ptr<S>();
  const S* in = input.const_data_ptr<S>();
  const auto gs = grad_out.strides();
  const auto is = input.strides();
  // grad_out's rows as panels of width Pg; im2col's as panels of width Pc,
  // or (wide) as plain rows of KC positions
  const int64_t Pg = m_is_oc ? MR : NR, Pc = m_is_oc ? NR : MR;
  const bool col_rows = mode == WeightTiles::kKByOcWide;

  // Each KC block of positions is walked as runs along ow; both operands are
  // packed over kc positions, rows past OC / K zero.
  // Wide: a block is one output row's run, and the im2col rows are not
  // packed but pointed at: tap kw reads input column (ow + a)*sw - pw + b
  // with kw*dw = a*sw + b, so taps of one phase b share one packed row of the
  // run, shifted by a positions (the stem's 7 taps, stride 2: two rows).
  std::vector<int64_t> phases, phase_of(s.KW), shift_of(s.KW);
  for (int64_t kw = 0; kw < s.KW; ++kw) {
    const int64_t b = kw * s.dw % s.sw;
    const auto it = std::find(phases.begin(), phases.end(), b);
    phase_of[kw] = it - phases.begin();
    if (it == phases.end()) phases.push_back(b);
    shift_of[kw] = kw * s.dw / s.sw;
  }
  const int64_t nph = phases.size(), LB = KC + shift_of[s.KW - 1];
  at::parallel_for(0, chunks, grain_size(chunks, s), [&](int64_t begin, int64_t end) {
    Scratch<T> pg(round_up(OC, Pg) * KC);
    Scratch<T> pc(col_rows ? s.C * s.KH * nph * LB : round_up(K, Pc) * KC);
    Scratch<T> zero(col_rows ? LB : 0);
    std::fill(zero.ptr, zero.ptr + (col_rows ? LB : 0), T(0));
    std::vector<const T*> rows(col_rows ? round_up(K, MR) : 0, zero.ptr);
    for (int64_t ch = begin; ch < end; ++ch) {
      const int64_t r0 = ch * chunk, r1 = std::min(R, r0 + chunk);
      T* cpart = partial.ptr + ch * Mp * Np;
      for (int64_t blk = r0, kc = 0; blk < r1; blk += kc) {
        kc = std::min(KC, r1 - blk);
        if (col_rows) kc = std::min(kc, s.OW - blk % s.OW);
        for (int64_t q = blk; q < blk + kc;) {
          const int64_t n = q / (s.OH * s.OW), oh = q / s.OW % s.OH, ow = q % s.OW;
          const int64_t len = std::min(s.OW - ow, blk + kc - q), kq = q - blk;
          // grad_out rows (oc)
          for (int64_t oc = 0; oc < round_up(OC, Pg); ++oc) {
            T* d = pg.ptr + (oc / Pg) * kc * Pg + kq * Pg + oc % Pg;
            if (oc >= OC) {
              for (int64_t i = 0; i < len; ++i) d[i * Pg] = T(0);
              continue;
            }
            const S* g = go + n * gs[0] + oc * gs[1] + oh * gs[2] + ow * gs[3];
            for (int64_t i = 0; i < len; ++i) d[i * Pg] = static_cast<T>(g[i * gs[3]]);
          }
          if (col_rows) {  // the run's phase rows, and each tap's pointer
            for (int64_t ci = 0; ci < s.C; ++ci)
              for (int64_t kh = 0; kh < s.KH; ++kh) {
                const int64_t ih = oh * s.sh - s.ph + kh * s.dh;
                const bool inside = ih >= 0 && ih < s.H;
                T* prow = pc.ptr + (ci * s.KH + kh) * nph * LB;
                for (int64_t b = 0; inside && b < nph; ++b) {
                  T* d = prow + b * LB;
                  const int64_t start = ow * s.sw - s.pw + phases[b];
                  const int64_t n_all = len + shift_of[s.KW - 1];
                  int64_t i0, i1;
                  valid_range(start, s.sw, n_all, s.W, i0, i1);
                  const S* src = in + n * is[0] + ci * is[1] + ih * is[2];
                  std::fill(d, d + i0, T(0));
                  for (int64_t i = i0; i < i1; ++i)
                    d[i] = static_cast<T>(src[(start + i * s.sw) * is[3]]);
                  std::fill(d + i1, d + n_all, T(0));
                }
                for (int64_t kw = 0; kw < s.KW; ++kw)
                  rows[(ci * s.KH + kh) * s.KW + kw] =
                      inside ? prow + phase_of[kw] * LB + shift_of[kw] : zero.ptr;
              }
            q += len;
            continue;
          }
          // im2col rows (c, kh, kw)
          const int64_t step = Pc;
          for (int64_t k = 0; k < round_up(K, Pc); ++k) {
            T* d = pc.ptr + (k / Pc) * kc * Pc + kq * Pc + k % Pc;
            const int64_t ci = k / s.taps(), t = k % s.taps();
            const int64_t ih = oh * s.sh - s.ph + (t / s.KW) * s.dh;
            if (k >= K || ih < 0 || ih >= s.H) {
              for (int64_t i = 0; i < len; ++i) d[i * step] = T(0);
              continue;
            }
            const int64_t iw0 = ow * s.sw - s.pw + (t % s.KW) * s.dw;
            int64_t i0, i1;
            valid_range(iw0, s.sw, len, s.W, i0, i1);
            const S* src = in + n * is[0] + ci * is[1] + ih * is[2];
            for (int64_t i = 0; i < i0; ++i) d[i * step] = T(0);
            for (int64_t i = i0; i < i1; ++i)
              d[i * step] = static_cast<T>(src[(iw0 + i * s.sw) * is[3]]);
            for (int64_t i = i1; i < len; ++i) d[i * step] = T(0);
          }
          q += len;
        }
        if (mode == WeightTiles::kKByOcWide) {
          if constexpr (std::is_same_v<T, float>) {
            for (int64_t jp = 0; jp < Np / NR; ++jp)
              for (int64_t ip = 0; ip < Mp / MR; ++ip) {
                wide.fn(1, kc, rows.data() + ip * MR, pg.ptr + jp * kc * NR,
                        cpart + ip * MR * Np + jp * NR,
                        Np, blk > r0);
              }
          }
        } else {
          const T* am = m_is_oc ? pg.ptr : pc.ptr;
          const T* bn = m_is_oc ? pc.ptr : pg.ptr;
          gemm_tiles(uk, kc, am, Mp / MR, bn, Np / NR, cpart, Np, blk > r0);
        }
      }
    }
  });

  // Sum the partials in chunk order, then write the weight's layout.
  T* sum = partial.ptr;
  for (int64_t ch = 1; ch < chunks; ++ch) {
    const T* p = partial.ptr + ch * Mp * Np;
    for (int64_t i = 0; i < Mp * Np; ++i) sum[i] += p[i];
  }
  S* gw = grad_w.mutable_data_ptr<S>();
  const auto wst = grad_w.strides();
  for (int64_t oc = 0; oc < OC; ++oc)
    for (int64_t k = 0; k < K; ++k) {
      const int64_t ci = k / s.taps(), t = k % s.taps();
      gw[oc * wst[0] + ci * wst[1] + (t / s.KW) * wst[2] + (t % s.KW) * wst[3]] =
          static_cast<S>(m_is_oc ? sum[oc * Np + k] : sum[k * Np + oc]);
    }
}

}  // namespace

void small_c_forward(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                     at::Tensor& out, const ConvShape& s) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(),
                                  "convext_small_c_forward",
                                  [&] { forward_impl<scalar_t>(input, weight, bias, out, s); });
}

void small_c_grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                        at::Tensor& grad_in, const ConvShape& s) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_small_c_grad_input",
                                  [&] { grad_input_impl<scalar_t>(grad_out, weight, grad_in, s); });
}

void small_c_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                         at::Tensor& grad_w, const ConvShape& s) {
  if (small_c_tiles_grad_weight(grad_out, input, grad_w, s)) return;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_small_c_grad_weight",
                                  [&] { grad_weight_impl<scalar_t>(grad_out, input, grad_w, s); });
}

}  // namespace cpu
}  // namespace convext
