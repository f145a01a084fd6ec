// Gradient w.r.t. the bias on CPU: grad_output summed over all dims but 1,
// accumulated in the op-math type (float for bfloat16/half), one channel per
// task so the order of additions is fixed.

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include "ops/cpu/conv_kernels_cpu.h"

namespace convext {
namespace cpu {
namespace {

template <typename S>
void grad_bias_impl(const at::Tensor& grad_out, at::Tensor& grad_b) {
  using T = at::opmath_type<S>;
  // View as (N, C, P): P spans every trailing dim.
  const at::Tensor go = grad_out.dim() == 2 ? grad_out.unsqueeze(2) : grad_out.flatten(2);
  const int64_t N = go.size(0), C = go.size(1), P = go.size(2);
  const int64_t sn = go.stride(0), sc = go.stride(1), sp = go.stride(2);
  const S* g = go.const_data_ptr<S>();
  S* out = grad_b.mutable_data_ptr<S>();
  // Small reductions run inline rather than waking the thread pool.
  at::parallel_for(0, C, N * P < (1 << 16) ? std::max<int64_t>(C, 1) : 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      T total = 0;
      for (int64_t n = 0; n < N; ++n) {
        const S* row = g + n * sn + c * sc;
        T sum = 0;  // per-image partial keeps the running sum short
        if (sp == 1) {
          for (int64_t p = 0; p < P; ++p) sum += static_cast<T>(row[p]);
        } else {
          for (int64_t p = 0; p < P; ++p) sum += static_cast<T>(row[p * sp]);
        }
        total += sum;
      }
      out[c] = static_cast<S>(total);
    }
  });
}

}  // namespace

void CpuKernels::grad_bias(const at::Tensor& grad_out, at::Tensor& grad_b) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_conv_grad_bias_cpu",
                                  [&] { grad_bias_impl<scalar_t>(grad_out, grad_b); });
}

}  // namespace cpu
}  // namespace convext
