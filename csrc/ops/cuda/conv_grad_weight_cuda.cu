// Gradient w.r.t. the weight on CUDA, as an implicit GEMM per group whose
// reduction runs over every output position of every image:
//   grad_w[m][k] = sum_q grad_out[m][q] * in_patch[k][q]
// m: output channel, k = (input channel, kh, kw), q = (n, oh, ow).
// The weight is small and the reduction long, so the reduction is split
// across blocks into a buffer of partial sums that a second kernel adds in
// split order: no atomics, the result is the same bit for bit on every run
// (and so under torch.use_deterministic_algorithms).

#include <ATen/Dispatch.h>

#include "ops/cuda/conv_kernels_cuda.h"
#include "ops/cuda/conv_operands.cuh"
#include "ops/cuda/depthwise_cuda.cuh"
#include "ops/cuda/gemm_problem.cuh"
#include "ops/cuda/split_reduce.cuh"

namespace convext {
namespace cuda {
namespace {

template <typename S>
void grad_weight_gemm(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                      const ConvShape& s) {
  using T = at::opmath_type<S>;
  const Strides4 gs = strides4(grad_out), is = strides4(input), ws = strides4(grad_w);
  GemmProblem<S, T> p;
  p.a.ptr = read_ptr<S>(grad_out);
  p.a.mn = linear_axis(gs.c);
  p.a.k = grid_positions(gs, s.OH, s.OW);
  p.b = input_patches(read_ptr<S>(input), is, s, /*reduce_over_positions=*/true);
  p.M = s.ocg();
  p.N = s.icg() * s.taps();
  p.K = s.N * s.OH * s.OW;
  p.groups = s.G;
  p.a_group = s.ocg() * gs.c;
  p.b_group = s.icg() * is.c;

  // Both operands are contiguous along the positions for NCHW tensors, so
  // both are loaded with neighbouring threads on neighbouring positions.
  const bool big = use_big_tiles<T>(p.M, p.N, p.groups,
                                    /*split_fills=*/p.K >= 64 * BigTile::BK);
  at::Tensor part;
  with_tile<T>(big, [&](auto cfg) {
    using Cfg = decltype(cfg);
    plan<Cfg>(p, /*allow_split=*/true);
    part = scratch<T>(grad_w, p.splits * s.OC * p.N);
    p = to_partials(p, write_ptr<T>(part));
    launch_igemm<Cfg, S, T, true>(p, p.blocks());
  });
  ReduceTarget<S> target;
  target.ptr = write_ptr<S>(grad_w);
  target.row_stride = ws.n;
  target.cols = grid_axis(ws.c, s.KH, s.KW, 1, 1, ws.h, ws.w);
  split_reduce<S, T>(read_ptr<T>(part), p.splits, s.OC, p.N, target);
}

}  // namespace

void CudaKernels::grad_weight(const at::Tensor& grad_out, const at::Tensor& input,
                              at::Tensor& grad_w, const ConvShape& s) {
  if (s.depthwise()) {
    depthwise_grad_weight(grad_out, input, grad_w, s);
    return;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_conv_grad_weight_cuda",
                                  [&] { grad_weight_gemm<scalar_t>(grad_out, input, grad_w, s); });
}

}  // namespace cuda
}  // namespace convext
