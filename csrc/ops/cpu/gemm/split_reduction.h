#pragma once
// Tiling of a GEMM with a long reduction and a small output (the weight
// gradients): tasks own disjoint output tiles, and the reduction is also
// split, into partial sums added in a fixed order afterwards. Tiles stay
// large (each reduction block's operands are packed once per tile, so small
// tiles repack them many times); the tasks the threads need come from
// splitting the reduction, within a scratch budget. Tiles and splits are
// planned from the sizes alone, never the thread count, so the result is
// the same whatever torch.set_num_threads says. Only split tiles keep
// partial sums (counted Scratch, scratch.h); an unsplit tile lives in its
// thread's buffer.

#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "ops/conv_params.h"
#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/scratch.h"

namespace convext {
namespace cpu {

// Rows [m0, m0+mc) x columns [n0, n0+nc) of group g's output.
struct OutTile {
  int64_t g, m0, mc, n0, nc;
};

// How a reduction is cut: blocks of KC, splits no shorter than min_chunk,
// partial sums within partial_bytes.
struct ReductionCut {
  int64_t KC, min_chunk, partial_bytes;
};

// groups x (M x N) outputs, each summed over R, in reduction blocks of KC.
template <typename T>
struct SplitReduction {
  static constexpr int64_t kTasks = 32;  // planned for 16 threads; more still share them
  int64_t M, N, R;
  TilePlan plan;
  int64_t tiles, splits, r_chunk, tile_size;
  Scratch<T> partial;

  // mc_min: the smallest row block the plan cuts to for more tasks (0: 2*mr,
  // at least 32), for GEMMs whose B is packed again for every row block.
  SplitReduction(int64_t G, int64_t M, int64_t N, int64_t R, const ReductionCut& cut, int64_t mr,
                 int64_t nr, int64_t mc_max, int64_t nc_max, int64_t mc_min = 0)
      : M(M), N(N), R(R),
        plan(plan_split(G, M, N, R, cut, mr, nr, mc_max, nc_max, mc_min, splits)),
        tiles(G * plan.tasks_per_group()),
        r_chunk(ceil_div(std::max<int64_t>(R, 1), splits)),
        tile_size(plan.MC * plan.NC),
        partial(splits > 1 ? tiles * splits * tile_size : 0) {}

  // The largest tiles that, with as many splits as the reduction's length
  // and the budget allow, still make kTasks tasks (or the smallest tiles
  // worth their packing, if none do).
  static TilePlan plan_split(int64_t G, int64_t M, int64_t N, int64_t R, const ReductionCut& cut,
                             int64_t mr, int64_t nr, int64_t mc_max, int64_t nc_max,
                             int64_t mc_min_rows, int64_t& splits) {
    TilePlan p;
    p.MC = std::min(round_up(std::max<int64_t>(M, 1), mr), mc_max);
    p.NC = std::min(round_up(std::max<int64_t>(N, 1), nr), nc_max);
    int64_t tiles = 0, most = 1;
    auto count = [&] {
      p.m_blocks = ceil_div(std::max<int64_t>(M, 1), p.MC);
      p.n_blocks = ceil_div(std::max<int64_t>(N, 1), p.NC);
      tiles = G * p.m_blocks * p.n_blocks;
      const int64_t bytes = tiles * p.MC * p.NC * int64_t(sizeof(T));
      most = std::max<int64_t>(1, std::min(R / std::max<int64_t>(cut.min_chunk, 1),
                                           cut.partial_bytes / bytes));
      return tiles * most;
    };
    const int64_t nc_min = std::max<int64_t>(2 * nr, 64);
    const int64_t mc_min = mc_min_rows > 0 ? mc_min_rows : std::max<int64_t>(2 * mr, 32);
    while (count() < kTasks && p.NC > nc_min) p.NC = round_up(p.NC / 2, nr);
    while (count() < kTasks && p.MC > mc_min) p.MC = round_up(p.MC / 2, mr);
    count();
    splits = std::min(most, ceil_div(kTasks, tiles));
    return p;
  }

  OutTile tile(int64_t t) const {
    const int64_t g = t / plan.tasks_per_group();
    const int64_t mb = (t / plan.n_blocks) % plan.m_blocks, nb = t % plan.n_blocks;
    const int64_t m0 = mb * plan.MC, n0 = nb * plan.NC;
    return {g, m0, std::min(plan.MC, M - m0), n0, std::min(plan.NC, N - n0)};
  }

  // Computes every tile: body(state, tile, r_begin, r_end, c) sums one split
  // of one tile into c (row stride plan.NC; c is zeroed here for an empty
  // split); state = make() holds a thread's scratch. store(tile, c) writes a
  // finished tile: an unsplit tile straight from its thread's tile buffer,
  // a split one after its partials are summed in split order.
  template <class Make, class Body, class Store>
  void run(const ConvShape& s, Make make, Body body, Store store) {
    at::parallel_for(0, tiles * splits, grain_size(tiles * splits, s), [&](int64_t b, int64_t e) {
      auto state = make();
      Scratch<T> own(splits > 1 ? 0 : tile_size);
      for (int64_t task = b; task < e; ++task) {
        const int64_t split = task % splits;
        const int64_t r_begin = split * r_chunk, r_end = std::min(R, r_begin + r_chunk);
        const OutTile t = tile(task / splits);
        T* c = splits > 1 ? partial.ptr + task * tile_size : own.ptr;
        if (r_begin >= r_end) std::fill(c, c + tile_size, T(0));
        else body(state, t, r_begin, r_end, c);
        if (splits == 1) store(t, static_cast<const T*>(c));
      }
    });
    if (splits == 1) return;
    at::parallel_for(0, tiles, grain_size(tiles, s), [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        T* c = partial.ptr + t * splits * tile_size;
        for (int64_t sp = 1; sp < splits; ++sp) {
          const T* p = c + sp * tile_size;
          for (int64_t i = 0; i < tile_size; ++i) c[i] += p[i];
        }
        store(tile(t), static_cast<const T*>(c));
      }
    });
  }
};

// Writes a finished grad_weight tile c (row stride ldc) of group g: row m is
// output channel g*M + m0 + m, column k (of the GEMM's N side) is input
// channel and tap col(k) -> (ic, tap). Column offsets are worked out once per
// tile (not per element: the divisions cost more than the stores), and a tile
// whose columns are consecutive in memory (a channels_last weight's 1x1, or
// the channel runs of one tap) is stored row by row as one run.
// `transposed` (a GEMM of grad_w^T): rows are the columns k and columns the
// output channels; stored in blocks of 16 rows, output channel by output
// channel, so 16 neighbouring values of a weight row are written together.
template <typename S, typename T, class Col>
void store_weight_tile(const OutTile& t, const T* c, int64_t ldc, int64_t M, S* gw,
                       at::IntArrayRef ws, int64_t KW, Col col, bool transposed = false) {
  const int64_t k0 = transposed ? t.m0 : t.n0, nk = transposed ? t.mc : t.nc;
  const int64_t m0 = transposed ? t.n0 : t.m0, nm = transposed ? t.nc : t.mc;
  std::vector<int64_t> off(nk);
  bool unit = true;
  for (int64_t j = 0; j < nk; ++j) {
    int64_t ic, tap;
    col(k0 + j, ic, tap);
    off[j] = ic * ws[1] + (tap / KW) * ws[2] + (tap % KW) * ws[3];
    unit = unit && off[j] == off[0] + j;
  }
  if (transposed) {
    for (int64_t i0 = 0; i0 < nk; i0 += 16) {
      const int64_t i1 = std::min<int64_t>(nk, i0 + 16);
      for (int64_t m = 0; m < nm; ++m) {
        S* row = gw + (t.g * M + m0 + m) * ws[0];
        for (int64_t i = i0; i < i1; ++i) row[off[i]] = static_cast<S>(c[i * ldc + m]);
      }
    }
    return;
  }
  for (int64_t m = 0; m < nm; ++m) {
    S* row = gw + (t.g * M + m0 + m) * ws[0];
    const T* cm = c + m * ldc;
    if (unit) {
      S* out = row + (nk ? off[0] : 0);
      for (int64_t j = 0; j < nk; ++j) out[j] = static_cast<S>(cm[j]);
    } else {
      for (int64_t j = 0; j < nk; ++j) row[off[j]] = static_cast<S>(cm[j]);
    }
  }
}

}  // namespace cpu
}  // namespace convext
