// Gradient w.r.t. the weight on CPU, as an implicit GEMM per group whose
// reduction runs over every output position of every image:
//   grad_w[m][k] = sum_q grad_out[m][q] * col[k][q]
// m: output channel, k = (input channel, kh, kw), q = (n, oh, ow).
// Both operands are packed straight from the tensors (bfloat16 as pairs of
// consecutive q for the AVX512-BF16 dot kernel where the CPU has it, float32
// sums either way); tiles and reduction splits are planned as
// split_reduction.h says (deterministic whatever the thread count).

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/conv_path.h"
#include "ops/cpu/conv_taps.h"
#include "ops/cpu/depthwise_cpu.h"
#include "ops/cpu/grouped_conv_cpu.h"
#include "ops/cpu/nhwc_conv_cpu.h"
#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/pack.h"
#include "ops/cpu/gemm/split_reduction.h"

namespace convext {
namespace cpu {
namespace {

// S: tensor element type, P: packed operand type, T: accumulator type.
template <typename S, typename P, typename T>
void grad_weight_gemm(const at::Tensor& grad_out, const at::Tensor& input,
                      at::Tensor& grad_w, const ConvShape& s, const UKernel<P, T>& uk) {
  const int64_t M = s.ocg(), N = s.icg() * s.taps(), R = s.N * s.OH * s.OW;
  const int64_t KC = kc_block(uk);
  SplitReduction<T> red(s.G, M, N, R, KC, uk.mr, uk.nr, l2_block<P>(KC, uk.mr),
                        l2_block<P>(KC, uk.nr));
  const TilePlan& plan = red.plan;

  const TapOffsets offs(s);
  const std::vector<int64_t>& off_h = offs.h;
  const std::vector<int64_t>& off_w = offs.w;
  const S* go = grad_out.const_data_ptr<S>();
  const S* in = input.const_data_ptr<S>();
  S* gw = grad_w.mutable_data_ptr<S>();
  const auto ws = grad_w.strides();

  struct Buffers {
    Scratch<P> a, b;
    std::vector<Segment> segs;
  };
  red.run(s, [&] { return Buffers{Scratch<P>(plan.MC * KC), Scratch<P>(KC * plan.NC), {}}; },
          [&](Buffers& buf, const OutTile& t, int64_t r_begin, int64_t r_end, T* c) {
    GridView<const S> gsrc = grid_view(go, grad_out, t.g * M);
    gsrc.GH = s.OH; gsrc.GW = s.OW;
    GridView<const S> isrc = grid_view(in, input, t.g * s.icg());
    isrc.GH = s.OH; isrc.GW = s.OW; isrc.step_h = s.sh; isrc.step_w = s.sw;
    isrc.ntaps = s.taps(); isrc.off_h = off_h.data(); isrc.off_w = off_w.data();
    const int64_t mp = ceil_div(t.mc, uk.mr), np = ceil_div(t.nc, uk.nr);
    for (int64_t r0 = r_begin; r0 < r_end; r0 += KC) {
      const int64_t kc = std::min(KC, r_end - r0);
      pack_col_panels(gsrc, t.m0, t.mc, r0, kc, uk.mr, uk.kr, buf.a.ptr, buf.segs);
      pack_col_panels(isrc, t.n0, t.nc, r0, kc, uk.nr, uk.kr, buf.b.ptr, buf.segs);
      gemm_tiles(uk, kc, buf.a.ptr, mp, buf.b.ptr, np, c, plan.NC, r0 > r_begin);
    }
  }, [&](const OutTile& t, const T* c) {  // the weight layout: column k = (input channel, tap)
    for (int64_t m = 0; m < t.mc; ++m) {
      S* row = gw + (t.g * M + t.m0 + m) * ws[0];
      for (int64_t j = 0; j < t.nc; ++j) {
        const int64_t k = t.n0 + j, ic = k / s.taps(), tap = k % s.taps();
        row[ic * ws[1] + (tap / s.KW) * ws[2] + (tap % s.KW) * ws[3]] =
            static_cast<S>(c[m * plan.NC + j]);
      }
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
      case CpuPath::kGrouped:
        return grouped_grad_weight<scalar_t>(grad_out, input, grad_w, s);
      case CpuPath::kNhwc: return nhwc_grad_weight(grad_out, input, grad_w, s);
      default:
        // Packed as the float kernel's operands for every dtype: the bf16 dot
        // kernel's pair packing along positions made NCHW bfloat16 backward
        // 1.3-2x slower in the benchmark (see README, Speed), so it is not used here.
        return grad_weight_gemm<scalar_t>(grad_out, input, grad_w, s,
                                          ukernel_for<at::opmath_type<scalar_t>>());
    }
  });
}

}  // namespace cpu
}  // namespace convext
