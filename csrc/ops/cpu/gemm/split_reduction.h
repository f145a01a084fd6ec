#pragma once
// Tiling of a GEMM with a long reduction and a small output (the weight
// gradients): tasks own disjoint output tiles, and when there are too few
// tiles to feed many threads the reduction is also split, into partial sums
// added in a fixed order afterwards. Tiles and splits are planned for a fixed
// thread count, not the current one, so the result is the same whatever
// torch.set_num_threads says. Only split tiles keep partial sums (counted
// Scratch, scratch.h); an unsplit tile lives in its thread's buffer.

#include <ATen/Parallel.h>

#include <algorithm>

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

// groups x (M x N) outputs, each summed over R, in reduction blocks of KC.
template <typename T>
struct SplitReduction {
  static constexpr int64_t kThreads = 16;  // planned for; more still get a share of the tasks
  int64_t M, N, R;
  TilePlan plan;
  int64_t tiles, splits, r_chunk, tile_size;
  Scratch<T> partial;

  SplitReduction(int64_t G, int64_t M, int64_t N, int64_t R, int64_t KC, int64_t mr,
                 int64_t nr, int64_t mc_max, int64_t nc_max)
      : M(M), N(N), R(R), plan(plan_tiles(G, M, N, mr, nr, mc_max, nc_max, kThreads)),
        tiles(G * plan.tasks_per_group()),
        // split only as far as needed to feed the threads, never into pieces
        // shorter than a few KC blocks
        splits(std::max<int64_t>(1, std::min(ceil_div(2 * kThreads, tiles), R / (4 * KC)))),
        r_chunk(ceil_div(std::max<int64_t>(R, 1), splits)),
        tile_size(plan.MC * plan.NC),
        partial(splits > 1 ? tiles * splits * tile_size : 0) {}

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

}  // namespace cpu
}  // namespace convext
