#pragma once
// Packing GEMM operands into microkernel panels, converting the tensor's
// element type S to the compute type T (bfloat16/half -> float) on the way.

#include <cstring>
#include <vector>

#include "ops/cpu/gemm/grid.h"

namespace convext {
namespace cpu {

// Writes rows k of a GridView for the columns of one segment:
//   dst[i * dst_stride] = view(k, seg.q0 + i),  i < seg.len
template <typename T, typename S>
inline void gather_row(const GridView<const S>& v, int64_t k, const Segment& seg,
                       T* dst, int64_t dst_stride) {
  const int64_t c = k / v.ntaps, t = k - c * v.ntaps;
  const int64_t y = seg.y * v.step_h + v.toff_h(t);
  if (y < 0 || y >= v.H) {
    for (int64_t i = 0; i < seg.len; ++i) dst[i * dst_stride] = T(0);
    return;
  }
  const int64_t x = seg.x0 * v.step_w + v.toff_w(t);
  int64_t lo, hi;
  valid_range(x, v.step_w, seg.len, v.W, lo, hi);
  const S* src = v.base + seg.n * v.sn + c * v.sc + y * v.sh + x * v.sw;
  const int64_t ss = v.step_w * v.sw;
  for (int64_t i = 0; i < lo; ++i) dst[i * dst_stride] = T(0);
  if (ss == 1 && dst_stride == 1) {
    for (int64_t i = lo; i < hi; ++i) dst[i] = static_cast<T>(src[i]);
  } else {
    for (int64_t i = lo; i < hi; ++i) dst[i * dst_stride] = static_cast<T>(src[i * ss]);
  }
  for (int64_t i = hi; i < seg.len; ++i) dst[i * dst_stride] = T(0);
}

// "Row panels": rows [k0, k0+kc) by columns [q0, q0+nq), as panels of P
// columns each holding kc rows of P values: dst[(p*kc + kk)*P + j].
// This is the B operand of forward / grad_input (P = NR).
template <typename T, typename S>
void pack_row_panels(const GridView<const S>& v, int64_t k0, int64_t kc, int64_t q0,
                     int64_t nq, int P, T* dst, std::vector<Segment>& segs) {
  for (int64_t p = 0; p * P < nq; ++p) {
    const int64_t qa = q0 + p * P, w = std::min<int64_t>(P, nq - p * P);
    grid_segments(v.GH, v.GW, qa, qa + w, segs);
    T* panel = dst + p * kc * P;
    for (int64_t kk = 0; kk < kc; ++kk) {
      T* row = panel + kk * P;
      for (const auto& s : segs) gather_row(v, k0 + kk, s, row + (s.q0 - qa), 1);
      for (int64_t j = w; j < P; ++j) row[j] = T(0);
    }
  }
}

// "Column panels": the transpose. Rows [k0, k0+nk) by columns [q0, q0+kc),
// as panels of P rows each holding kc columns of P values:
// dst[(p*kc + qq)*P + i] = view(k0 + p*P + i, q0 + qq).
// This is the operand of grad_weight whose reduction runs over columns.
template <typename T, typename S>
void pack_col_panels(const GridView<const S>& v, int64_t k0, int64_t nk, int64_t q0,
                     int64_t kc, int P, T* dst, std::vector<Segment>& segs) {
  grid_segments(v.GH, v.GW, q0, q0 + kc, segs);
  for (int64_t p = 0; p * P < nk; ++p) {
    T* panel = dst + p * kc * P;
    const int64_t h = std::min<int64_t>(P, nk - p * P);
    for (int64_t i = 0; i < h; ++i)
      for (const auto& s : segs) gather_row(v, k0 + p * P + i, s, panel + (s.q0 - q0) * P + i, P);
    for (int64_t i = h; i < P; ++i)
      for (int64_t qq = 0; qq < kc; ++qq) panel[qq * P + i] = T(0);
  }
}

// Packs a dense row-major matrix block M[r][k] (given by an accessor) as
// column panels: dst[(p*kc + kk)*P + i] = M(r0 + p*P + i, k0 + kk), zero
// beyond nr rows. Used for weights (the A operand).
template <typename T, typename F>
void pack_dense_col_panels(int64_t nr, int64_t k0, int64_t kc, int P, T* dst, F&& at) {
  for (int64_t p = 0; p * P < nr; ++p) {
    T* panel = dst + p * kc * P;
    const int64_t h = std::min<int64_t>(P, nr - p * P);
    for (int64_t kk = 0; kk < kc; ++kk) {
      T* row = panel + kk * P;
      for (int64_t i = 0; i < h; ++i) row[i] = static_cast<T>(at(p * P + i, k0 + kk));
      for (int64_t i = h; i < P; ++i) row[i] = T(0);
    }
  }
}

}  // namespace cpu
}  // namespace convext
