#pragma once
// The dot-product GEMM of the NCHW weight gradient: both operands' rows run
// along the reduction (positions), contiguous in the tensor, so packing a
// block is a plain copy of each row's run (no transpose) and the UKernelDot
// tiles multiply rows by rows. Rows are zero-padded to the kernel's lanes.

#include <algorithm>
#include <vector>

#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/grid.h"
#include "ops/cpu/gemm/pack.h"

namespace convext {
namespace cpu {

// The same rows as one run per image where the view reads whole planes with
// no tap offsets (rows of width W, W apart, unit steps): then a row's block
// is one copy per image instead of one per grid row.
template <typename S>
GridView<const S> flat_rows(GridView<const S> v) {
  const bool no_offsets = v.ntaps == 1 && v.toff_h(0) == 0 && v.toff_w(0) == 0;
  if (!no_offsets || v.step_h != 1 || v.step_w != 1 || v.sw != 1 || v.GH != v.H ||
      v.GW != v.W || (v.H > 1 && v.sh != v.W))
    return v;
  v.GW = v.W = v.GH * v.GW;
  v.GH = v.H = 1;
  return v;
}

// dst[kk*ld + qq] = view(k0 + kk, q0 + qq) for kk < nk, qq < L; zero for
// qq in [L, ld) and for rows kk in [nk, rows).
template <typename T, typename S>
void pack_rows(const GridView<const S>& v, int64_t k0, int64_t nk, int64_t rows, int64_t q0,
               int64_t L, int64_t ld, T* dst, std::vector<Segment>& segs) {
  grid_segments(v.GH, v.GW, q0, q0 + L, segs);
  for (int64_t kk = 0; kk < nk; ++kk) {
    const GridRow<S> row(v, k0 + kk);
    if (kk + 2 < nk) prefetch_row(v, GridRow<S>(v, k0 + kk + 2), segs);
    T* out = dst + kk * ld;
    for (const auto& s : segs) gather(v, row, s, out + (s.q0 - q0), 1);
    std::fill(out + L, out + ld, T(0));
  }
  std::fill(dst + nk * ld, dst + rows * ld, T(0));
}

// C (row stride ldc, padded to whole 4 x 4 tiles) (+)= A rows . B rows, for
// mp x np tiles of uk's size; rows of A and B ld apart, L a multiple of lanes.
template <typename P, typename T>
void dot_tiles(const UKernelDot<P, T>& uk, int64_t L, const P* a, int64_t mp, const P* b,
               int64_t np, int64_t ld, T* c, int64_t ldc, bool accumulate) {
  for (int64_t ip = 0; ip < mp; ++ip) {
    const P* ap = a + ip * uk.mr * ld;
    for (int64_t jp = 0; jp < np; ++jp)
      uk.fn(L, ap, ld, b + jp * uk.nr * ld, ld, c + ip * uk.mr * ldc + jp * uk.nr, ldc,
            accumulate);
  }
}

}  // namespace cpu
}  // namespace convext
