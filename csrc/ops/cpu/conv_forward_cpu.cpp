// Forward convolution on CPU as an implicit GEMM, per group:
//   out[m][q] = bias[m] + sum_k W[m][k] * col[k][q]
// m: output channel, k = (input channel, kh, kw), q = (n, oh, ow).
// Weights are packed once per call; `col` is gathered straight from the
// input into L1/L2-sized panels, so no im2col buffer is ever materialised.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "ops/cpu/bias.h"
#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/conv_path.h"
#include "ops/cpu/conv_taps.h"
#include "ops/cpu/depthwise_cpu.h"
#include "ops/cpu/grouped_conv_cpu.h"
#include "ops/cpu/nhwc_conv_cpu.h"
#include "ops/cpu/small_c_conv_cpu.h"
#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/gemm_task.h"
#include "ops/cpu/gemm/pack.h"
#include "ops/cpu/gemm/staging.h"

namespace convext {
namespace cpu {
namespace {

// S: tensor element type, P: packed operand type, T: accumulator type.
template <typename S, typename P, typename T>
void forward_gemm(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                  at::Tensor& out, const ConvShape& s, CpuPath path, const UKernel<P, T>& uk) {
  const int64_t M = s.ocg(), K = s.icg() * s.taps();
  const int64_t KC = kc_block<P>(uk), Mp = round_up(M, uk.mr), Kp = panel_k(uk, K);

  const TapOffsets offs(s);
  const std::vector<int64_t>& off_h = offs.h;
  const std::vector<int64_t>& off_w = offs.w;

  // Weights as A panels: group g, K block starting at k0 -> a + g*Mp*Kp + k0*Mp.
  Scratch<P> a(s.G * Mp * Kp);
  const auto ws = weight.strides();
  std::vector<int64_t> koff(K);  // k = (input channel, kh, kw) -> weight offset
  for (int64_t k = 0; k < K; ++k) {
    const int64_t c = k / s.taps(), t = k % s.taps();
    koff[k] = c * ws[1] + (t / s.KW) * ws[2] + (t % s.KW) * ws[3];
  }
  // A task per panel of mr weight rows, walking its rows' K blocks in order:
  // every row is read front to back, a stream the prefetcher follows (a task
  // per K block read a few lines of every row, and missed on each).
  const int64_t m_panels = Mp / uk.mr;
  at::parallel_for(0, s.G * m_panels, grain_size(s.G * m_panels, s), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t g = i / m_panels, m0 = (i % m_panels) * uk.mr;
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        pack_strided_col_panels(weight.const_data_ptr<S>() + (g * M + m0) * ws[0], ws[0],
                                koff.data(), std::min<int64_t>(uk.mr, M - m0), k0, kc, uk.mr,
                                a_interleave(uk), a.ptr + g * Mp * Kp + k0 * Mp + m0 * panel_k(uk, kc));
      }
    }
  });
  const ScratchVector<T> b = bias_values<S, T>(bias, bias ? s.OC : 0);

  // Runs the GEMM with B gathered through make_src(g) over a grid of width GW
  // (the output's, or wider when overcomputing), storing columns x < OW.
  auto run = [&](int64_t GW, auto&& make_src) {
    const int64_t Q = s.N * s.OH * GW;
    const TilePlan plan = plan_tiles(s.G, M, Q, uk.mr, uk.nr, a_block_rows(uk, KC),
                                     l2_block<P>(KC, uk.nr));
    const int64_t tasks = s.G * plan.tasks_per_group();
    S* o = out.mutable_data_ptr<S>();
    at::parallel_for(0, tasks, grain_size(tasks, s), [&](int64_t begin, int64_t end) {
      TaskBuffers<P, T> buf(KC, plan);
      for (int64_t task = begin; task < end; ++task) {
        const int64_t g = task / plan.tasks_per_group();
        const int64_t mb = (task / plan.n_blocks) % plan.m_blocks, nb = task % plan.n_blocks;
        const int64_t m0 = mb * plan.MC, q0 = nb * plan.NC;
        GridView<S> dst = grid_view(o, out, g * M + m0);
        dst.GH = s.OH; dst.GW = GW; dst.valid_w = s.OW;
        gemm_task(uk, plan, K, KC, a.ptr + g * Mp * Kp, Mp, make_src(g), m0,
                  std::min(plan.MC, M - m0), q0, std::min(plan.NC, Q - q0), dst,
                  bias ? b.data() + g * M + m0 : nullptr, buf);
      }
    });
  };

  if (path == CpuPath::kPointwise) {
    // 1x1, stride 1, no padding, rows contiguous: each channel of an image is
    // already one run of the input, so B is packed straight from it.
    TORCH_INTERNAL_ASSERT(sizeof(P) == sizeof(S), "pointwise path needs the stored type packed");
    const P* in = reinterpret_cast<const P*>(input.const_data_ptr<S>());
    run(s.OW, [&](int64_t g) {
      GridView<const P> src;
      src.base = in + g * s.icg() * input.stride(1);
      src.sn = input.stride(0); src.sc = input.stride(1); src.sw = 1;
      src.H = 1; src.W = s.H * s.W; src.GH = 1; src.GW = s.OH * s.OW;
      return src;
    });
  } else if (path == CpuPath::kStaged) {
    // Stride 1: stage padded planes so each B row is one contiguous run.
    const StagedDim sh(s.H, s.OH, off_h), sw(s.W, s.OW, off_w);
    StagedPlanes<P> st(s.N * s.C, sh, sw);
    stage_planes<P, S>(input, sh, sw, st);
    const std::vector<int64_t> tap_off = staged_tap_offsets(st.Ws, sh, sw, off_h, off_w);
    run(st.Ws, [&](int64_t g) { return staged_view(st, s.C, g * s.icg(), s.OH, tap_off); });
  } else {
    const S* in = input.const_data_ptr<S>();
    run(s.OW, [&](int64_t g) {
      GridView<const S> src = grid_view(in, input, g * s.icg());
      src.GH = s.OH; src.GW = s.OW; src.step_h = s.sh; src.step_w = s.sw;
      src.ntaps = s.taps(); src.off_h = off_h.data(); src.off_w = off_w.data();
      return src;
    });
  }
}

}  // namespace

void CpuKernels::forward(const at::Tensor& input, const at::Tensor& weight,
                         const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  tiles_new_op();  // before any AMX tile kernel runs (microkernel.h)
  const CpuPath path = select_path(ConvDirection::kForward, s, input, out);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(),
                                  "convext_conv_forward_cpu", [&] {
    switch (path) {
      case CpuPath::kDepthwiseNhwc:
        return depthwise_nhwc_forward<scalar_t>(input, weight, bias, out, s);
      case CpuPath::kDepthwise: return depthwise_forward<scalar_t>(input, weight, bias, out, s);
      case CpuPath::kSmallCTiles: return small_c_tiles_forward(input, weight, bias, out, s);
      case CpuPath::kSmallC: return small_c_forward(input, weight, bias, out, s);
      case CpuPath::kGrouped: return grouped_forward<scalar_t>(input, weight, bias, out, s);
      case CpuPath::kNhwc:
      case CpuPath::kNhwcStaged: return nhwc_forward(input, weight, bias, out, s);
      default:
        return with_ukernel<scalar_t, true>([&](const auto& uk) {
          forward_gemm<scalar_t>(input, weight, bias, out, s, path, uk);
        });
    }
  });
}

}  // namespace cpu
}  // namespace convext
