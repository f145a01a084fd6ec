// The few-channel forward and grad_weight (small_c_conv_cpu.h) in bfloat16
// on AMX tiles; the forward for channels-last input and output: the image stem, 3 channels 7x7/2, ran 6x
// behind oneDNN when small_c multiplied it in float32.
//
// An explicit im2col of 32-pixel panels, k = ((kh*KW + kw)*C + c): in NHWC
// the KW pixels x C channels of one kernel row of a pixel's window are one
// run of the input (dilation 1), copied whole. K is zero-padded to the tile's
// 32, so that every A tile is loaded straight from the panel, and the
// indirect tile kernel multiplies it as a 1x1 conv of K channels (one tap).
// Weights are reordered to (OC, K) once and packed as its B. Each task builds
// its pixels' rows, multiplies them by every column block of B and stores
// the C rows (one pixel's channels each) with the bias, rounded once. The
// scratch is a panel per thread, not the whole im2col.
//
// The grad_weight (any layout) uses the same im2col rows as B, two positions
// interleaved into the tiles' pairs, and grad_out transposed as A; its
// positions are split into fixed chunks summed in chunk order.

#include <ATen/Parallel.h>

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/cpu/bias.h"
#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/nhwc_igemm.h"
#include "ops/cpu/small_c_conv_cpu.h"
#include "ops/cpu/stage_channels.h"

namespace convext {
namespace cpu {
namespace {

using S = c10::BFloat16;

// The panel builders use AVX-512 masked moves: a run of any length is
// copied 32 values at a time, reading and writing only its own values. This
// path runs only on AMX CPUs, which have AVX-512 (small_c_tiles_apply).
#define CONVEXT_AVX512 __attribute__((target("avx512f,avx512bw")))

CONVEXT_AVX512 inline void copy_run(Bf16Bits* dst, const Bf16Bits* src, int64_t n) {
  for (int64_t i = 0; i < n; i += 32) {
    const __mmask32 m = n - i >= 32 ? ~__mmask32(0) : (__mmask32(1) << (n - i)) - 1;
    _mm512_mask_storeu_epi16(dst + i, m, _mm512_maskz_loadu_epi16(m, src + i));
  }
}

CONVEXT_AVX512 inline void zero_run(Bf16Bits* dst, int64_t n) {
  for (int64_t i = 0; i < n; i += 32) {
    const __mmask32 m = n - i >= 32 ? ~__mmask32(0) : (__mmask32(1) << (n - i)) - 1;
    _mm512_mask_storeu_epi16(dst + i, m, _mm512_setzero_si512());
  }
}

// Row k < Kp of pixel (n, oh, ow): the window's value at k = (kh*KW + kw)*C
// + c, zero outside the input and past K.
CONVEXT_AVX512 void im2col_row(const S* in, at::IntArrayRef st, const ConvShape& s,
                               const Pixel& px, int64_t Kp, Bf16Bits* row) {
  const int64_t run = s.KW * s.C, iw0 = px.x * s.sw - s.pw;
  const bool one_run = s.dw == 1 && st[1] == 1 && st[3] == s.C && iw0 >= 0 && iw0 + s.KW <= s.W;
  for (int64_t kh = 0; kh < s.KH; ++kh) {
    Bf16Bits* dst = row + kh * run;
    const int64_t ih = px.y * s.sh - s.ph + kh * s.dh;
    if (ih < 0 || ih >= s.H) {
      zero_run(dst, run);
      continue;
    }
    const S* src = in + px.n * st[0] + ih * st[2];
    if (one_run) {
      copy_run(dst, &src[iw0 * s.C].x, run);
      continue;
    }
    for (int64_t kw = 0; kw < s.KW; ++kw) {
      const int64_t iw = iw0 + kw * s.dw;
      for (int64_t c = 0; c < s.C; ++c)
        dst[kw * s.C + c] = iw >= 0 && iw < s.W ? src[iw * st[3] + c * st[1]].x : Bf16Bits(0);
    }
  }
  zero_run(row + s.KH * run, Kp - s.KH * run);
}

// A grad_weight block's B: positions [q0, q0 + kc) of the output grid as
// pairs, each pair's im2col rows interleaved into panels of 32 columns
// (pair row p of panel jp at b + jp*kcp*32 + p*64), rows past kc zero.
void pair_im2col(const S* in, at::IntArrayRef st, const ConvShape& s, int64_t q0, int64_t kc,
                 int64_t kcp, int64_t Kp, Bf16Bits* rows, Bf16Bits* b) {
  const auto interleave = ukernels().interleave_halves;
  Pixel px(q0, s.OH, s.OW);
  for (int64_t q = 0; q < kcp; q += 2) {
    const Bf16Bits* r[2] = {nullptr, nullptr};
    for (int64_t i = 0; i < 2 && q + i < kc; ++i) {
      im2col_row(in, st, s, px, Kp, rows + i * Kp);
      r[i] = rows + i * Kp;
      px = px.next(s.OH, s.OW);
    }
    interleave(b + q * 32, kcp * 32, 32, r[0], r[1], Kp);
  }
}

}  // namespace

bool small_c_tiles_apply(const ConvShape& s, const at::Tensor& input, const at::Tensor& out) {
  const UKernelSet& k = ukernels();
  return input.scalar_type() == at::kBFloat16 && k.bf16_igemm_tiles.fn && k.bf16_store &&
         input.stride(1) == 1 && out.stride(1) == 1 && s.OC >= k.bf16_igemm_tiles.nr / 2;
}

void small_c_tiles_forward(const at::Tensor& input, const at::Tensor& weight,
                           const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  const UKernelIgemm<Bf16Bits, float>& uk = ukernels().bf16_igemm_tiles;
  const int mr = uk.mr, nr = uk.nr;
  const int64_t K = s.taps() * s.C, Kp = round_up(K, k_pad(uk)), OC = s.OC;

  // B: the weights as (OC, Kp) rows in the panels' k order (zero past K),
  // packed. Every K block is whole 32-k chunks, so A tiles are never copied.
  ScratchVector<S> wk(OC * Kp, S(0.0f));
  const S* w = weight.const_data_ptr<S>();
  const auto ws = weight.strides();
  for (int64_t j = 0; j < OC; ++j)
    for (int64_t kh = 0; kh < s.KH; ++kh)
      for (int64_t kw = 0; kw < s.KW; ++kw)
        for (int64_t c = 0; c < s.C; ++c)
          wk[j * Kp + (kh * s.KW + kw) * s.C + c] =
              w[j * ws[0] + c * ws[1] + kh * ws[2] + kw * ws[3]];
  const KBlocks kb(1, Kp, kc_block(uk), k_pad(uk));
  const int64_t no_offset = 0;
  const PackedWeights<Bf16Bits> b(1, kb, OC, nr, uk.kr, wk.data(), 0, Kp, 1, &no_offset, s);
  const ScratchVector<float> bv = bias_values<S, float>(bias, bias ? OC : 0);

  const int64_t Q = s.N * s.OH * s.OW, panels = ceil_div(Q, mr), np = ceil_div(OC, nr);
  const S* in = input.const_data_ptr<S>();
  S* o = out.mutable_data_ptr<S>();
  const auto is = input.strides(), os = out.strides();
  const auto store = ukernels().bf16_store;
  at::parallel_for(0, panels, grain_size(panels, s), [&](int64_t p0, int64_t p1) {
    Scratch<Bf16Bits> a(mr * Kp);
    Scratch<float> c(mr * b.Np);
    std::memset(a.ptr, 0, mr * Kp * sizeof(Bf16Bits));  // rows past Q stay zero
    std::vector<const Bf16Bits*> rows(mr);
    std::vector<Pixel> pix;
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t q0 = p * mr, m = std::min<int64_t>(mr, Q - q0);
      pix.assign(1, Pixel(q0, s.OH, s.OW));
      for (int64_t i = 1; i < m; ++i) pix.push_back(pix.back().next(s.OH, s.OW));
      for (int64_t i = 0; i < m; ++i) im2col_row(in, is, s, pix[i], Kp, a.ptr + i * Kp);
      for (size_t bi = 0; bi < kb.blocks.size(); ++bi) {
        const KBlock& blk = kb.blocks[bi];
        for (int i = 0; i < mr; ++i) rows[i] = a.ptr + i * Kp + blk.c0;
        const int64_t kcR = round_up(blk.kc, k_pad(uk));
        for (int64_t jp = 0; jp < np; ++jp)
          uk.fn(1, blk.kc, rows.data(), b.buf.ptr + blk.row * b.Np + jp * kcR * nr,
                c.ptr + jp * nr, b.Np, bi > 0);
      }
      for (int64_t i = 0; i < m; ++i) {
        const Pixel& px = pix[i];
        store(reinterpret_cast<Bf16Bits*>(o + px.n * os[0] + px.y * os[2] + px.x * os[3]),
              c.ptr + i * b.Np, bias ? bv.data() : nullptr, OC);
      }
    }
  });
}

bool small_c_tiles_grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                               at::Tensor& grad_w, const ConvShape& s) {
  const UKernelSet& set = ukernels();
  const UKernelRows<Bf16Bits, float>& uk = set.bf16_tiles_rows;
  if (input.scalar_type() != at::kBFloat16 || !uk.fn || !set.transpose_halves32 ||
      !set.interleave_halves)
    return false;
  if (input.stride(1) != 1 && s.C > 1) {
    // Channels apart: the input (a few channels, small) staged channels
    // innermost, so that a window row is one run (read value by value, the
    // NCHW stem's grad_weight ran 2.5x slower).
    Scratch<S> in_buf(input.numel());
    stage_channels_innermost(input, 0, input.size(0), in_buf.ptr);
    return small_c_tiles_grad_weight(grad_out, channels_last_view(input, in_buf.ptr), grad_w, s);
  }
  const int64_t K = s.taps() * s.C, Kp = round_up(K, int64_t(uk.nr)), OC = s.OC;
  const int64_t OCp = round_up(OC, int64_t(uk.mr)), R = s.N * s.OH * s.OW;
  if (R == 0) {
    grad_w.zero_();
    return true;
  }
  // Positions in blocks of KC, split into chunks with partial sums added in
  // chunk order (the split from the sizes alone: deterministic).
  constexpr int64_t KC = 512;
  const int64_t chunks = std::clamp<int64_t>(R / (8 * KC), 1, 32);
  const int64_t chunk = round_up(ceil_div(R, chunks), KC);
  const int64_t nchunks = ceil_div(R, chunk);
  Scratch<float> partial(nchunks * OCp * Kp);
  const S* go = grad_out.const_data_ptr<S>();
  const S* in = input.const_data_ptr<S>();
  const auto gs = grad_out.strides(), is = input.strides();
  at::parallel_for(0, nchunks, grain_size(nchunks, s), [&](int64_t begin, int64_t end) {
    // A: grad_out transposed, rows of KC positions per output channel (rows
    // past OC zero); B: the im2col pairs; rows: two im2col rows.
    Scratch<Bf16Bits> a(OCp * KC), b(Kp * KC), rows(2 * Kp);
    std::fill(a.ptr, a.ptr + OCp * KC, Bf16Bits(0));
    const Bf16Bits* pix[32];
    for (int64_t ch = begin; ch < end; ++ch) {
      float* c = partial.ptr + ch * OCp * Kp;
      const int64_t r0 = ch * chunk, r1 = std::min(R, r0 + chunk);
      for (int64_t q0 = r0; q0 < r1; q0 += KC) {
        const int64_t kc = std::min(KC, r1 - q0), kcp = round_up(kc, int64_t(32));
        Pixel px(q0, s.OH, s.OW);
        if (gs[1] == 1) {  // channels innermost: 32 positions at a time transposed
          for (int64_t j0 = 0; j0 < kcp; j0 += 32) {
            const int64_t nj = std::clamp<int64_t>(kc - j0, 0, 32);
            for (int64_t j = 0; j < nj; ++j, px = px.next(s.OH, s.OW))
              pix[j] = reinterpret_cast<const Bf16Bits*>(go + px.n * gs[0] + px.y * gs[2] +
                                                         px.x * gs[3]);
            set.transpose_halves32(a.ptr + j0, KC, pix, nj, OC);
          }
        } else {  // channels apart: A's rows are grad_out's, copied a row's run at a time
          for (int64_t j = 0; j < kc;) {
            const int64_t len = std::min(kc - j, s.OW - px.x);
            const S* g = go + px.n * gs[0] + px.y * gs[2] + px.x * gs[3];
            for (int64_t oc = 0; oc < OC; ++oc) {
              Bf16Bits* d = a.ptr + oc * KC + j;
              const S* src = g + oc * gs[1];
              for (int64_t i = 0; i < len; ++i) d[i] = src[i * gs[3]].x;
            }
            j += len;
            px = Pixel(q0 + j, s.OH, s.OW);
          }
          for (int64_t oc = 0; oc < OC; ++oc)
            std::fill(a.ptr + oc * KC + kc, a.ptr + oc * KC + kcp, Bf16Bits(0));
        }
        pair_im2col(in, is, s, q0, kc, kcp, Kp, rows.ptr, b.ptr);
        for (int64_t jp = 0; jp < Kp / uk.nr; ++jp)
          for (int64_t ip = 0; ip < OCp / uk.mr; ++ip)
            uk.fn(kcp, a.ptr + ip * uk.mr * KC, KC, b.ptr + jp * kcp * uk.nr,
                  c + ip * uk.mr * Kp + jp * uk.nr, Kp, q0 > r0);
      }
    }
  });
  float* sum = partial.ptr;
  for (int64_t ch = 1; ch < nchunks; ++ch)
    for (int64_t i = 0; i < OCp * Kp; ++i) sum[i] += partial.ptr[ch * OCp * Kp + i];
  S* gw = grad_w.mutable_data_ptr<S>();
  const auto ws = grad_w.strides();
  for (int64_t oc = 0; oc < OC; ++oc)  // columns k = (kh*KW + kw)*C + c
    for (int64_t k = 0; k < K; ++k) {
      const int64_t c = k % s.C, t = k / s.C;
      gw[oc * ws[0] + c * ws[1] + (t / s.KW) * ws[2] + (t % s.KW) * ws[3]] = S(sum[oc * Kp + k]);
    }
  return true;
}

}  // namespace cpu
}  // namespace convext
