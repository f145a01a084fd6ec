// Gradient w.r.t. the weight on CUDA, as an implicit GEMM per group whose
// reduction runs over every output position of every image:
//   grad_w[m][k] = sum_q grad_out[m][q] * in_patch[k][q]
// m: output channel, k = (input channel, kh, kw), q = (n, oh, ow).
// The weight is small and the reduction long, so the reduction is split
// across blocks into a buffer of partial sums that a second kernel adds in
// split order: no atomics, the result is the same bit for bit on every run
// (and so under torch.use_deterministic_algorithms), and the split count
// comes from the problem sizes alone, so it is the same on every GPU model.
// channels_last half types with C, OC multiples of 8 run on tensor cores
// (igemm_mma_wgrad.cuh); everything else on the SIMT kernels (igemm.cuh).

#include <ATen/Dispatch.h>

#include "ops/cuda/conv_kernels_cuda.h"
#include "ops/cuda/conv_operands.cuh"
#include "ops/cuda/depthwise_cuda.cuh"
#include "ops/cuda/gemm_problem.cuh"
#include "ops/cuda/igemm_mma_wgrad.cuh"
#include "ops/cuda/split_reduce.cuh"

namespace convext {
namespace cuda {
namespace {

// Adds partials [split][OC][cols] in split order into grad_w (OC, C/G, KH,
// KW, any strides); `cols` maps a column to its offset within a row.
template <typename S, typename T>
void reduce_into_grad_w(const T* part, int64_t splits, at::Tensor& grad_w, const ConvShape& s,
                        const Axis& cols) {
  ReduceTarget<S> target;
  target.ptr = write_ptr<S>(grad_w);
  target.row_stride = grad_w.stride(0);
  target.cols = cols;
  split_reduce<S, T>(part, splits, s.OC, s.icg() * s.taps(), target);
}

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
  reduce_into_grad_w<S, T>(read_ptr<T>(part), p.splits, grad_w, s,
                           grid_axis(ws.c, s.KH, s.KW, 1, 1, ws.h, ws.w));
}

// The tensor-core kernel where it applies: groups 1, half types,
// channels_last grad_out and input, C and OC multiples of 8, 16-byte aligned
// data, an image of either operand and the GEMM sizes within 31 bits, at
// least one position. Returns false (nothing written) for anything else.
template <typename S>
bool grad_weight_mma(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                     const ConvShape& s) {
  if constexpr (!std::is_same_v<S, at::Half> && !std::is_same_v<S, at::BFloat16>) {
    return false;
  } else {
    using P = MmaWgradTile<S>;
    constexpr int64_t kMax = INT_MAX;
    const auto cl = at::MemoryFormat::ChannelsLast;
    const int64_t Q = s.N * s.OH * s.OW, K = s.C * s.taps();
    if (input.dim() != 4 || s.G != 1 || s.C % 8 != 0 || s.OC % 8 != 0 || Q == 0 ||
        !input.is_contiguous(cl) || !grad_out.is_contiguous(cl) || s.H * s.W * s.C > kMax ||
        s.OH * s.OW * s.OC > kMax || Q > kMax - P::BK || K > kMax ||
        reinterpret_cast<uintptr_t>(input.const_data_ptr()) % 16 != 0 ||
        reinterpret_cast<uintptr_t>(grad_out.const_data_ptr()) % 16 != 0)
      return false;
    MmaWgradParams p{};
    p.C = s.C, p.H = s.H, p.W = s.W, p.OC = s.OC, p.KW = s.KW, p.OH = s.OH, p.OW = s.OW;
    p.sh = s.sh, p.sw = s.sw, p.ph = s.ph, p.pw = s.pw, p.dh = s.dh, p.dw = s.dw;
    p.Q = Q, p.K = K;
    p.tiles_m = ceil_div<int64_t>(s.OC, P::BM);
    p.tiles_n = ceil_div<int64_t>(K, P::BN);
    const KSplit split = split_k(int64_t{p.tiles_m} * p.tiles_n, Q, P::BK, s.OC * K);
    p.steps = ceil_div<int64_t>(Q, P::BK);
    p.steps_per_split = split.chunk / P::BK;
    const int64_t blocks = split.splits * p.tiles_m * p.tiles_n;
    if (blocks > kMax) return false;
    at::Tensor part = scratch<float>(grad_w, split.splits * s.OC * K);
    launch<igemm_mma_wgrad_kernel<S>>(static_cast<unsigned>(blocks), P::kThreads,
                                      read_ptr<S>(grad_out), read_ptr<S>(input),
                                      write_ptr<float>(part), p);
    const Strides4 ws = strides4(grad_w);  // columns k = (kh, kw, c)
    reduce_into_grad_w<S, float>(read_ptr<float>(part), split.splits, grad_w, s,
                                 grid_axis(ws.h, s.KW, s.C, 1, 1, ws.w, ws.c));
    return true;
  }
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
                                  [&] {
                                    if (!grad_weight_mma<scalar_t>(grad_out, input, grad_w, s))
                                      grad_weight_gemm<scalar_t>(grad_out, input, grad_w, s);
                                  });
}

}  // namespace cuda
}  // namespace convext
