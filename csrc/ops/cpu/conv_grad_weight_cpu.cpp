// Gradient w.r.t. the weight on CPU, as an implicit GEMM per group whose
// reduction runs over every output position of every image:
//   grad_w[m][k] = sum_q grad_out[m][q] * col[k][q]
// m: output channel, k = (input channel, kh, kw), q = (n, oh, ow).
// Both operands are packed straight from the tensors (bfloat16 as pairs of
// consecutive q for the AVX512-BF16 dot kernel where the CPU has it, float32
// sums either way). Tasks own disjoint output tiles; when there are too few
// tiles to feed many threads the reduction is also split, into partial sums
// added in a fixed order afterwards. Tiles and splits are planned for a fixed
// thread count, not the current one, so the result is the same whatever
// torch.set_num_threads says.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/conv_path.h"
#include "ops/cpu/conv_taps.h"
#include "ops/cpu/depthwise_cpu.h"
#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/pack.h"

namespace convext {
namespace cpu {
namespace {

// S: tensor element type, P: packed operand type, T: accumulator type.
template <typename S, typename P, typename T>
void grad_weight_gemm(const at::Tensor& grad_out, const at::Tensor& input,
                      at::Tensor& grad_w, const ConvShape& s, const UKernel<P, T>& uk) {
  const int64_t M = s.ocg(), N = s.icg() * s.taps(), R = s.N * s.OH * s.OW;
  const int64_t KC = kc_block(uk);
  constexpr int64_t threads = 16;  // planned for; more still get a share of the tasks
  const TilePlan plan = plan_tiles(s.G, M, N, uk.mr, uk.nr, l2_block<P>(KC, uk.mr),
                                   l2_block<P>(KC, uk.nr), threads);
  const int64_t tiles = s.G * plan.tasks_per_group();
  // Split the reduction only as far as needed to feed the threads, and never
  // into pieces shorter than a few KC blocks.
  const int64_t splits = std::max<int64_t>(
      1, std::min(ceil_div(2 * threads, tiles), R / (4 * KC)));
  const int64_t r_chunk = ceil_div(std::max<int64_t>(R, 1), splits);

  const TapOffsets offs(s);
  const std::vector<int64_t>& off_h = offs.h;
  const std::vector<int64_t>& off_w = offs.w;

  // Split tiles keep their partial sums until all are done; an unsplit tile
  // is stored straight from its thread's tile buffer.
  const int64_t tile_size = plan.MC * plan.NC;
  Scratch<T> partial(splits > 1 ? tiles * splits * tile_size : 0);
  const S* go = grad_out.const_data_ptr<S>();
  const S* in = input.const_data_ptr<S>();
  S* gw = grad_w.mutable_data_ptr<S>();
  const auto ws = grad_w.strides();

  struct Tile {
    int64_t g, m0, mc, n0, nc;
  };
  auto tile_at = [&](int64_t tile) {
    const int64_t mb = (tile / plan.n_blocks) % plan.m_blocks, nb = tile % plan.n_blocks;
    const int64_t m0 = mb * plan.MC, n0 = nb * plan.NC;
    return Tile{tile / plan.tasks_per_group(), m0, std::min(plan.MC, M - m0), n0,
                std::min(plan.NC, N - n0)};
  };
  // Writes a finished tile in the weight layout.
  auto store = [&](const Tile& t, const T* c) {
    for (int64_t m = 0; m < t.mc; ++m) {
      S* row = gw + (t.g * M + t.m0 + m) * ws[0];
      for (int64_t j = 0; j < t.nc; ++j) {
        const int64_t k = t.n0 + j, ic = k / s.taps(), tap = k % s.taps();
        row[ic * ws[1] + (tap / s.KW) * ws[2] + (tap % s.KW) * ws[3]] =
            static_cast<S>(c[m * plan.NC + j]);
      }
    }
  };

  at::parallel_for(0, tiles * splits, grain_size(tiles * splits, s), [&](int64_t begin, int64_t end) {
    Scratch<P> abuf(plan.MC * KC), bbuf(KC * plan.NC);
    Scratch<T> own(splits > 1 ? 0 : tile_size);
    std::vector<Segment> segs;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t split = task % splits;
      const Tile t = tile_at(task / splits);
      const int64_t r_begin = split * r_chunk, r_end = std::min(R, r_begin + r_chunk);

      GridView<const S> gsrc = grid_view(go, grad_out, t.g * M);
      gsrc.GH = s.OH; gsrc.GW = s.OW;
      GridView<const S> isrc = grid_view(in, input, t.g * s.icg());
      isrc.GH = s.OH; isrc.GW = s.OW; isrc.step_h = s.sh; isrc.step_w = s.sw;
      isrc.ntaps = s.taps(); isrc.off_h = off_h.data(); isrc.off_w = off_w.data();

      T* c = splits > 1 ? partial.ptr + task * tile_size : own.ptr;
      const int64_t mp = ceil_div(t.mc, uk.mr), np = ceil_div(t.nc, uk.nr);
      if (r_begin >= r_end) std::fill(c, c + tile_size, T(0));
      for (int64_t r0 = r_begin; r0 < r_end; r0 += KC) {
        const int64_t kc = std::min(KC, r_end - r0);
        pack_col_panels(gsrc, t.m0, t.mc, r0, kc, uk.mr, uk.kr, abuf.ptr, segs);
        pack_col_panels(isrc, t.n0, t.nc, r0, kc, uk.nr, uk.kr, bbuf.ptr, segs);
        gemm_tiles(uk, kc, abuf.ptr, mp, bbuf.ptr, np, c, plan.NC, r0 > r_begin);
      }
      if (splits == 1) store(t, c);
    }
  });
  if (splits == 1) return;

  // Sum the partials in split order.
  at::parallel_for(0, tiles, grain_size(tiles, s), [&](int64_t begin, int64_t end) {
    for (int64_t tile = begin; tile < end; ++tile) {
      T* c = partial.ptr + tile * splits * tile_size;
      for (int64_t sp = 1; sp < splits; ++sp) {
        const T* p = c + sp * tile_size;
        for (int64_t i = 0; i < tile_size; ++i) c[i] += p[i];
      }
      store(tile_at(tile), c);
    }
  });
}

}  // namespace

void CpuKernels::grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                             at::Tensor& grad_w, const ConvShape& s) {
  const CpuPath path = select_path(ConvDirection::kGradWeight, s, grad_out, input);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_conv_grad_weight_cpu", [&] {
    switch (path) {
      case CpuPath::kDepthwiseNhwc:
        return depthwise_nhwc_grad_weight<scalar_t>(grad_out, input, grad_w, s);
      case CpuPath::kDepthwise:
        return depthwise_grad_weight<scalar_t>(grad_out, input, grad_w, s);
      default:
        return with_ukernel<scalar_t>([&](const auto& uk) {
          grad_weight_gemm<scalar_t>(grad_out, input, grad_w, s, uk);
        });
    }
  });
}

}  // namespace cpu
}  // namespace convext
