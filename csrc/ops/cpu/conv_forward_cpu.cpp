// Forward convolution on CPU as an implicit GEMM, per group:
//   out[m][q] = bias[m] + sum_k W[m][k] * col[k][q]
// m: output channel, k = (input channel, kh, kw), q = (n, oh, ow).
// Weights are packed once per call; `col` is gathered straight from the
// input into L1/L2-sized panels, so no im2col buffer is ever materialised.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "ops/cpu/conv_kernels_cpu.h"
#include "ops/cpu/depthwise_cpu.h"
#include "ops/cpu/gemm/gemm.h"
#include "ops/cpu/gemm/pack.h"

namespace convext {
namespace cpu {
namespace {

// S: tensor element type, P: packed operand type, T: accumulator type.
template <typename S, typename P, typename T>
void forward_gemm(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                  at::Tensor& out, const ConvShape& s, const UKernel<P, T>& uk) {
  const int64_t M = s.ocg(), K = s.icg() * s.taps(), Q = s.N * s.OH * s.OW;
  const int64_t KC = kc_block<P>(uk), Mp = round_up(M, uk.mr), Kp = panel_k(uk, K);

  std::vector<int64_t> off_h(s.taps()), off_w(s.taps());
  for (int64_t t = 0; t < s.taps(); ++t) {
    off_h[t] = (t / s.KW) * s.dh - s.ph;
    off_w[t] = (t % s.KW) * s.dw - s.pw;
  }

  // Weights as A panels: group g, K block starting at k0 -> a + g*Mp*Kp + k0*Mp.
  Scratch<P> a(s.G * Mp * Kp);
  const auto ws = weight.strides();
  std::vector<int64_t> koff(K);  // k = (input channel, kh, kw) -> weight offset
  for (int64_t k = 0; k < K; ++k) {
    const int64_t c = k / s.taps(), t = k % s.taps();
    koff[k] = c * ws[1] + (t / s.KW) * ws[2] + (t % s.KW) * ws[3];
  }
  const int64_t k_blocks = ceil_div(K, KC);
  at::parallel_for(0, s.G * k_blocks, grain_size(s.G * k_blocks, s), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t g = i / k_blocks, k0 = (i % k_blocks) * KC;
      pack_strided_col_panels(weight.const_data_ptr<S>() + g * M * ws[0], ws[0], koff.data(), M,
                              k0, std::min(KC, K - k0), uk.mr, uk.kr,
                              a.ptr + g * Mp * Kp + k0 * Mp);
    }
  });
  std::vector<T> b(bias ? s.OC : 0);
  if (bias) {
    const at::Tensor bc = bias->contiguous();
    const S* bp = bc.const_data_ptr<S>();
    for (int64_t i = 0; i < s.OC; ++i) b[i] = static_cast<T>(bp[i]);
  }

  const TilePlan plan = plan_tiles(s.G, M, Q, uk.mr, uk.nr, l2_block<P>(KC, uk.mr),
                                   l2_block<P>(KC, uk.nr));
  const S* in = input.const_data_ptr<S>();
  S* o = out.mutable_data_ptr<S>();

  at::parallel_for(0, s.G * plan.tasks_per_group(), grain_size(s.G * plan.tasks_per_group(), s), [&](int64_t begin, int64_t end) {
    Scratch<P> bbuf(KC * plan.NC);
    Scratch<T> cbuf(plan.MC * plan.NC);
    std::vector<Segment> segs;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t g = task / plan.tasks_per_group();
      const int64_t mb = (task / plan.n_blocks) % plan.m_blocks, nb = task % plan.n_blocks;
      const int64_t m0 = mb * plan.MC, mc = std::min(plan.MC, M - m0);
      const int64_t q0 = nb * plan.NC, nq = std::min(plan.NC, Q - q0);

      GridView<const S> src = grid_view(in, input, g * s.icg());
      src.GH = s.OH; src.GW = s.OW; src.step_h = s.sh; src.step_w = s.sw;
      src.ntaps = s.taps(); src.off_h = off_h.data(); src.off_w = off_w.data();

      const int64_t mp = ceil_div(mc, uk.mr), np = ceil_div(nq, uk.nr);
      if (K == 0) std::fill(cbuf.ptr, cbuf.ptr + plan.MC * plan.NC, T(0));
      for (int64_t k0 = 0; k0 < K; k0 += KC) {
        const int64_t kc = std::min(KC, K - k0);
        pack_row_panels(src, k0, kc, q0, nq, uk.nr, uk.kr, bbuf.ptr, segs);
        const P* ap = a.ptr + g * Mp * Kp + k0 * Mp + (m0 / uk.mr) * panel_k(uk, kc) * uk.mr;
        gemm_tiles(uk, kc, ap, mp, bbuf.ptr, np, cbuf.ptr, plan.NC, k0 > 0);
      }

      GridView<S> dst = grid_view(o, out, g * M + m0);
      dst.GH = s.OH; dst.GW = s.OW; dst.step_h = 1; dst.step_w = 1;
      store_tile(cbuf.ptr, plan.NC, mc, q0, nq, dst, bias ? b.data() + g * M + m0 : nullptr,
                 segs);
    }
  });
}

}  // namespace

void CpuKernels::forward(const at::Tensor& input, const at::Tensor& weight,
                         const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(),
                                  "convext_conv_forward_cpu", [&] {
    if (s.depthwise()) {
      depthwise_forward<scalar_t>(input, weight, bias, out, s);
    } else {
      with_ukernel<scalar_t>([&](const auto& uk) {
        forward_gemm<scalar_t>(input, weight, bias, out, s, uk);
      });
    }
  });
}

}  // namespace cpu
}  // namespace convext
