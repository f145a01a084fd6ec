// AVX512-BF16 microkernel: 8 x 48 float accumulators fed by vdpbf16ps, which
// multiplies pairs of bfloat16 (k, k+1) and adds both products in float, so
// each instruction does twice the work of a float FMA.
#include "ops/cpu/ukernels/microkernel.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Only this file is built for AVX512-BF16 (see microkernel_avx2.cpp).
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bf16")
#include <immintrin.h>

namespace convext {
namespace cpu {
namespace avx512bf16 {

// A panel: ceil(kc/2) rows of MR (k, k+1) pairs; B panel: rows of NR pairs.
template <int MR, int NV>
void ukernel(int64_t kc, const Bf16Bits* a, const Bf16Bits* b, float* c, int64_t ldc,
             bool accumulate) {
  constexpr int NR = NV * 16;
  __m512 acc[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_setzero_ps();
  const int64_t kp = (kc + 1) / 2;
  for (int64_t k = 0; k < kp; ++k) {
    __m512bh bv[NV];
#pragma GCC unroll 4
    for (int j = 0; j < NV; ++j) bv[j] = (__m512bh)_mm512_loadu_si512(b + j * 32);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      int pair;
      __builtin_memcpy(&pair, a + 2 * i, sizeof(pair));
      const __m512bh av = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 4
      for (int j = 0; j < NV; ++j) acc[i][j] = _mm512_dpbf16_ps(acc[i][j], av, bv[j]);
    }
    a += 2 * MR;
    b += 2 * NR;
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

}  // namespace avx512bf16

bool ukernels_avx512bf16(UKernelSet* out) {
  out->bf16 = {&avx512bf16::ukernel<8, 3>, 8, 48, 2};
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
