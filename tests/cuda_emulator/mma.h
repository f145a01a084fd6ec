#pragma once
// Tensor-core and async-copy built-ins for the CPU emulator (test-only; see
// csrc/ops/cuda/mma.cuh for the device versions and the fragment layouts).
// mma and ldmatrix are warp collectives: every lane of the warp meets (a
// lane that skips one deadlocks), each lane hands over its fragment, and
// each gets back what the PTX ISA layout gives it. cp.async reads global
// memory (bounds-checked) when issued but writes shared memory only when a
// cp.async.wait_group retires its group, so reading a stage before waiting
// for it shows as an unwritten or stale read.

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <source_location>
#include <type_traits>

#include "cuda_emulator/device.h"

namespace cuda_emulator {

// mma_emulation.cpp
enum class MmaType { f16, bf16, tf32 };
void mma(MmaType type, float* d, const uint32_t* a, const uint32_t* b, const float* c,
         std::source_location site);
void check_aligned16(const void* p, const char* what);
void cp_async_issue(std::function<void()> land);
void cp_async_commit(std::source_location site = std::source_location::current());
void cp_async_wait_group(int n, std::source_location site);

template <typename T>
void mma_m16n8k16(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                  const float (&c)[4], std::source_location site = std::source_location::current()) {
  static_assert(std::is_same_v<T, c10::Half> || std::is_same_v<T, c10::BFloat16>, "mma type");
  mma(std::is_same_v<T, c10::Half> ? MmaType::f16 : MmaType::bf16, d, a, b, c, site);
}

inline void mma_m16n8k8_tf32(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2],
                             const float (&c)[4],
                             std::source_location site = std::source_location::current()) {
  mma(MmaType::tf32, d, a, b, c, site);
}

// cvt.rna.tf32.f32: round to nearest, ties away from zero, to 10 mantissa
// bits (the low 13 bits cleared); NaN and infinity pass unchanged.
inline uint32_t to_tf32(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  if ((u & 0x7f800000u) == 0x7f800000u) return u;
  return (u + 0x1000u) & ~0x1fffu;
}

// Each lane hands over the address of its row pointer; lanes read the rows
// they receive while the others wait at the exchange's second meeting.
template <int N, bool Trans = false, typename T>
void ldmatrix(uint32_t (&r)[N], SmemPtr<T> p,
              std::source_location site = std::source_location::current()) {
  static_assert(sizeof(T) == 2 && (N == 1 || N == 2 || N == 4), "ldmatrix: 16-bit, x1/x2/x4");
  const unsigned lane = lane_id();
  if (lane < 8u * N) check_aligned16(p.address(), "ldmatrix row address");
  uint64_t lanes[32];
  warp_exchange(0xffffffffu, reinterpret_cast<uintptr_t>(&p), lanes, site);
  auto elem = [&](int matrix, int row, int col) {
    const SmemPtr<T>& rp = *reinterpret_cast<const SmemPtr<T>*>(lanes[matrix * 8 + row]);
    const T v = rp[col];
    uint16_t bits;
    std::memcpy(&bits, &v, 2);
    return uint32_t{bits};
  };
  const int g = lane / 4, t = lane % 4;
  for (int j = 0; j < N; ++j) {
    r[j] = Trans ? elem(j, 2 * t, g) | elem(j, 2 * t + 1, g) << 16
                 : elem(j, g, 2 * t) | elem(j, g, 2 * t + 1) << 16;
  }
  __syncwarp(0xffffffffu, site);  // no lane changes its row pointer before all have read
}

template <typename T>
void cp_async_16(SmemPtr<T> dst, const T* src, int64_t i, bool ok) {
  constexpr int n = 16 / sizeof(T);
  static_assert(16 % sizeof(T) == 0, "cp.async element size");
  check_aligned16(dst.address(), "cp.async shared destination");
  T v[n];
  if (ok) {
    check_aligned16(src + i, "cp.async global source");
    for (int k = 0; k < n; ++k) v[k] = gload(src, i + k);
  } else {
    std::memset(static_cast<void*>(v), 0, sizeof v);  // src-size 0: zero-fill
  }
  cp_async_issue([dst, vals = std::to_array(v)] {
    for (int k = 0; k < n; ++k) dst[k] = vals[k];
  });
}

template <int N>
void cp_async_wait(std::source_location site = std::source_location::current()) {
  cp_async_wait_group(N, site);
}

}  // namespace cuda_emulator
