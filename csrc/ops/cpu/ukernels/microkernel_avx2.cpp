// AVX2 + FMA microkernels: 4 x 24 floats (12 accumulators of 16 ymm) and
// 4 x 12 doubles.
#include "ops/cpu/ukernels/microkernel.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
// Only this file is built for AVX2; it includes no header with inline
// functions (which could leak AVX2 code into callers on older CPUs).
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#include <immintrin.h>

namespace convext {
namespace cpu {
namespace avx2 {

struct VF {
  using T = float;
  using reg = __m256;
  static constexpr int W = 8;
  static reg zero() { return _mm256_setzero_ps(); }
  static reg load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, reg r) { _mm256_storeu_ps(p, r); }
  static reg bcast(const T* p) { return _mm256_broadcast_ss(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_ps(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_ps(a, b); }
};

struct VD {
  using T = double;
  using reg = __m256d;
  static constexpr int W = 4;
  static reg zero() { return _mm256_setzero_pd(); }
  static reg load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, reg r) { _mm256_storeu_pd(p, r); }
  static reg bcast(const T* p) { return _mm256_broadcast_sd(p); }
  static reg fma(reg a, reg b, reg c) { return _mm256_fmadd_pd(a, b, c); }
  static reg add(reg a, reg b) { return _mm256_add_pd(a, b); }
};

#include "ops/cpu/ukernels/microkernel_body.h"
#include "ops/cpu/ukernels/rowkernel_body.h"
#include "ops/cpu/ukernels/grouped_body.h"

}  // namespace avx2

bool ukernels_avx2(UKernelSet* out) {
  out->f32 = {&avx2::ukernel<avx2::VF, 4, 3>, 4, 24};
  out->f64 = {&avx2::ukernel<avx2::VD, 4, 3>, 4, 12};
  out->f32_igemm = {&avx2::ukernel_igemm<avx2::VF, 4, 3>, 4, 24};
  out->f64_igemm = {&avx2::ukernel_igemm<avx2::VD, 4, 3>, 4, 12};
  out->f32_strided = {&avx2::ukernel_strided<avx2::VF, 4, 3>, 4, 24};
  out->f64_strided = {&avx2::ukernel_strided<avx2::VD, 4, 3>, 4, 12};
  out->row_f32 = avx2::row_kernels<avx2::VF>();
  out->row_f64 = avx2::row_kernels<avx2::VD>();
  out->grouped_f32 = avx2::grouped_kernels<avx2::VF>();
  out->grouped_f64 = avx2::grouped_kernels<avx2::VD>();
  out->isa = "avx2";
  return true;
}

}  // namespace cpu
}  // namespace convext
#pragma GCC pop_options

#else
namespace convext {
namespace cpu {
bool ukernels_avx2(UKernelSet*) { return false; }
}  // namespace cpu
}  // namespace convext
#endif
