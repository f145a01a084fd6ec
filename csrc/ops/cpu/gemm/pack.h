#pragma once
// Packing GEMM operands into microkernel panels, converting the tensor's
// element type S to the compute type T (bfloat16/half -> float) on the way.

#include <c10/util/BFloat16.h>

#include <algorithm>
#include <vector>

#include "ops/cpu/gemm/grid.h"
#include "ops/cpu/scratch.h"
#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {

// Zeroes rows [kr, kcR) of each of `panels` panels of kcR rows of P values:
// the rows a tile kernel's padding (k_pad) adds past the kr-rounded ones.
template <typename T>
inline void zero_pad_rows(T* dst, int64_t panels, int64_t P, int64_t kr, int64_t kcR) {
  for (int64_t p = 0; kr < kcR && p < panels; ++p)
    std::fill(dst + p * kcR * P + kr * P, dst + (p + 1) * kcR * P, T(0));
}

// Element conversion into a packed panel.
template <typename T, typename S>
inline T pack_value(S v) { return static_cast<T>(v); }
template <>
inline Bf16Bits pack_value<Bf16Bits, c10::BFloat16>(c10::BFloat16 v) { return v.x; }

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

// Copies `bytes` bytes in inlined 64-, 16- and 4-byte moves: a gathered run
// is an output row's piece (56 values of a ResNet layer), for which a call
// to memcpy (what the compiler makes of a copy loop) cost more than the copy.
inline void copy_bits(void* dst, const void* src, int64_t bytes) {
  char* d = static_cast<char*>(dst);
  const char* s = static_cast<const char*>(src);
  int64_t i = 0;
  for (; i + 64 <= bytes; i += 64) __builtin_memcpy(d + i, s + i, 64);
  for (; i + 16 <= bytes; i += 16) __builtin_memcpy(d + i, s + i, 16);
  for (; i + 4 <= bytes; i += 4) __builtin_memcpy(d + i, s + i, 4);
  if (i + 2 <= bytes) __builtin_memcpy(d + i, s + i, 2), i += 2;
  if (i < bytes) d[i] = s[i];
}

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
    // From the first element inside the source: x itself may lie far out in
    // the padding, and a step past the source's width is never multiplied.
    const S* src = row.chan + seg.n * v.sn + y * v.sh + (x + lo * v.step_w) * v.sw;
    T* d = dst + lo * dst_stride;
    const int64_t n = hi - lo, ss = n > 1 ? v.step_w * v.sw : 0;
    if (ss == 1 && dst_stride == 1) {
      if constexpr (sizeof(S) == sizeof(T)) {  // the same bits (pack_value copies them)
        copy_bits(d, src, n * int64_t(sizeof(T)));
      } else {
        for (int64_t i = 0; i < n; ++i) d[i] = pack_value<T>(src[i]);
      }
    } else {
      for (int64_t i = 0; i < n; ++i) d[i * dst_stride] = pack_value<T>(src[i * ss]);
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
  if (v.step_w != 1 || v.sw != 1) return;
  constexpr int64_t kLine = 64 / sizeof(S);
  const S* last = nullptr;
  for (const auto& s : segs) {
    const int64_t y = s.y * v.step_h + row.dy;
    if (y < 0 || y >= v.H) continue;
    const int64_t x = std::max<int64_t>(0, s.x0 + row.dx);
    const int64_t xe = std::min<int64_t>(v.W, s.x0 + row.dx + s.len);
    if (x >= xe) continue;  // all padding (x may be far past the row)
    const S* base = row.chan + s.n * v.sn + y * v.sh;
    for (const S* p = base + x; p < base + xe; p += kLine) {
      if (p >= last + kLine || p < last) __builtin_prefetch(p);  // once per line
      last = p;
    }
  }
}

// "Row panels": rows [k0, k0+kc) by columns [q0, q0+nq), as panels of P
// columns each holding ceil(kc/R) rows of P groups of R consecutive k values:
//   dst[p*kcR*P + (kk/R)*P*R + j*R + kk%R],  kcR = round_up(kc, R),
// the k padding zero. This is the B operand of forward / grad_input (P = NR,
// R = the kernel's kr: 1, or 2 for bfloat16 pairs). Rows are the outer loop
// so each source row is read as one long run. A tile kernel's panels are
// padded further, to a multiple of `kpad` rows (kcR = round_up(kc, kpad)).
template <typename T, typename S>
void pack_row_panels(const GridView<const S>& v, int64_t k0, int64_t kc, int64_t q0,
                     int64_t nq, int P, int R, T* dst, std::vector<Segment>& segs,
                     int kpad = 1) {
  const int64_t pad = std::max(R, kpad), panels = (nq + P - 1) / P;
  const int64_t kcR = (kc + pad - 1) / pad * pad;
  grid_segments(v.GH, v.GW, q0, q0 + nq, segs, P);
  if (R == 1) {
    for (int64_t kk = 0; kk < kc; ++kk) {
      const GridRow<S> row(v, k0 + kk);
      if (kk + 2 < kc) prefetch_row(v, GridRow<S>(v, k0 + kk + 2), segs);
      for (const auto& s : segs) {
        const int64_t rel = s.q0 - q0, p = rel / P;
        gather(v, row, s, dst + p * kcR * P + kk * P + (rel - p * P), 1);
      }
    }
  } else {
    // Pairs of rows: gather both as contiguous runs, then interleave (a
    // stride-2 gather would store one element at a time).
    ScratchVector<T> pair(2 * nq);
    for (int64_t kk = 0; kk < kc; kk += 2) {
      for (int r = 0; r < 2; ++r) {
        T* run = pair.data() + r * nq;
        if (kk + r >= kc) {
          std::fill(run, run + nq, T(0));
          continue;
        }
        const GridRow<S> row(v, k0 + kk + r);
        for (const auto& s : segs) gather(v, row, s, run + (s.q0 - q0), 1);
      }
      for (int64_t p = 0; p < panels; ++p) {
        T* out = dst + p * kcR * P + kk * P;
        const T* a = pair.data() + p * P;
        const T* b = a + nq;
        const int64_t width = std::min<int64_t>(P, nq - p * P);
        for (int64_t j = 0; j < width; ++j) {
          out[2 * j] = a[j];
          out[2 * j + 1] = b[j];
        }
      }
    }
  }
  zero_pad_rows(dst, panels, P, (kc + R - 1) / R * R, kcR);
  if (const int64_t width = nq - (panels - 1) * P; width < P) {  // spare columns
    T* panel = dst + (panels - 1) * kcR * P;
    for (int64_t kk = 0; kk < kcR; ++kk)
      for (int64_t j = width; j < P; ++j) panel[(kk / R) * P * R + j * R + kk % R] = T(0);
  }
}

// "Column panels": the transpose. Rows [k0, k0+nk) by columns [q0, q0+kc),
// as panels of P rows each holding ceil(kc/R) groups of R columns:
//   dst[p*kcR*P + (qq/R)*P*R + i*R + qq%R] = view(k0 + p*P + i, q0 + qq),
// kcR = round_up(kc, R), the padding zero. This is the operand of grad_weight
// whose reduction runs over columns (R = the kernel's kr: 1, or 2 for
// bfloat16 pairs; a tile kernel's A: its ka). A tile kernel's panels are
// padded to a multiple of `kpad` columns (kcR = round_up(kc, kpad)).
template <typename T, typename S>
void pack_col_panels(const GridView<const S>& v, int64_t k0, int64_t nk, int64_t q0,
                     int64_t kc, int P, int R, T* dst, std::vector<Segment>& segs,
                     int kpad = 1) {
  const int64_t pad = std::max(R, kpad), kcR = (kc + pad - 1) / pad * pad;
  grid_segments(v.GH, v.GW, q0, q0 + kc, segs);
  // R > 1: each row is gathered as one contiguous run, then dealt out in
  // groups of R (a gather straight into the panel would need a stride that
  // changes with the column's parity).
  ScratchVector<T> run(R > 1 ? kcR : 0, T(0));
  for (int64_t p = 0; p * P < nk; ++p) {
    T* panel = dst + p * kcR * P;
    const int64_t h = std::min<int64_t>(P, nk - p * P);
    for (int64_t i = 0; i < h; ++i) {
      const GridRow<S> row(v, k0 + p * P + i);
      if (R == 1) {
        for (const auto& s : segs) gather(v, row, s, panel + (s.q0 - q0) * P + i, P);
        for (int64_t qq = kc; qq < kcR; ++qq) panel[qq * P + i] = T(0);
        continue;
      }
      for (const auto& s : segs) gather(v, row, s, run.data() + (s.q0 - q0), 1);
      const int64_t group = R * int64_t(sizeof(T));  // a group of R columns: one copy
      for (int64_t qq = 0; qq < kcR; qq += R) copy_bits(panel + qq * P + i * R, &run[qq], group);
    }
    for (int64_t i = h; i < P; ++i)
      for (int64_t qq = 0; qq < kcR; ++qq) panel[(qq / R) * P * R + i * R + qq % R] = T(0);
  }
}

// Packs a strided matrix block M[r][k] = base[r*row_stride + col_off[k]] as
// column panels, in the layout of pack_row_panels with rows and columns
// swapped:  dst[p*kcR*P + (kk/R)*P*R + i*R + kk%R] = M(p*P + i, k0 + kk),
// zero beyond nr rows and kc columns. Used for weights (the A operand); the
// column offsets are precomputed so the inner loop does no index arithmetic
// (null col_off: column k at offset k).
template <int R, typename T, typename S>
void pack_strided_col_panels_r(const S* base, int64_t row_stride, const int64_t* col_off,
                               int64_t nr, int64_t k0, int64_t kc, int P, T* dst) {
  const int64_t kcR = (kc + R - 1) / R * R;
  const int64_t* off = col_off ? col_off + k0 : nullptr;
  // Rows whose kc values are one run (a contiguous weight, or no col_off:
  // column k at offset k): copied by runs of R, with no per-element offsets.
  bool run = true;
  for (int64_t kk = 1; off && kk < kc && run; ++kk) run = off[kk] == off[0] + kk;
  const int64_t off0 = off ? off[0] : k0;
  for (int64_t p = 0; p * P < nr; ++p) {
    T* panel = dst + p * kcR * P;
    const int64_t h = std::min<int64_t>(P, nr - p * P);
    // Row by row: each source row is read in order, while the panel (a few
    // KiB) stays in L1 as it is written with stride P*R.
    for (int64_t i = 0; i < P; ++i) {
      T* out = panel + i * R;
      if (i >= h) {
        for (int64_t kk = 0; kk < kcR; ++kk) out[(kk / R) * P * R + kk % R] = T(0);
        continue;
      }
      const S* row = base + (p * P + i) * row_stride;
      if (run) {
        const S* src = row + off0;
        for (int64_t k1 = 0; k1 < kc; k1 += R) {
          T* o = out + k1 * P;
          const int64_t n = std::min<int64_t>(R, kc - k1);
#pragma GCC ivdep
          for (int64_t r = 0; r < n; ++r) o[r] = pack_value<T>(src[k1 + r]);
        }
      } else {
        for (int64_t kk = 0; kk < kc; ++kk) out[(kk / R) * P * R + kk % R] = pack_value<T>(row[off[kk]]);
      }
      for (int64_t kk = kc; kk < kcR; ++kk) out[(kk / R) * P * R + kk % R] = T(0);
    }
  }
}

template <typename T, typename S>
void pack_strided_col_panels(const S* base, int64_t row_stride, const int64_t* col_off,
                             int64_t nr, int64_t k0, int64_t kc, int P, int R, T* dst) {
  if (R == 2) return pack_strided_col_panels_r<2>(base, row_stride, col_off, nr, k0, kc, P, dst);
  if (R == 32) return pack_strided_col_panels_r<32>(base, row_stride, col_off, nr, k0, kc, P, dst);
  pack_strided_col_panels_r<1>(base, row_stride, col_off, nr, k0, kc, P, dst);
}

}  // namespace cpu
}  // namespace convext
