#pragma once
// One task of an implicit-GEMM conv kernel: an MC x NC block of
//   C[m][q] = sum_k A[m][k] * B[k][q]
// with A packed beforehand (weights) and B packed here, one KC block at a
// time, from a GridView of the source; then the block is stored through a
// GridView of the output. Shared by the forward and grad_input kernels.

#include <vector>

#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/pack.h"

namespace convext {
namespace cpu {

// Per-thread scratch for gemm_task.
template <typename P, typename T>
struct TaskBuffers {
  Scratch<P> b;
  Scratch<T> c;
  std::vector<Segment> segs;
  TaskBuffers(int64_t KC, const TilePlan& plan) : b(KC * plan.NC), c(plan.MC * plan.NC) {}
};

// a: the packed A of this group, whose K block at k0 starts at a + k0*Mp.
// Rows [m0, m0+mc), columns [q0, q0+nq); ldc = plan.NC.
template <typename P, typename T, typename X, typename S>
void gemm_task(const UKernel<P, T>& uk, const TilePlan& plan, int64_t K, int64_t KC,
               const P* a, int64_t Mp, const GridView<const X>& src, int64_t m0, int64_t mc,
               int64_t q0, int64_t nq, const GridView<S>& dst, const T* bias,
               TaskBuffers<P, T>& buf) {
  const int64_t mp = ceil_div(mc, uk.mr), np = ceil_div(nq, uk.nr);
  if (K == 0) std::fill(buf.c.ptr, buf.c.ptr + plan.MC * plan.NC, T(0));
  for (int64_t k0 = 0; k0 < K; k0 += KC) {
    const int64_t kc = std::min(KC, K - k0);
    pack_row_panels(src, k0, kc, q0, nq, uk.nr, uk.kr, buf.b.ptr, buf.segs, k_pad(uk));
    const P* ap = a + k0 * Mp + (m0 / uk.mr) * panel_k(uk, kc) * uk.mr;
    gemm_tiles(uk, kc, ap, mp, buf.b.ptr, np, buf.c.ptr, plan.NC, k0 > 0);
  }
  store_tile(buf.c.ptr, plan.NC, mc, q0, nq, dst, bias, buf.segs);
}

}  // namespace cpu
}  // namespace convext
