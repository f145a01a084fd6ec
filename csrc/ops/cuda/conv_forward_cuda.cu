// Forward convolution on CUDA as an implicit GEMM per group:
//   out[m][q] = bias[m] + sum_k W[m][k] * in_patch[k][q]
// m: output channel, k = (input channel, kh, kw), q = (n, oh, ow).
// Half types, and float32 when TF32 is allowed, with aligned channel counts
// run the tensor-core kernel (igemm_mma.cuh: tile shape per problem, NHWC
// copies around it for other layouts); the rest the SIMT kernels (igemm.cuh).
// Small outputs with long reductions (late layers at batch 1) split k into
// partial sums that a second kernel adds, with the bias, in a fixed order.

#include <ATen/Dispatch.h>

#include <algorithm>
#include <cstdint>

#include "ops/cuda/conv_kernels_cuda.h"
#include "ops/cuda/conv_operands.cuh"
#include "ops/cuda/depthwise_cuda.cuh"
#include "ops/cuda/gemm_problem.cuh"
#include "ops/cuda/igemm_mma.cuh"
#include "ops/cuda/nhwc_copy.cuh"
#include "ops/cuda/split_reduce.cuh"
#include "ops/cuda/tf32_policy.cuh"

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

// --- the tensor-core kernel (igemm_mma.cuh) -----------------------------

// Split-K for few output tiles over a long reduction (late layers at batch
// 1): about 128 blocks' worth of splits, each a multiple of 64 k (so of every
// policy's BK) and at least 512 long, the partial buffer under 2^26 floats.
// A function of the sizes only: the summation order, so every result bit,
// is the same on every GPU model.
void plan_forward_split(MmaConvParams& p) {
  p.splits = 1;
  p.k_chunk = p.K;
  const int64_t tiles = int64_t{p.G} * ceil_div(p.M, 64) * ceil_div(p.OCg, 64);
  if (tiles >= 32 || p.K < 1024) return;
  const int64_t mem = (int64_t{1} << 26) / (int64_t{p.M} * p.OC);
  const int64_t splits = std::min({ceil_div<int64_t>(128, tiles), int64_t{p.K} / 512,
                                   int64_t{16}, mem});
  if (splits < 2) return;
  const int64_t chunk = ceil_div<int64_t>(ceil_div<int64_t>(p.K, splits), 64) * 64;
  p.k_chunk = static_cast<int>(chunk);
  p.splits = static_cast<int>(ceil_div<int64_t>(p.K, chunk));
}

// Split problems take 64x64; the others mma_tiles.cuh's choice (the SM
// count picks only the tile shape, which changes no result bit).
MmaTile forward_tile(const MmaConvParams& p, int64_t sms) {
  return p.splits > 1 ? MmaTile::k64x64 : choose_mma_tile(p.G, p.M, p.OCg, sms);
}

template <class P>
void launch_mma_forward(MmaConvParams p, const typename P::Elem* in, const typename P::Elem* w,
                        const typename P::Elem* bias, typename P::Elem* out, float* part) {
  p.tiles_m = ceil_div(p.M, P::BM);
  p.tiles_n = ceil_div(p.OCg, P::BN);
  const int64_t blocks = int64_t{p.splits} * p.G * p.tiles_m * p.tiles_n;
  launch<igemm_mma_forward_kernel<P>>(static_cast<unsigned>(blocks), P::kThreads, in, w, bias,
                                      out, part, p);
}

// The tensor-core forward where it applies: half types, and float32 in TF32
// when torch allows TF32 for convs (tf32_policy.cuh); channels per group,
// in and out, multiples of one 16-byte vector (8 halves, 4 floats); an
// image and the GEMM sizes within 31 bits. Any layout: a tensor not already
// NHWC-dense (NCHW, strided, unaligned) is copied to NHWC around the kernel,
// and the output is written back in out's own layout. Returns false
// (nothing written) for anything else, which the SIMT kernels take.
template <typename S>
bool forward_mma(const at::Tensor& input, const at::Tensor& weight, const at::Tensor* bias,
                 at::Tensor& out, const ConvShape& s) {
  constexpr int64_t kMax = (int64_t{1} << 31) - 1;
  if constexpr (!std::is_same_v<S, at::Half> && !std::is_same_v<S, at::BFloat16> &&
                !std::is_same_v<S, float>) {
    return false;
  } else {
    if (std::is_same_v<S, float> && !conv_tf32_allowed()) return false;
    constexpr int vec = 16 / sizeof(S);
    const int64_t M = s.N * s.OH * s.OW, K = s.icg() * s.taps();
    if (s.icg() % vec != 0 || s.ocg() % vec != 0 || M == 0 || K == 0 || out.numel() == 0 ||
        s.H * s.W * s.C > kMax || M > kMax || K > kMax || s.OC > kMax ||
        ceil_div<int64_t>(M, 64) * ceil_div<int64_t>(s.ocg(), 64) * s.G * 16 > kMax)
      return false;
    MmaConvParams p{};
    p.N = s.N, p.C = s.C, p.H = s.H, p.W = s.W, p.OC = s.OC, p.KH = s.KH, p.KW = s.KW;
    p.OH = s.OH, p.OW = s.OW, p.sh = s.sh, p.sw = s.sw, p.ph = s.ph, p.pw = s.pw;
    p.dh = s.dh, p.dw = s.dw, p.G = s.G, p.Cg = s.icg(), p.OCg = s.ocg(), p.M = M, p.K = K;
    plan_forward_split(p);

    const at::Tensor x = nhwc_dense(input), w = nhwc_dense(weight);  // w: OHWI
    const at::Tensor b = bias ? bias->contiguous() : at::Tensor();
    const S* bias_ptr = bias ? read_ptr<S>(b) : nullptr;
    if (p.splits > 1) {  // partials, then bias + sum in split order into out as laid out
      at::Tensor part = scratch<float>(out, int64_t{p.splits} * s.OC * M);
      launch_mma_forward<MmaTile64x64<S>>(p, read_ptr<S>(x), read_ptr<S>(w), nullptr, nullptr,
                                          write_ptr<float>(part));
      const Strides4 os = strides4(out);
      ReduceTarget<S> target;
      target.ptr = write_ptr<S>(out);
      target.row_stride = os.c;
      target.cols = grid_positions(os, s.OH, s.OW);
      target.bias = bias_ptr;
      target.bias_stride = bias ? b.stride(0) : 0;
      split_reduce<S, float>(read_ptr<float>(part), p.splits, s.OC, M, target);
      return true;
    }
    at::Tensor o = out.permute({0, 2, 3, 1});
    const bool direct =
        o.is_contiguous() && reinterpret_cast<uintptr_t>(o.const_data_ptr()) % 16 == 0;
    if (!direct) o = at::empty(o.sizes(), out.options());
    with_mma_tile<S>(forward_tile(p, sm_count()), [&](auto policy) {
      launch_mma_forward<decltype(policy)>(p, read_ptr<S>(x), read_ptr<S>(w), bias_ptr,
                                           write_ptr<S>(o), nullptr);
    });
    if (!direct) out.permute({0, 2, 3, 1}).copy_(o);  // back into out's layout
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
