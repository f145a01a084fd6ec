// Forward convolution on CUDA as an implicit GEMM per group:
//   out[m][q] = bias[m] + sum_k W[m][k] * in_patch[k][q]
// m: output channel, k = (input channel, kh, kw), q = (n, oh, ow).
// Small outputs with long reductions (late layers at batch 1) split k into
// partial sums that a second kernel adds, with the bias, in a fixed order.

#include <ATen/Dispatch.h>

#include "ops/cuda/conv_kernels_cuda.h"
#include "ops/cuda/conv_operands.cuh"
#include "ops/cuda/depthwise_cuda.cuh"
#include "ops/cuda/gemm_problem.cuh"
#include "ops/cuda/igemm_mma.cuh"
#include "ops/cuda/split_reduce.cuh"

namespace convext {
namespace cuda {
namespace {

template <typename S>
void forward_gemm(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                  at::Tensor& out, const ConvShape& s) {
  using T = at::opmath_type<S>;
  const Strides4 is = strides4(input), ws = strides4(weight), os = strides4(out);
  GemmProblem<S, S> p;
  p.a = weight_rows(read_ptr<S>(weight), ws, s);
  p.b = input_patches(read_ptr<S>(input), is, s, /*reduce_over_positions=*/false);
  p.c.ptr = write_ptr<S>(out);
  p.c.m = linear_axis(os.c);
  p.c.n = grid_positions(os, s.OH, s.OW);
  p.M = s.ocg();
  p.N = s.N * s.OH * s.OW;
  p.K = s.icg() * s.taps();
  p.groups = s.G;
  p.a_group = s.ocg() * ws.n;
  p.b_group = s.icg() * is.c;
  p.c_group = s.ocg() * os.c;
  if (bias) {
    p.bias = read_ptr<S>(*bias);
    p.bias_stride = bias->stride(0);
  }

  const bool big = use_big_tiles<T>(p.M, p.N, p.groups, /*split_fills=*/false);
  with_tile<T>(big, [&](auto cfg) {
    using Cfg = decltype(cfg);
    plan<Cfg>(p, /*allow_split=*/true);
    if (p.splits == 1) {
      launch_igemm<Cfg, S, S, false>(p, p.blocks());
      return;
    }
    at::Tensor part = scratch<T>(out, p.splits * s.OC * p.N);
    launch_igemm<Cfg, S, T, false>(to_partials(p, write_ptr<T>(part)), p.blocks());
    ReduceTarget<S> target;
    target.ptr = p.c.ptr;
    target.row_stride = os.c;
    target.cols = p.c.n;
    target.bias = p.bias;
    target.bias_stride = p.bias_stride;
    split_reduce<S, T>(read_ptr<T>(part), p.splits, s.OC, p.N, target);
  });
}

// The tensor-core kernel (igemm_mma.cuh) where it applies: 2D, one group,
// half types, channels_last input and output, C and OC multiples of 8,
// 16-byte aligned data, an image and the GEMM sizes within 31 bits. Returns
// false (nothing written) for anything else, which the SIMT kernels take.
template <typename S>
bool forward_mma(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                 at::Tensor& out, const ConvShape& s) {
  constexpr int64_t kMax = (int64_t{1} << 31) - 1;
  const auto cl = at::MemoryFormat::ChannelsLast;
  if constexpr (!std::is_same_v<S, at::Half> && !std::is_same_v<S, at::BFloat16>) {
    return false;
  } else {
    const int64_t M = s.N * s.OH * s.OW, K = s.C * s.taps();
    if (input.dim() != 4 || s.G != 1 || s.C % 8 != 0 || s.OC % 8 != 0 || M == 0 ||
        !input.is_contiguous(cl) || !out.is_contiguous(cl) || s.H * s.W * s.C > kMax || M > kMax ||
        K > kMax || reinterpret_cast<uintptr_t>(input.const_data_ptr()) % 16 != 0)
      return false;
    const at::Tensor w = weight.contiguous(cl);  // OHWI: k = (kh, kw, c) contiguous
    if (reinterpret_cast<uintptr_t>(w.const_data_ptr()) % 16 != 0) return false;
    const at::Tensor b = bias ? bias->contiguous() : at::Tensor();
    MmaConvParams p{};
    p.N = s.N, p.C = s.C, p.H = s.H, p.W = s.W, p.OC = s.OC, p.KH = s.KH, p.KW = s.KW;
    p.OH = s.OH, p.OW = s.OW, p.sh = s.sh, p.sw = s.sw, p.ph = s.ph, p.pw = s.pw;
    p.dh = s.dh, p.dw = s.dw, p.M = M, p.K = K;
    using P = MmaForwardTile<S>;
    const int64_t blocks = (M + P::BM - 1) / P::BM * ((s.OC + P::BN - 1) / P::BN);
    if (blocks > kMax) return false;
    launch<igemm_mma_forward_kernel<S>>(blocks, P::kThreads, read_ptr<S>(input),
                                        read_ptr<S>(w), bias ? read_ptr<S>(b) : nullptr,
                                        write_ptr<S>(out), p);
    return true;
  }
}

}  // namespace

void CudaKernels::forward(const at::Tensor& input, const at::Tensor& weight,
                          const at::Tensor* bias, at::Tensor& out, const ConvShape& s) {
  if (s.depthwise()) {
    depthwise_forward(input, weight, bias, out, s);
    return;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, input.scalar_type(),
                                  "convext_conv_forward_cuda",
                                  [&] {
                                    if (!forward_mma<scalar_t>(input, weight, bias, out, s))
                                      forward_gemm<scalar_t>(input, weight, bias, out, s);
                                  });
}

}  // namespace cuda
}  // namespace convext
