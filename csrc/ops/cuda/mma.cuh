#pragma once
// Warp-level tensor-core and async-copy primitives, the only place that
// spells their PTX. Tile iterators and MMA kernels call these and nothing
// lower, so the test-only CPU emulator (tests/cuda_emulator/mma.h,
// -DCONVEXT_CUDA_EMULATOR) can replace each one by a warp-collective
// implementation of the PTX ISA's fragment layouts and check the callers'
// indexing against a plain matrix product.
//
//   mma_m16n8k16<T>(d, a, b, c)   D(16x8,f32) = A(16x16,T) * B(16x8,T) + C, T = Half/BFloat16
//   mma_m16n8k8_tf32(d, a, b, c)  D(16x8,f32) = A(16x8,tf32) * B(8x8,tf32) + C
//   to_tf32(x)                    x rounded to TF32 (cvt.rna.tf32.f32), as an mma operand
//   ldmatrix<N, Trans>(r, p)      N (1/2/4) 8x8 16-bit matrices shared -> registers; lane l
//                                 gives the address of row l%8 of matrix l/8
//   cp_async_16(dst, src, i, ok)  16 bytes global src[i..] -> shared dst (zeros when !ok)
//   cp_async_commit()             closes the group of this thread's cp.async since the last
//   cp_async_wait<N>()            waits until at most N of this thread's groups are pending
//   CONVEXT_SHARED_ALIGNED(T, name, n)  a CONVEXT_SHARED array aligned for 16-byte
//                                 cp.async / ldmatrix rows
//
// Fragment layouts (PTX ISA, "Matrix Fragments for mma.m16n8k16 with floating
// point type" and "Matrix Fragments for mma.m16n8k8", .tf32), with
// g = lane / 4, t = lane % 4; a 32-bit register holds two 16-bit elements,
// the lower column (or row, for B) in the low half:
//   A 16x16: a[i] = A[g + 8*(i%2)][2t + 8*(i/2) + {0,1}]
//   B 16x8:  b[i] = B[2t + 8*i + {0,1}][g]
//   C, D:    c[i] = C[g + 8*(i/2)][2t + i%2]
//   tf32 A 16x8: a[i] = A[g + 8*(i%2)][t + 4*(i/2)];  tf32 B 8x8: b[i] = B[t + 4*i][g]
// ldmatrix ("Warp-level matrix load instruction: ldmatrix"): r[j] holds row
// lane/4, columns 2*(lane%4) + {0,1} of matrix j; with Trans, rows
// 2*(lane%4) + {0,1} of column lane/4.

#include "ops/cuda/device.cuh"

#include <cstdint>

#ifdef CONVEXT_CUDA_EMULATOR
#include "cuda_emulator/mma.h"

namespace convext {
namespace cuda {
using ::cuda_emulator::cp_async_16;
using ::cuda_emulator::cp_async_commit;
using ::cuda_emulator::cp_async_wait;
using ::cuda_emulator::ldmatrix;
using ::cuda_emulator::mma_m16n8k16;
using ::cuda_emulator::mma_m16n8k8_tf32;
using ::cuda_emulator::to_tf32;
}  // namespace cuda
}  // namespace convext
// Emulated shared arrays live in std::vector storage, 16-byte aligned by new.
#define CONVEXT_SHARED_ALIGNED(T, name, n) CONVEXT_SHARED(T, name, n)

#else

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <type_traits>

#define CONVEXT_SHARED_ALIGNED(T, name, n) __shared__ __align__(16) T name[n]

namespace convext {
namespace cuda {

// mma.sync.aligned.<shape_types> with D, A, B, C as in the fragment table.
#define CONVEXT_MMA_SYNC(shape_types)                                                          \
  asm volatile("mma.sync.aligned." shape_types                                                 \
               " {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};\n"                 \
               : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])                                \
               : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]), "f"(c[0]), \
                 "f"(c[1]), "f"(c[2]), "f"(c[3]))

template <typename T>
__device__ __forceinline__ void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4],
                                             const uint32_t (&b)[2], const float (&c)[4]) {
  static_assert(std::is_same_v<T, c10::Half> || std::is_same_v<T, c10::BFloat16>, "mma type");
  if constexpr (std::is_same_v<T, c10::Half>) {
    CONVEXT_MMA_SYNC("m16n8k16.row.col.f32.f16.f16.f32");
  } else {
    CONVEXT_MMA_SYNC("m16n8k16.row.col.f32.bf16.bf16.f32");
  }
}

__device__ __forceinline__ void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4],
                                                 const uint32_t (&b)[2], const float (&c)[4]) {
  CONVEXT_MMA_SYNC("m16n8k8.row.col.f32.tf32.tf32.f32");
}
#undef CONVEXT_MMA_SYNC

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
  return r;
}

template <typename T>
__device__ __forceinline__ uint32_t shared_address(const T* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

template <int N, bool Trans = false, typename T>
__device__ __forceinline__ void ldmatrix(uint32_t (&r)[N], const T* p) {
  static_assert(sizeof(T) == 2 && (N == 1 || N == 2 || N == 4), "ldmatrix: 16-bit, x1/x2/x4");
  const uint32_t s = shared_address(p);
  if constexpr (N == 1 && !Trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n" : "=r"(r[0]) : "r"(s));
  } else if constexpr (N == 1) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0]) : "r"(s));
  } else if constexpr (N == 2 && !Trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(s));
  } else if constexpr (N == 2) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1]) : "r"(s));
  } else if constexpr (!Trans) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
  } else {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(s));
  }
}

// .cg (L2 only: operands are streamed once per tile); src-size 0 zero-fills,
// which is how padding taps and tile edges land as zeros without a branch.
template <typename T>
__device__ __forceinline__ void cp_async_16(T* dst, const T* src, int64_t i, bool ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(dst)),
               "l"(src + (ok ? i : 0)), "r"(ok ? 16 : 0));
}

__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

}  // namespace cuda
}  // namespace convext

#endif
