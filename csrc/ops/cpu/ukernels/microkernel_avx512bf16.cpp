// AVX512-BF16 microkernel: 8 x 48 float accumulators fed by vdpbf16ps, which
// multiplies pairs of bfloat16 (k, k+1) and adds both products in float, so
// each instruction does twice the work of a float FMA.
#include "ops/cpu/ukernels/microkernel.h"

#include <algorithm>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Only this file is built for AVX512-BF16 (see microkernel_avx2.cpp).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bf16")
#include <immintrin.h>

namespace convext {
namespace cpu {
namespace avx512bf16 {

// acc[i][j] = sum over ks taps of kp pair rows of pair(t, i, k) . B pairs,
// pair() giving A's (k, k+1) bfloat16 pair as 32 bits; then stored to c.
template <int MR, int NV, class PairAt>
inline void ukernel_loop(int64_t ks, int64_t kp, PairAt pair_at, const Bf16Bits* b, float* c,
                         int64_t ldc, bool accumulate) {
  constexpr int NR = NV * 16;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int64_t t = 0; t < ks; ++t) {
    for (int64_t k = 0; k < kp; ++k) {
      __m512bh bv[NV];
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) bv[j] = (__m512bh)_mm512_loadu_si512(b + j * 32);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512bh av = (__m512bh)_mm512_set1_epi32(pair_at(t, i, k));
#pragma GCC unroll 4
        for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
      }
      b += 2 * NR;
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) {
      float* p = c + i * ldc + j * 16;
      _mm512_storeu_ps(p, accumulate ? _mm512_add_ps(acc[i][j], _mm512_loadu_ps(p)) : acc[i][j]);
    }
  }
}

inline int load_pair(const Bf16Bits* p) {
  int pair;
  __builtin_memcpy(&pair, p, sizeof(pair));
  return pair;
}

// A panel: ceil(kc/2) rows of MR (k, k+1) pairs; B panel: rows of NR pairs.
template <int MR, int NV>
void ukernel(int64_t kc, const Bf16Bits* a, const Bf16Bits* b, float* c, int64_t ldc,
             bool accumulate) {
  ukernel_loop<MR, NV>(1, (kc + 1) / 2,
                       [a](int64_t, int i, int64_t k) { return load_pair(a + 2 * (k * MR + i)); },
                       b, c, ldc, accumulate);
}

// Indirect A (see UKernelIgemm): rows read in place, pairs along k; an odd
// kc's last element is read alone (the high half of its pair is zero), so a
// row is never read past its end.
template <int MR, int NV>
void ukernel_igemm(int64_t ks, int64_t kc, const Bf16Bits* const* a, const Bf16Bits* b,
                   float* c, int64_t ldc, bool accumulate) {
  const int64_t kp = (kc + 1) / 2, full = kc / 2;
  ukernel_loop<MR, NV>(ks, kp, [a, full](int64_t t, int i, int64_t k) {
    const Bf16Bits* p = a[t * MR + i] + 2 * k;
    return k < full ? load_pair(p) : int(*p);
  }, b, c, ldc, accumulate);
}

#include "ops/cpu/ukernels/dotkernel_body.h"

// Dot-product tile: 32 bfloat16 per vector, (l, l+1) pairs summed per lane.
void dot_bf16(int64_t L, const Bf16Bits* a, int64_t lda, const Bf16Bits* b, int64_t ldb,
              float* c, int64_t ldc, bool accumulate) {
  dot_kernel<Bf16Bits, 32>(L, a, lda, b, ldb, c, ldc, accumulate,
                           [](__m512 (&acc)[4][4], const Bf16Bits* const* ar,
                              const Bf16Bits* const* br) {
    __m512bh av[4], bv[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) av[i] = (__m512bh)_mm512_loadu_si512(ar[i]);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) bv[j] = (__m512bh)_mm512_loadu_si512(br[j]);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av[i], bv[j]);
  });
}

// A finished float row stored as bfloat16, 16 values per vcvtneps2bf16.
void store_bf16(Bf16Bits* dst, const float* src, const float* bias, int64_t n) {
  for (int64_t j = 0; j < n; j += 16) {
    const int64_t len = std::min<int64_t>(16, n - j);
    const __mmask16 m = len == 16 ? __mmask16(0xFFFF) : __mmask16((1u << len) - 1);
    __m512 v = _mm512_maskz_loadu_ps(m, src + j);
    if (bias) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, bias + j));
    const __m256i h = (__m256i)_mm512_cvtneps_pbh(v);
    if (len == 16) {
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j), h);
    } else {  // (a masked 16-bit store needs AVX512-BW, which the ISA check does not ask for)
      alignas(32) Bf16Bits tail[16];
      _mm256_store_si256(reinterpret_cast<__m256i*>(tail), h);
      for (int64_t l = 0; l < len; ++l) dst[j + l] = tail[l];
    }
  }
}


}  // namespace avx512bf16

bool ukernels_avx512bf16(UKernelSet* out) {
  out->bf16 = {&avx512bf16::ukernel<8, 3>, 8, 48, 2};
  out->bf16_igemm = {&avx512bf16::ukernel_igemm<8, 3>, 8, 48, 2};
  out->bf16_dot = {&avx512bf16::dot_bf16, 4, 4, 32};
  out->bf16_store = &avx512bf16::store_bf16;
  out->isa = "avx512+bf16";
  return true;
}

}  // namespace cpu
}  // namespace convext
#pragma GCC pop_options

#else
namespace convext {
namespace cpu {
bool ukernels_avx512bf16(UKernelSet*) { return false; }
}  // namespace cpu
}  // namespace convext
#endif
