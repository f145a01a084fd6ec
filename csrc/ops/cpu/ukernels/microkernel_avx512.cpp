// AVX-512F microkernels: 8 x 48 floats (24 accumulators of 32 zmm) and
// 8 x 24 doubles; the 4 x 4 float dot-product tile (dotkernel_body.h); the
// grouped direct-conv row kernels (grouped_body.h).
#include "ops/cpu/ukernels/microkernel.h"

#include <algorithm>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Only this file is built for AVX-512 (see microkernel_avx2.cpp).
#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")
#include <immintrin.h>

namespace convext {
namespace cpu {
namespace avx512 {

struct VF {
  using T = float;
  using reg = __m512;
  static constexpr int W = 16;
  static reg zero() { return _mm512_setzero_ps(); }
  static reg load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, reg r) { _mm512_storeu_ps(p, r); }
  static reg bcast(const T* p) { return _mm512_set1_ps(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_ps(a, b); }
};

struct VD {
  using T = double;
  using reg = __m512d;
  static constexpr int W = 8;
  static reg zero() { return _mm512_setzero_pd(); }
  static reg load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, reg r) { _mm512_storeu_pd(p, r); }
  static reg bcast(const T* p) { return _mm512_set1_pd(*p); }
  static reg fma(reg a, reg b, reg c) { return _mm512_fmadd_pd(a, b, c); }
  static reg add(reg a, reg b) { return _mm512_add_pd(a, b); }
};

#include "ops/cpu/ukernels/microkernel_body.h"
#include "ops/cpu/ukernels/rowkernel_body.h"
#include "ops/cpu/ukernels/dotkernel_body.h"

void dot_f32(int64_t L, const float* a, int64_t lda, const float* b, int64_t ldb, float* c,
             int64_t ldc, bool accumulate) {
  dot_kernel<float, 16>(L, a, lda, b, ldb, c, ldc, accumulate,
                        [](__m512 (&acc)[4][4], const float* const* ar, const float* const* br) {
    __m512 av[4], bv[4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i) av[i] = _mm512_loadu_ps(ar[i]);
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) bv[j] = _mm512_loadu_ps(br[j]);
#pragma GCC unroll 4
    for (int i = 0; i < 4; ++i)
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) acc[i][j] = _mm512_fmadd_ps(av[i], bv[j], acc[i][j]);
  });
}

#include "ops/cpu/ukernels/grouped_body.h"

// Grouped expansion, a vector at a time: a permute of one load where a
// vector's indices lie within 16 consecutive elements, else a gather.
void grouped_expand_f32(float* dst, int64_t ds, const float* raw, int64_t rs, int64_t np,
                        const int32_t* idx, int64_t n) {
  if (n % 16 != 0) return grouped_expand_scalar(dst, ds, raw, rs, np, idx, n);
  struct Vec {
    int32_t lo;
    bool permute;
    __mmask16 valid;
    int32_t index[16];  // (no __m512i member: the vector need not be 64-byte aligned)
  };
  std::vector<Vec> vs(n / 16);
  for (int64_t q = 0; q < n / 16; ++q) {
    const int32_t* iq = idx + q * 16;
    int32_t lo = -1, hi = -1;
    __mmask16 valid = 0;
    for (int l = 0; l < 16; ++l) {
      if (iq[l] < 0) continue;
      valid |= __mmask16(1u << l);
      lo = lo < 0 || iq[l] < lo ? iq[l] : lo;
      hi = iq[l] > hi ? iq[l] : hi;
    }
    Vec& v = vs[q];
    v.permute = lo >= 0 && hi - lo < 16;
    v.lo = lo < 0 ? 0 : lo;
    v.valid = valid;
    for (int l = 0; l < 16; ++l) v.index[l] = iq[l] < 0 ? 0 : iq[l] - (v.permute ? lo : 0);
  }
  for (int64_t p = 0; p < np; ++p) {
    const float* r = raw + p * rs;
    float* d = dst + p * ds;
    for (int64_t q = 0; q < n / 16; ++q) {
      const Vec& v = vs[q];
      const __m512i index = _mm512_loadu_si512(v.index);
      const __m512 x = v.permute
          ? _mm512_maskz_permutexvar_ps(v.valid, index, _mm512_loadu_ps(r + v.lo))
          : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), v.valid, index, r, 4);
      _mm512_storeu_ps(d + q * 16, x);
    }
  }
}

// A 16 x 16 matrix of 4-byte values transposed in registers: rows r[i]
// become columns (unpacks within 128-bit lanes, then lane shuffles).
inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 2; ++i) {
    for (int k = 0; k < 4; ++k) {
      t[8 * i + k] = _mm512_shuffle_i32x4(r[8 * i + k], r[8 * i + 4 + k], 0x88);
      t[8 * i + 4 + k] = _mm512_shuffle_i32x4(r[8 * i + k], r[8 * i + 4 + k], 0xdd);
    }
  }
  for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_shuffle_i32x4(t[k], t[8 + k], 0x88);
    r[8 + k] = _mm512_shuffle_i32x4(t[k], t[8 + k], 0xdd);
  }
}

void transpose_words16(void* dst, int64_t ldd, const void* src, int64_t lds, int64_t nj,
                       int64_t np) {
  const char* s = static_cast<const char*>(src);
  char* d = static_cast<char*>(dst);
  for (int64_t p0 = 0; p0 < np; p0 += 16) {
    const int64_t n = std::min<int64_t>(16, np - p0);
    const __mmask16 m = n == 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1);
    __m512i r[16];
    for (int j = 0; j < 16; ++j)
      r[j] = j < nj ? _mm512_maskz_loadu_epi32(m, s + j * lds + p0 * 4) : _mm512_setzero_si512();
    transpose16(r);
    for (int64_t p = 0; p < n; ++p) _mm512_storeu_si512(d + (p0 + p) * ldd, r[p]);
  }
}

// Whether a vector's 2-byte halves hold a bfloat16 inf or NaN (exponent
// bits all set).
inline __mmask16 nonfinite_halves(__m512i v) {
  const __m512i lo = _mm512_set1_epi32(0x7f80), hi = _mm512_set1_epi32(0x7f800000);
  return _mm512_cmpeq_epi32_mask(_mm512_and_si512(v, lo), lo) |
         _mm512_cmpeq_epi32_mask(_mm512_and_si512(v, hi), hi);
}
inline bool nonfinite_half(uint16_t v) { return (v & 0x7f80) == 0x7f80; }

// 2-byte values transposed, 32 source rows at a time: rows[j][p] to
// dst[p*ldd + j]. A pair of rows becomes 4-byte words (rows[2i][p],
// rows[2i+1][p]) by masks and shifts, even columns in one vector and odd in
// another, and transpose16 turns each into a column's 16 words: its 32 values.
bool transpose_halves32(uint16_t* dst, int64_t ldd, const uint16_t* const* rows, int64_t nj,
                        int64_t np) {
  const __m512i lo16 = _mm512_set1_epi32(0xffff);
  const int64_t npair = np / 2 * 2;  // an odd last column goes value by value
  __mmask16 bad = 0;
  for (int64_t p0 = 0; p0 < npair; p0 += 32) {
    const int64_t n = std::min<int64_t>(32, npair - p0);
    const __mmask16 m = n == 32 ? __mmask16(0xffff) : __mmask16((1u << (n / 2)) - 1);
    __m512i even[16], odd[16];
    for (int i = 0; i < 16; ++i) {
      const __m512i a = 2 * i < nj ? _mm512_maskz_loadu_epi32(m, rows[2 * i] + p0)
                                   : _mm512_setzero_si512();
      const __m512i b = 2 * i + 1 < nj ? _mm512_maskz_loadu_epi32(m, rows[2 * i + 1] + p0)
                                       : _mm512_setzero_si512();
      bad |= nonfinite_halves(a) | nonfinite_halves(b);
      even[i] = _mm512_or_si512(_mm512_and_si512(a, lo16), _mm512_slli_epi32(b, 16));
      odd[i] = _mm512_or_si512(_mm512_srli_epi32(a, 16), _mm512_andnot_si512(lo16, b));
    }
    transpose16(even);
    transpose16(odd);
    for (int64_t k = 0; k < n / 2; ++k) {
      _mm512_storeu_si512(dst + (p0 + 2 * k) * ldd, even[k]);
      _mm512_storeu_si512(dst + (p0 + 2 * k + 1) * ldd, odd[k]);
    }
  }
  bool any = bad != 0;
  if (npair < np)
    for (int64_t j = 0; j < 32; ++j) {
      dst[npair * ldd + j] = j < nj ? rows[j][npair] : 0;
      any |= nonfinite_half(dst[npair * ldd + j]);
    }
  return any;
}

// Two rows of 2-byte values interleaved into column pairs, 16 columns a
// store: (a[j], b[j]) to out + (j/np)*ldo + 2*(j%np), a null row reading
// zeros. A pair of zero-extended words, b's shifted up, is the pair.
bool interleave_halves(uint16_t* out, int64_t ldo, int64_t np, const uint16_t* a,
                       const uint16_t* b, int64_t n) {
  const __m512i zero = _mm512_setzero_si512();
  int64_t j = 0, jp = 0;  // jp = j % np
  uint16_t* panel = out;
  __mmask16 bad = 0;
  for (; j + 16 <= n; j += 16) {
    const __m512i va = a ? _mm512_cvtepu16_epi32(_mm256_loadu_si256(
                               reinterpret_cast<const __m256i*>(a + j)))
                         : zero;
    const __m512i vb = b ? _mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(
                                                 reinterpret_cast<const __m256i*>(b + j))),
                                             16)
                         : zero;
    const __m512i v = _mm512_or_si512(va, vb);
    bad |= nonfinite_halves(v);
    _mm512_storeu_si512(panel + 2 * jp, v);
    if ((jp += 16) == np) {
      jp = 0;
      panel += ldo;
    }
  }
  bool any = bad != 0;
  for (; j < n; ++j, ++jp) {
    panel[2 * jp] = a ? a[j] : 0;
    panel[2 * jp + 1] = b ? b[j] : 0;
    any |= nonfinite_half(panel[2 * jp]) || nonfinite_half(panel[2 * jp + 1]);
  }
  return any;
}

}  // namespace avx512

bool ukernels_avx512(UKernelSet* out) {
  out->f32 = {&avx512::ukernel<avx512::VF, 8, 3>, 8, 48};
  out->f64 = {&avx512::ukernel<avx512::VD, 8, 3>, 8, 24};
  out->f32_igemm = {&avx512::ukernel_igemm<avx512::VF, 8, 3>, 8, 48};
  out->f64_igemm = {&avx512::ukernel_igemm<avx512::VD, 8, 3>, 8, 24};
  out->f32_igemm_wide = {&avx512::ukernel_igemm<avx512::VF, 6, 4>, 6, 64};
  out->f32_strided = {&avx512::ukernel_strided<avx512::VF, 8, 3>, 8, 48};
  out->f32_strided_wide = {&avx512::ukernel_strided<avx512::VF, 6, 4>, 6, 64};
  out->f64_strided = {&avx512::ukernel_strided<avx512::VD, 8, 3>, 8, 24};
  out->f32_dot = {&avx512::dot_f32, 4, 4, 16};
  out->transpose_words16 = &avx512::transpose_words16;
  out->transpose_halves32 = &avx512::transpose_halves32;
  out->interleave_halves = &avx512::interleave_halves;
  out->row_f32 = avx512::row_kernels<avx512::VF>();
  out->row_f64 = avx512::row_kernels<avx512::VD>();
  out->grouped_f32 = avx512::grouped_kernels<avx512::VF>();
  out->grouped_f32.expand = &avx512::grouped_expand_f32;
  out->grouped_f64 = avx512::grouped_kernels<avx512::VD>();
  out->isa = "avx512";
  return true;
}

}  // namespace cpu
}  // namespace convext
#pragma GCC pop_options

#else
namespace convext {
namespace cpu {
bool ukernels_avx512(UKernelSet*) { return false; }
}  // namespace cpu
}  // namespace convext
#endif
