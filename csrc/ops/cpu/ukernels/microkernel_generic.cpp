// Portable microkernels for CPUs without AVX2 (and non-x86 ones): 16-byte
// GCC/Clang vectors, which map to SSE2 or NEON; plain scalars elsewhere.
#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {
namespace generic {

#if defined(__GNUC__) || defined(__clang__)
template <typename Scalar>
struct Vec {
  using T = Scalar;
  static constexpr int W = 16 / sizeof(Scalar);
  typedef Scalar reg __attribute__((vector_size(16), aligned(sizeof(Scalar))));
  static reg zero() { return reg{}; }
  static reg load(const T* p) { reg r; __builtin_memcpy(&r, p, sizeof(r)); return r; }
  static void store(T* p, reg r) { __builtin_memcpy(p, &r, sizeof(r)); }
  static reg bcast(const T* p) { return reg{} + *p; }
  static reg fma(reg a, reg b, reg c) { return a * b + c; }
  static reg add(reg a, reg b) { return a + b; }
};
#else
template <typename Scalar>
struct Vec {
  using T = Scalar;
  using reg = Scalar;
  static constexpr int W = 1;
  static reg zero() { return 0; }
  static reg load(const T* p) { return *p; }
  static void store(T* p, reg r) { *p = r; }
  static reg bcast(const T* p) { return *p; }
  static reg fma(reg a, reg b, reg c) { return a * b + c; }
  static reg add(reg a, reg b) { return a + b; }
};
#endif

#include "ops/cpu/ukernels/microkernel_body.h"
#include "ops/cpu/ukernels/rowkernel_body.h"
#include "ops/cpu/ukernels/grouped_body.h"

}  // namespace generic

UKernelSet ukernels_generic() {
  using VF = generic::Vec<float>;
  using VD = generic::Vec<double>;
  UKernelSet set{{&generic::ukernel<VF, 4, 3>, 4, 3 * VF::W},
                 {&generic::ukernel<VD, 4, 3>, 4, 3 * VD::W},
                 generic::row_kernels<VF>(),
                 generic::row_kernels<VD>(),
                 "generic"};
  set.f32_igemm = {&generic::ukernel_igemm<VF, 4, 3>, 4, 3 * VF::W};
  set.f64_igemm = {&generic::ukernel_igemm<VD, 4, 3>, 4, 3 * VD::W};
  set.f32_strided = {&generic::ukernel_strided<VF, 4, 3>, 4, 3 * VF::W};
  set.f64_strided = {&generic::ukernel_strided<VD, 4, 3>, 4, 3 * VD::W};
  set.grouped_f32 = generic::grouped_kernels<VF>();
  set.grouped_f64 = generic::grouped_kernels<VD>();
  return set;
}

}  // namespace cpu
}  // namespace convext
