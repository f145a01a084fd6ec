#pragma once
// Register-blocked GEMM microkernels, one set per instruction set, picked at
// run time from the CPU's features (see microkernel_select.cpp).
//
// A microkernel computes one MR x NR tile:
//   C[i][j] (= or +=) sum_k A[k][i] * B[k][j],   i < MR, j < NR
// from packed panels: A as kc rows of MR values, B as kc rows of NR values.
// C is row-major with row stride ldc. Tiles are always full: the packers pad
// panels with zeros and the callers give C buffers padded to MR and NR.

#include <cstdint>

namespace convext {
namespace cpu {

template <typename T>
struct UKernel {
  void (*fn)(int64_t kc, const T* a, const T* b, T* c, int64_t ldc, bool accumulate);
  int mr;
  int nr;
};

struct UKernelSet {
  UKernel<float> f32;
  UKernel<double> f64;
  const char* isa;
};

// Defined in the per-ISA translation units. x86-64 ones return false when
// they were not compiled in; the caller checks the CPU before using them.
bool ukernels_avx512(UKernelSet* out);
bool ukernels_avx2(UKernelSet* out);
UKernelSet ukernels_generic();

// The set for this CPU (chosen once). CONVEXT_ISA=generic|avx2|avx512 caps it.
const UKernelSet& ukernels();

// Panel accessor for the packed element type of a compute type.
template <typename T> const UKernel<T>& ukernel_for();
template <> inline const UKernel<float>& ukernel_for<float>() { return ukernels().f32; }
template <> inline const UKernel<double>& ukernel_for<double>() { return ukernels().f64; }

}  // namespace cpu
}  // namespace convext
