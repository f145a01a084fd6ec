// Gradient w.r.t. the input on CPU, as implicit GEMMs without col2im.
//
// Split the input positions into stride phases, ih = rh + sh*t. For phase
// (rh, rw) only the taps with (rh + ph - kh*dh) % sh == 0 touch it, and then
// oh = t + (rh + ph - kh*dh) / sh: a stride-1 correlation of grad_output.
// So per phase and group:
//   grad_in[c][t] = sum_k Wt[c][k] * col[k][t],  k = (output channel, tap)
// with col gathered from grad_output exactly as the forward gathers input.
// Phases are disjoint, so every output element is written once, with no
// scatter-add and no races, and a bias (a transposed conv's) is added there.

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
#include <optional>

#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/gemm_task.h"
#include "ops/cpu/gemm/pack.h"
#include "ops/cpu/gemm/staging.h"

namespace convext {
namespace cpu {
namespace {

struct Phase : PhaseTaps {      // the taps touching this phase
  int64_t rh = 0, rw = 0, TH = 0, TW = 0;  // first position and grid size
  int64_t GW = 0;                // grid width computed (TW, or wider when staged)
  int64_t a_offset = 0;          // into the packed weights
  int64_t task_begin = 0;
};

// S: tensor element type, P: packed operand type, T: accumulator type.
template <typename S, typename P, typename T>
void grad_input_gemm(const at::Tensor& grad_out, const at::Tensor& weight,
                     const at::Tensor* bias, at::Tensor& grad_in, const ConvShape& s,
                     CpuPath path, const UKernel<P, T>& uk) {
  const int64_t M = s.icg(), OCg = s.ocg();
  const int64_t KC = kc_block<P>(uk), Mp = round_up(M, uk.mr);
  const int64_t Q_per_image_max = ceil_div(s.H, s.sh) * ceil_div(s.W, s.sw);
  const int64_t n_phases = std::min(s.sh, s.H) * std::min(s.sw, s.W);
  const TilePlan plan = plan_tiles(s.G * n_phases, M, s.N * Q_per_image_max, uk.mr,
                                   uk.nr, a_block_rows(uk, KC), l2_block<P>(KC, uk.nr));

  // Describe the phases and pack Wt for each (phase, group).
  std::vector<Phase> phases;
  int64_t a_size = 0, tasks = 0;
  const DimPhases dims_h(s.H, s.OH, s.KH, s.sh, s.ph, s.dh);
  const DimPhases dims_w(s.W, s.OW, s.KW, s.sw, s.pw, s.dw);
  for (int64_t rh = 0; rh < std::min(s.sh, s.H); ++rh) {
    for (int64_t rw = 0; rw < std::min(s.sw, s.W); ++rw) {
      Phase ph{PhaseTaps(dims_h, dims_w, rh, rw)};
      ph.rh = rh; ph.rw = rw;
      ph.TH = ceil_div(s.H - rh, s.sh);
      ph.TW = ceil_div(s.W - rw, s.sw);
      ph.a_offset = a_size;
      a_size += s.G * Mp * panel_k(uk, OCg * static_cast<int64_t>(ph.kh.size()));
      ph.GW = ph.TW;
      phases.push_back(std::move(ph));
    }
  }

  // Stride 1 (one phase): stage padded grad_output planes when the wider
  // grid is cheap, so each B row is one contiguous run (see staging.h).
  std::optional<StagedPlanes<P>> staged;
  std::vector<int64_t> tap_off;
  if (path == CpuPath::kStaged) {
    Phase& ph = phases[0];
    const StagedDim dh(s.OH, s.H, ph.off_h), dw(s.OW, s.W, ph.off_w);
    staged.emplace(s.N * s.OC, dh, dw);
    stage_planes<P, S>(grad_out, dh, dw, *staged);
    tap_off = staged_tap_offsets(staged->Ws, dh, dw, ph.off_h, ph.off_w);
    ph.GW = staged->Ws;
  }
  for (Phase& ph : phases) {
    ph.task_begin = tasks;
    tasks += s.G * plan.m_blocks * ceil_div(s.N * ph.TH * ph.GW, plan.NC);
  }

  Scratch<P> a(a_size);
  const auto ws = weight.strides();
  for (const Phase& ph : phases) {
    // A[ic][k = (output channel, tap)] = W[oc][ic][kh][kw]
    const int64_t nt = ph.kh.size(), K = OCg * nt, Kp = panel_k(uk, K);
    std::vector<int64_t> koff(K);
    for (int64_t k = 0; k < K; ++k)
      koff[k] = (k / nt) * ws[0] + ph.kh[k % nt] * ws[2] + ph.kw[k % nt] * ws[3];
    const int64_t k_blocks = ceil_div(K, KC);
    at::parallel_for(0, s.G * k_blocks, grain_size(s.G * k_blocks, s), [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const int64_t g = i / k_blocks, k0 = (i % k_blocks) * KC;
        pack_strided_col_panels(weight.const_data_ptr<S>() + g * OCg * ws[0], ws[1], koff.data(),
                                M, k0, std::min(KC, K - k0), uk.mr, a_interleave(uk),
                                a.ptr + ph.a_offset + g * Mp * Kp + k0 * Mp);
      }
    });
  }

  const S* go = grad_out.const_data_ptr<S>();
  S* gi = grad_in.mutable_data_ptr<S>();
  const ScratchVector<T> bv = bias_values<S, T>(bias, bias ? s.C : 0);

  at::parallel_for(0, tasks, grain_size(tasks, s), [&](int64_t begin, int64_t end) {
    TaskBuffers<P, T> buf(KC, plan);
    size_t pi = 0;
    for (int64_t task = begin; task < end; ++task) {
      while (pi + 1 < phases.size() && phases[pi + 1].task_begin <= task) ++pi;
      const Phase& ph = phases[pi];
      const int64_t nt = ph.kh.size(), K = OCg * nt, Kp = panel_k(uk, K);
      const int64_t Q = s.N * ph.TH * ph.GW;
      const int64_t n_blocks = ceil_div(Q, plan.NC);
      const int64_t local = task - ph.task_begin;
      const int64_t g = local / (plan.m_blocks * n_blocks);
      const int64_t mb = (local / n_blocks) % plan.m_blocks, nb = local % n_blocks;
      const int64_t m0 = mb * plan.MC, q0 = nb * plan.NC;

      GridView<S> dst = grid_view(gi, grad_in, g * M + m0);
      dst.GH = ph.TH; dst.GW = ph.GW; dst.valid_w = ph.TW;
      dst.step_h = s.sh; dst.step_w = s.sw; dst.off_h = &ph.rh; dst.off_w = &ph.rw;
      const P* ap = a.ptr + ph.a_offset + g * Mp * Kp;
      const int64_t mc = std::min(plan.MC, M - m0), nq = std::min(plan.NC, Q - q0);
      const T* bias_m = bias ? bv.data() + g * M + m0 : nullptr;
      if (staged) {
        gemm_task(uk, plan, K, KC, ap, Mp, staged_view(*staged, s.OC, g * OCg, ph.TH, tap_off),
                  m0, mc, q0, nq, dst, bias_m, buf);
      } else {
        GridView<const S> src = grid_view(go, grad_out, g * OCg);
        src.GH = ph.TH; src.GW = ph.TW;
        src.ntaps = nt; src.off_h = ph.off_h.data(); src.off_w = ph.off_w.data();
        gemm_task(uk, plan, K, KC, ap, Mp, src, m0, mc, q0, nq, dst, bias_m, buf);
      }
    }
  });
}

}  // namespace

bool CpuKernels::grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                            const at::Tensor* bias, at::Tensor& grad_in, const ConvShape& s) {
  tiles_new_op();  // before any AMX tile kernel runs (microkernel.h)
  const CpuPath path = select_path(ConvDirection::kGradInput, s, grad_out, grad_in);
  // The GEMM paths add a bias in their store; the direct kernels do not.
  const bool adds_bias = path == CpuPath::kNhwc || path == CpuPath::kNhwcStaged ||
                         path == CpuPath::kGather || path == CpuPath::kStaged;
  if (bias && !adds_bias) return false;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_conv_grad_input_cpu", [&] {
    switch (path) {
      case CpuPath::kDepthwiseNhwc:
        return depthwise_nhwc_grad_input<scalar_t>(grad_out, weight, grad_in, s);
      case CpuPath::kDepthwise:
        return depthwise_grad_input<scalar_t>(grad_out, weight, grad_in, s);
      case CpuPath::kSmallC: return small_c_grad_input(grad_out, weight, grad_in, s);
      case CpuPath::kGrouped:
        return grouped_grad_input<scalar_t>(grad_out, weight, grad_in, s);
      case CpuPath::kNhwc:
      case CpuPath::kNhwcStaged: return nhwc_grad_input(grad_out, weight, bias, grad_in, s);
      default:
        return with_ukernel<scalar_t, true>([&](const auto& uk) {
          grad_input_gemm<scalar_t>(grad_out, weight, bias, grad_in, s, path, uk);
        });
    }
  });
  return true;
}

}  // namespace cpu
}  // namespace convext
