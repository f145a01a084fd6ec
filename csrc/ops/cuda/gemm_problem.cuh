#pragma once
// A conv GEMM whose tiles differ only by group, split and tile position
// (forward, grad_weight), plus the host-side planning shared by its users:
// tile size choice and the split of the reduction into partial sums.

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <climits>

#include "ops/cuda/cuda_utils.cuh"
#include "ops/cuda/igemm.cuh"

namespace convext {
namespace cuda {

template <typename S, typename O>
struct GemmProblem {
  Operand<S> a, b;
  Output<O> c;
  const S* bias = nullptr;
  int64_t bias_stride = 0;
  int64_t M = 0, N = 0, K = 0, groups = 1;
  int64_t a_group = 0, b_group = 0, c_group = 0;  // offsets from one group to the next
  int64_t splits = 1, k_chunk = 0, c_split = 0;   // reduction split into partial outputs
  int64_t tiles_m = 1, tiles_n = 1;

  int64_t blocks() const { return groups * splits * tiles_m * tiles_n; }

  // Block order: m tiles fastest, so blocks that share a B tile (the larger,
  // gathered operand) run together and hit it in L2.
  __device__ bool tile(int64_t blk, int BM, int BN, GemmTile<S, O>& t) const {
    const int64_t mt = blk % tiles_m;
    blk /= tiles_m;
    const int64_t nt = blk % tiles_n;
    blk /= tiles_n;
    const int64_t sp = blk % splits, g = blk / splits;
    t.a = a;
    t.a.off += g * a_group;
    t.b = b;
    t.b.off += g * b_group;
    t.c = c;
    t.c.off += g * c_group + sp * c_split;
    t.bias = bias ? bias + g * M * bias_stride : nullptr;
    t.bias_stride = bias_stride;
    t.M = M;
    t.N = N;
    t.m0 = mt * BM;
    t.n0 = nt * BN;
    t.k0 = sp * k_chunk;
    t.k1 = std::min(K, t.k0 + k_chunk);
    return true;
  }

  // Same operands and tiling, another output (the partial-sum buffer).
  template <typename O2>
  GemmProblem<S, O2> with_output(const Output<O2>& out, int64_t out_group,
                                 int64_t out_split) const {
    GemmProblem<S, O2> p;
    p.a = a; p.b = b; p.c = out;
    p.M = M; p.N = N; p.K = K; p.groups = groups;
    p.a_group = a_group; p.b_group = b_group; p.c_group = out_group;
    p.splits = splits; p.k_chunk = k_chunk; p.c_split = out_split;
    p.tiles_m = tiles_m; p.tiles_n = tiles_n;
    return p;
  }
};

// Big tiles when both sides are wide enough and either the tiles alone fill
// the GPU or a split reduction will; double always uses small ones. (A
// speed choice only: a thread adds its products in k order in either
// config, and plan() splits k the same way for both, so the bits match.)
template <typename T>
bool use_big_tiles(int64_t M, int64_t N, int64_t groups, bool split_fills) {
  if (sizeof(T) > 4 || M <= SmallTile::BM || N <= SmallTile::BN) return false;
  return split_fills ||
         groups * ceil_div<int64_t>(M, BigTile::BM) * ceil_div<int64_t>(N, BigTile::BN) >=
             sm_count();
}

// Calls f(BigTile{}) or f(SmallTile{}); big tiles are never built for double.
template <typename T, class F>
void with_tile(bool big, F&& f) {
  if constexpr (sizeof(T) <= 4) {
    if (big) {
      f(BigTile{});
      return;
    }
  }
  f(SmallTile{});
}

// A reduction of length K split into `splits` parts of `chunk` (a multiple
// of `step`) when `tiles` output tiles alone cannot fill two waves of the
// reference GPU: each part is at least eight steps and the partial buffer
// (splits x `outputs`) stays under 2^26 elements. Partials are added in split
// order, so the result is deterministic, and it depends on the sizes alone.
struct KSplit {
  int64_t splits = 1, chunk = 0;
};

inline KSplit split_k(int64_t tiles, int64_t K, int64_t step, int64_t outputs) {
  if (K == 0) return {1, K};
  const int64_t want = ceil_div<int64_t>(2 * kReferenceSMs, std::max<int64_t>(1, tiles));
  const int64_t most = std::max<int64_t>(1, K / (8 * step));
  const int64_t mem = std::max<int64_t>(1, (int64_t{1} << 26) / std::max<int64_t>(1, outputs));
  const int64_t splits = std::max<int64_t>(1, std::min({want, most, mem}));
  KSplit r;
  r.chunk = ceil_div<int64_t>(ceil_div(K, splits), step) * step;
  r.splits = ceil_div(K, r.chunk);
  return r;
}

// Fills tiles_m/tiles_n and, when allowed, splits the reduction. The split
// is planned over the big-tile grid in steps of 16 k whichever config runs,
// so that (see use_big_tiles) both give the same bits.
template <class Cfg, typename S, typename O>
void plan(GemmProblem<S, O>& p, bool allow_split) {
  constexpr int64_t kStep = 16;
  static_assert(kStep % BigTile::BK == 0 && kStep % SmallTile::BK == 0, "whole BK steps");
  p.tiles_m = std::max<int64_t>(1, ceil_div<int64_t>(p.M, Cfg::BM));
  p.tiles_n = std::max<int64_t>(1, ceil_div<int64_t>(p.N, Cfg::BN));
  p.splits = 1;
  p.k_chunk = p.K;
  if (!allow_split || p.K == 0) return;
  const int64_t tiles =
      p.groups * ceil_div<int64_t>(p.M, BigTile::BM) * ceil_div<int64_t>(p.N, BigTile::BN);
  const KSplit sp = split_k(tiles, p.K, kStep, p.groups * p.M * p.N);
  p.splits = sp.splits;
  p.k_chunk = sp.chunk;
}

template <class Cfg, typename S, typename O, bool BKFAST, class Problem>
void launch_igemm(const Problem& prob, int64_t blocks) {
  if (blocks == 0) return;
  TORCH_CHECK(blocks <= INT_MAX, "convext: convolution too large for one launch (", blocks,
              " tiles)");
  launch<igemm_kernel<S, O, Cfg, BKFAST, Problem>>(static_cast<unsigned>(blocks), Cfg::NT,
                                                   prob);
}

// Output into a [split][group * M][N] buffer of partial sums.
template <typename T, typename S, typename O>
GemmProblem<S, T> to_partials(const GemmProblem<S, O>& p, T* part) {
  Output<T> out;
  out.ptr = part;
  out.m = linear_axis(p.N);
  out.n = linear_axis(1);
  return p.template with_output<T>(out, p.M * p.N, p.groups * p.M * p.N);
}

}  // namespace cuda
}  // namespace convext
