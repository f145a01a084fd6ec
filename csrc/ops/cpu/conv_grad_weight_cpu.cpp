// Gradient w.r.t. the weight on CPU, as an implicit GEMM per group whose
// reduction runs over every output position of every image:
//   grad_w[m][k] = sum_q grad_out[m][q] * col[k][q]
// m: output channel, k = (input channel, kh, kw), q = (n, oh, ow).
// Both operands have q innermost, so where the CPU has a dot-product kernel
// (float, and bfloat16 pairs with AVX512-BF16) their rows are copied as runs
// along q and multiplied row by row (dot_gemm.h); otherwise (double) they
// are transposed into outer-product panels. Float sums either way; tiles and
// reduction splits are planned as split_reduction.h says (deterministic
// whatever the thread count).

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <type_traits>

#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/conv_path.h"
#include "ops/cpu/conv_taps.h"
#include "ops/cpu/depthwise_cpu.h"
#include "ops/cpu/grouped_conv_cpu.h"
#include "ops/cpu/nhwc_conv_cpu.h"
#include "ops/cpu/gemm/dot_gemm.h"
#include "ops/cpu/small_c_conv_cpu.h"
#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/pack.h"
#include "ops/cpu/gemm/split_reduction.h"

namespace convext {
namespace cpu {
namespace {

// The weight layout: GEMM column k = (input channel, tap).
inline auto nchw_col(const ConvShape& s) {
  return [taps = s.taps()](int64_t k, int64_t& ic, int64_t& tap) {
    ic = k / taps;
    tap = k % taps;
  };
}

// Reduction cut shared by both NCHW plans: partial sums within half of
// grad_output's bytes (the scratch rule holds a call to its output's size).
inline ReductionCut nchw_cut(const at::Tensor& grad_out, int64_t KC, int64_t min_chunk) {
  return {KC, min_chunk, grad_out.numel() * grad_out.element_size() / 2};
}

// The row views of one group: grad_out rows m, the input's (channel, tap) rows.
template <typename S>
struct GradWeightViews {
  GridView<const S> go, in;
  GradWeightViews(const S* go_p, const at::Tensor& grad_out, const S* in_p,
                  const at::Tensor& input, const ConvShape& s, const TapOffsets& offs,
                  int64_t g) {
    go = grid_view(go_p, grad_out, g * s.ocg());
    go.GH = s.OH; go.GW = s.OW;
    in = grid_view(in_p, input, g * s.icg());
    in.GH = s.OH; in.GW = s.OW; in.step_h = s.sh; in.step_w = s.sw;
    in.ntaps = s.taps(); in.off_h = offs.h.data(); in.off_w = offs.w.data();
  }
};

// Runs an NCHW weight-gradient GEMM planned by `red`: each split of each
// tile is summed in reduction blocks of KC by block(buf, views, tile, r0,
// len, c, accumulate), buf holding the thread's packing buffers (a: MC x KC,
// b: NC x KC of P) and views the tile's group's rows. `transposed`: the
// GEMM's rows are the weight's columns k and its columns the output
// channels (C = grad_w^T).
template <typename S, typename P, typename T, class Block>
void run_grad_weight(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                     const ConvShape& s, SplitReduction<T>& red, int64_t KC, Block block,
                     bool transposed = false) {
  const TilePlan& plan = red.plan;
  const TapOffsets offs(s);
  const S* go = grad_out.const_data_ptr<S>();
  const S* in = input.const_data_ptr<S>();
  S* gw = grad_w.mutable_data_ptr<S>();
  struct Buffers {
    Scratch<P> a, b;
    std::vector<Segment> segs;
  };
  red.run(s, [&] { return Buffers{Scratch<P>(plan.MC * KC), Scratch<P>(plan.NC * KC), {}}; },
          [&](Buffers& buf, const OutTile& t, int64_t r_begin, int64_t r_end, T* c) {
    const GradWeightViews<S> v(go, grad_out, in, input, s, offs, t.g);
    for (int64_t r0 = r_begin; r0 < r_end; r0 += KC)
      block(buf, v, t, r0, std::min(KC, r_end - r0), c, r0 > r_begin);
  }, [&](const OutTile& t, const T* c) {
    store_weight_tile(t, c, plan.NC, s.ocg(), gw, grad_w.strides(), s.KW, nchw_col(s),
                      transposed);
  });
}

// Dot-product plan (dot_gemm.h): rows of grad_out and of the implicit im2col
// copied as runs along positions, 4 x 4 dot tiles. P: packed type, T: float.
template <typename S, typename P, typename T>
void grad_weight_dot(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                     const ConvShape& s, const UKernelDot<P, T>& uk) {
  const int64_t M = s.ocg(), N = s.icg() * s.taps(), R = s.N * s.OH * s.OW;
  const int64_t KC = 2048 / int64_t(sizeof(P));  // a row block: 2 KiB
  SplitReduction<T> red(s.G, M, N, R, nchw_cut(grad_out, KC, 2 * KC), uk.mr, uk.nr, 256, 128);
  const int64_t ldc = red.plan.NC;
  run_grad_weight<S, P>(grad_out, input, grad_w, s, red, KC,
                        [&](auto& buf, const GradWeightViews<S>& v, const OutTile& t, int64_t r0,
                            int64_t L, T* c, bool accumulate) {
    const int64_t mp = ceil_div(t.mc, uk.mr), np = ceil_div(t.nc, uk.nr);
    const int64_t ld = round_up(L, uk.lanes);
    pack_rows(flat_rows(v.go), t.m0, t.mc, mp * uk.mr, r0, L, ld, buf.a.ptr, buf.segs);
    pack_rows(flat_rows(v.in), t.n0, t.nc, np * uk.nr, r0, L, ld, buf.b.ptr, buf.segs);
    dot_tiles(uk, ld, buf.a.ptr, mp, buf.b.ptr, np, ld, c, ldc, accumulate);
  });
}

// Outer-product plan (the dtypes without a dot kernel, and AMX tiles): both
// operands packed as microkernel panels, transposed from the tensors.
// `transposed` (the tile kernel): grad_w^T = col x grad_out^T, so that the
// im2col rows, K = C*taps of them, are the A panels (runs of the tile's 32
// positions copied whole) and only grad_out, OC rows, is dealt out into B's
// pairs; the other way round every im2col value went into a pair panel on
// its own (4-byte moves: two thirds of a 64-channel 3x3 layer's
// grad_weight). Its row blocks keep at least 24 tiles, since B is dealt out
// again for each.
// S: tensor element type, P: packed operand type, T: accumulator type.
template <typename S, typename P, typename T>
void grad_weight_gemm(const at::Tensor& grad_out, const at::Tensor& input,
                      at::Tensor& grad_w, const ConvShape& s, const UKernel<P, T>& uk,
                      bool transposed = false) {
  const int64_t OCg = s.ocg(), Kw = s.icg() * s.taps(), R = s.N * s.OH * s.OW;
  const int64_t M = transposed ? Kw : OCg, N = transposed ? OCg : Kw;
  const int64_t KC = kc_block(uk);
  SplitReduction<T> red(s.G, M, N, R, nchw_cut(grad_out, KC, 4 * KC), uk.mr, uk.nr,
                        transposed ? a_block_rows(uk, KC) : l2_block<P>(KC, uk.mr),
                        l2_block<P>(KC, uk.nr), transposed ? 24 * uk.mr : 0);
  const int64_t ldc = red.plan.NC;
  run_grad_weight<S, P>(grad_out, input, grad_w, s, red, KC,
                        [&](auto& buf, const GradWeightViews<S>& v, const OutTile& t, int64_t r0,
                            int64_t kc, T* c, bool accumulate) {
    pack_col_panels(transposed ? v.in : v.go, t.m0, t.mc, r0, kc, uk.mr, a_interleave(uk),
                    buf.a.ptr, buf.segs, k_pad(uk));
    pack_col_panels(transposed ? v.go : v.in, t.n0, t.nc, r0, kc, uk.nr, uk.kr, buf.b.ptr,
                    buf.segs, k_pad(uk));
    gemm_tiles(uk, kc, buf.a.ptr, ceil_div(t.mc, uk.mr), buf.b.ptr, ceil_div(t.nc, uk.nr), c,
               ldc, accumulate);
  }, transposed);
}

// Whether the tile plan runs transposed: where the positions outnumber the
// weight's columns 4 to 1 (early layers: a 64-channel 3x3 at 56x56 went from
// 6.2 to 3.1 ms). Late layers, with more weight columns than positions
// (512 channels at 7x7), ran 30% slower transposed: there the im2col is the
// smaller operand to deal out.
bool transposed_pays(const ConvShape& s) {
  return s.N * s.OH * s.OW >= 4 * s.icg() * s.taps();
}

}  // namespace

void CpuKernels::grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                             at::Tensor& grad_w, const ConvShape& s) {
  tiles_new_op();  // before any AMX tile kernel runs (microkernel.h)
  const CpuPath path = select_path(ConvDirection::kGradWeight, s, grad_out, input);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_conv_grad_weight_cpu", [&] {
    switch (path) {
      case CpuPath::kDepthwiseNhwc:
        return depthwise_nhwc_grad_weight<scalar_t>(grad_out, input, grad_w, s);
      case CpuPath::kDepthwise:
        return depthwise_grad_weight<scalar_t>(grad_out, input, grad_w, s);
      case CpuPath::kSmallC: return small_c_grad_weight(grad_out, input, grad_w, s);
      case CpuPath::kGrouped:
        return grouped_grad_weight<scalar_t>(grad_out, input, grad_w, s);
      case CpuPath::kNhwc:
      case CpuPath::kNhwcStaged: return nhwc_grad_weight(grad_out, input, grad_w, s);
      default:
        if constexpr (std::is_same_v<scalar_t, c10::BFloat16>) {
          if (ukernels().bf16_tiles.fn)  // AMX: outer products on tiles beat dot products
            return grad_weight_gemm<scalar_t>(grad_out, input, grad_w, s, ukernels().bf16_tiles,
                                              transposed_pays(s));
          if (ukernels().bf16_dot.fn)
            return grad_weight_dot<scalar_t>(grad_out, input, grad_w, s, ukernels().bf16_dot);
        } else if constexpr (std::is_same_v<scalar_t, float> ||
                             std::is_same_v<scalar_t, c10::Half>) {
          if (ukernels().f32_dot.fn)
            return grad_weight_dot<scalar_t>(grad_out, input, grad_w, s, ukernels().f32_dot);
        }
        // The outer-product kernel of the op-math type otherwise (double,
        // and CPUs without the dot kernels).
        return grad_weight_gemm<scalar_t>(grad_out, input, grad_w, s,
                                          ukernel_for<at::opmath_type<scalar_t>>());
    }
  });
}

}  // namespace cpu
}  // namespace convext
