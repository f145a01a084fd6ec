// The few-channel forward (small_c_conv_cpu.h) in bfloat16 on AMX tiles, for
// channels-last input and output: the image stem, 3 channels 7x7/2, ran 6x
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

#include <ATen/Parallel.h>

#include <immintrin.h>

#include <cstring>
#include <vector>

#include "ops/cpu/bias.h"
#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/nhwc_igemm.h"
#include "ops/cpu/small_c_conv_cpu.h"

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

}  // namespace cpu
}  // namespace convext
