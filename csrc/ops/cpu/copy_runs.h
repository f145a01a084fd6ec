#pragma once
// Converting copies of runs between tensors and the kernels' op-math
// buffers (the depthwise kernels' plane, row and result copies): plain loops
// the compiler vectorises for the common unit and stride-2 steps, and
// bfloat16 results through the ISA's rounding store where it has one (a
// scalar float -> bfloat16 loop, with its NaN test, does not vectorise).

#include <c10/util/BFloat16.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {

// dst[j * dst_step] = src[j * src_step] for j < n, converted; the steps
// are compile-time constants where they are (1, 1) or (1, 2), so the
// common copies vectorise. Returns whether every value is finite (always
// true unless kCheck: v - v is NaN, not 0, for an infinite or NaN v).
template <bool kCheck, typename D, typename S>
[[gnu::always_inline]] inline bool copy_run(D* __restrict dst, int64_t dst_step,
                                            const S* __restrict src, int64_t src_step,
                                            int64_t n) {
  if constexpr (!kCheck && std::is_same_v<D, c10::BFloat16> && std::is_same_v<S, float>) {
    const auto store = ukernels().bf16_store;  // rounds in vector registers
    if (dst_step == 1 && src_step == 1 && store) {
      store(reinterpret_cast<Bf16Bits*>(dst), src, nullptr, n);
      return true;
    }
  }
  if constexpr (!kCheck && std::is_same_v<D, S>) {
    if (dst_step == 1 && src_step == 1 && n >= 64) {  // long runs (a call costs a short one)
      std::memcpy(dst, src, n * sizeof(D));
      return true;
    }
  }
  int bad = 0;
  auto copy = [&](auto kd, auto ks) {
    const int64_t dt = kd ? kd() : dst_step, st = ks ? ks() : src_step;
#pragma GCC ivdep
    for (int64_t j = 0; j < n; ++j) {
      const D v = static_cast<D>(src[j * st]);
      dst[j * dt] = v;
      if constexpr (kCheck) bad |= (v - v) != D(0);
    }
  };
  using Step1 = std::integral_constant<int64_t, 1>;
  using Step2 = std::integral_constant<int64_t, 2>;
  using Any = std::integral_constant<int64_t, 0>;
  if (dst_step == 1 && src_step == 1) copy(Step1(), Step1());
  else if (dst_step == 1 && src_step == 2) copy(Step1(), Step2());
  else copy(Any(), Any());
  return !bad;
}

// dst[(r + j*k) * step] = src[r][j] for r < k, j < count[r] (count[r] is
// ceil((W - r) / k) for a row of W): the k column phases of a row put back
// together. Vectorises for the common k = 2, step 1.
template <typename D, typename S>
void interleave(D* dst, int64_t step, const S* const* src, int64_t k, const int64_t* count) {
  if (k == 2 && step == 1) {
    D* __restrict d = dst;
    const S* __restrict a = src[0];
    const S* __restrict b = src[1];
    const int64_t n = count[1];  // count[0] is n or n + 1
    for (int64_t j = 0; j < n; ++j) {
      d[2 * j] = static_cast<D>(a[j]);
      d[2 * j + 1] = static_cast<D>(b[j]);
    }
    if (count[0] > n) d[2 * n] = static_cast<D>(a[n]);
    return;
  }
  for (int64_t r = 0; r < k; ++r) copy_run<false>(dst + r * step, k * step, src[r], 1, count[r]);
}

}  // namespace cpu
}  // namespace convext
