#pragma once
// Packing GEMM operands into microkernel panels, converting the tensor's
// element type S to the compute type T (bfloat16/half -> float) on the way.

#include <vector>

#include "ops/cpu/gemm/grid.h"

namespace convext {
namespace cpu {

// Row k of a GridView: its channel and tap offsets, resolved once per row.
template <typename S>
struct GridRow {
  const S* chan;
  int64_t dy, dx;
  GridRow(const GridView<const S>& v, int64_t k) {
    const int64_t c = k / v.ntaps, t = k - c * v.ntaps;
    chan = v.base + c * v.sc;
    dy = v.toff_h(t);
    dx = v.toff_w(t);
  }
};

// dst[i * dst_stride] = row(seg.q0 + i), i < seg.len; zero outside the source.
template <typename T, typename S>
inline void gather(const GridView<const S>& v, const GridRow<S>& row, const Segment& seg,
                   T* dst, int64_t dst_stride) {
  const int64_t y = seg.y * v.step_h + row.dy;
  int64_t lo = 0, hi = 0;
  const int64_t x = seg.x0 * v.step_w + row.dx;
  if (y >= 0 && y < v.H) valid_range(x, v.step_w, seg.len, v.W, lo, hi);
  for (int64_t i = 0; i < lo; ++i) dst[i * dst_stride] = T(0);
  if (lo < hi) {
    const S* src = row.chan + seg.n * v.sn + y * v.sh + x * v.sw;
    const int64_t ss = v.step_w * v.sw;
    if (ss == 1 && dst_stride == 1) {
      for (int64_t i = lo; i < hi; ++i) dst[i] = static_cast<T>(src[i]);
    } else {
      for (int64_t i = lo; i < hi; ++i) dst[i * dst_stride] = static_cast<T>(src[i * ss]);
    }
  }
  for (int64_t i = hi; i < seg.len; ++i) dst[i * dst_stride] = T(0);
}

// Prefetches the source lines a gather of `row` over `segs` will read
// (contiguous runs only). Rows of different channels are far apart and, for
// some channel strides, alias in the caches; prefetching the next row while
// copying this one hides that latency.
template <typename S>
inline void prefetch_row(const GridView<const S>& v, const GridRow<S>& row,
                         const std::vector<Segment>& segs) {
  if (v.step_w * v.sw != 1) return;
  constexpr int64_t kLine = 64 / sizeof(S);
  const S* last = nullptr;
  for (const auto& s : segs) {
    const int64_t y = s.y * v.step_h + row.dy;
    if (y < 0 || y >= v.H) continue;
    const int64_t x = std::max<int64_t>(0, s.x0 + row.dx);
    const int64_t xe = std::min<int64_t>(v.W, s.x0 + row.dx + s.len);
    const S* base = row.chan + s.n * v.sn + y * v.sh;
    for (const S* p = base + x; p < base + xe; p += kLine) {
      if (p >= last + kLine || p < last) __builtin_prefetch(p);  // once per line
      last = p;
    }
  }
}

// "Row panels": rows [k0, k0+kc) by columns [q0, q0+nq), as panels of P
// columns each holding kc rows of P values: dst[(p*kc + kk)*P + j].
// This is the B operand of forward / grad_input (P = NR). Rows are the outer
// loop so each source row is read as one long run.
template <typename T, typename S>
void pack_row_panels(const GridView<const S>& v, int64_t k0, int64_t kc, int64_t q0,
                     int64_t nq, int P, T* dst, std::vector<Segment>& segs) {
  grid_segments(v.GH, v.GW, q0, q0 + nq, segs, P);
  for (int64_t kk = 0; kk < kc; ++kk) {
    const GridRow<S> row(v, k0 + kk);
    if (kk + 2 < kc) prefetch_row(v, GridRow<S>(v, k0 + kk + 2), segs);
    for (const auto& s : segs) {
      const int64_t rel = s.q0 - q0, p = rel / P;
      gather(v, row, s, dst + (p * kc + kk) * P + (rel - p * P), 1);
    }
  }
  if (const int64_t tail = nq % P) {  // zero-fill the last panel's spare columns
    T* last = dst + (nq / P) * kc * P;
    for (int64_t kk = 0; kk < kc; ++kk)
      for (int64_t j = tail; j < P; ++j) last[kk * P + j] = T(0);
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
    for (int64_t i = 0; i < h; ++i) {
      const GridRow<S> row(v, k0 + p * P + i);
      for (const auto& s : segs) gather(v, row, s, panel + (s.q0 - q0) * P + i, P);
    }
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
