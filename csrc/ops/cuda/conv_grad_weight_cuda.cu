// Gradient w.r.t. the weight on CUDA, as an implicit GEMM per group whose
// reduction runs over every output position of every image:
//   grad_w[m][k] = sum_q grad_out[m][q] * in_patch[k][q]
// m: output channel, k = (input channel, kh, kw), q = (n, oh, ow).
// The weight is small and the reduction long, so the reduction is split
// across blocks into a buffer of partial sums that a second kernel adds in
// split order: no atomics, the result is the same bit for bit on every run
// (and so under torch.use_deterministic_algorithms), and the split count
// comes from the problem sizes alone, so it is the same on every GPU model.
// Half types, and float32 when TF32 is allowed, with channels per group
// multiples of a 16-byte vector run on tensor cores (igemm_mma_wgrad.cuh,
// any groups; NCHW operands copied to NHWC first); everything else on the
// SIMT kernels (igemm.cuh), float32 with TF32 off in full precision.

#include <ATen/Dispatch.h>

#include "ops/cuda/conv_kernels_cuda.h"
#include "ops/cuda/conv_operands.cuh"
#include "ops/cuda/depthwise_cuda.cuh"
#include "ops/cuda/gemm_problem.cuh"
#include "ops/cuda/igemm_mma_wgrad.cuh"
#include "ops/cuda/nhwc_copy.cuh"
#include "ops/cuda/split_reduce.cuh"
#include "ops/cuda/tf32_policy.cuh"

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

// --- the tensor-core kernel (igemm_mma_wgrad.cuh) -----------------------

enum class WgradTile { k128x128, k64x64 };

// 128x128 where both sides of a group's GEMM are wider than 64 (half the
// shared-memory reads per MMA of 64x64), else 64x64. From the sizes only:
// the tile sets the split (so the order of sums), which must not depend on
// the GPU model.
WgradTile wgrad_tile(int64_t ocg, int64_t k) {
  return ocg > 64 && k > 64 ? WgradTile::k128x128 : WgradTile::k64x64;
}

// Plans policy P's grid and split for p (sizes filled in) and runs it into
// a float32 partial buffer, then adds the splits in order into grad_w.
template <class P, typename S>
void launch_mma_wgrad(MmaWgradParams p, const at::Tensor& grad_out, const at::Tensor& input,
                      at::Tensor& grad_w, const ConvShape& s) {
  const int hw = p.OH * p.OW;
  p.step_n = P::BK / hw;
  p.step_oh = P::BK % hw / p.OW;
  p.step_ow = P::BK % p.OW;
  p.tiles_m = ceil_div(p.OCg, P::BM);
  p.tiles_n = ceil_div(p.K, P::BN);
  const int64_t tiles = int64_t{p.G} * p.tiles_m * p.tiles_n;
  const KSplit split = split_k(tiles, p.Q, P::BK, int64_t{p.OC} * p.K);
  p.steps = ceil_div(p.Q, P::BK);
  p.steps_per_split = static_cast<int>(split.chunk / P::BK);
  const int64_t blocks = split.splits * tiles;
  TORCH_CHECK(blocks <= INT_MAX, "convext: convolution too large for one launch (", blocks,
              " tiles)");
  at::Tensor part = scratch<float>(grad_w, split.splits * s.OC * p.K);
  launch<igemm_mma_wgrad_kernel<P>>(static_cast<unsigned>(blocks), P::kThreads,
                                    read_ptr<S>(grad_out), read_ptr<S>(input),
                                    write_ptr<float>(part), p);
  const Strides4 ws = strides4(grad_w);  // columns k = (kh, kw, c)
  reduce_into_grad_w<S, float>(read_ptr<float>(part), split.splits, grad_w, s,
                               grid_axis(ws.h, s.KW, s.icg(), 1, 1, ws.w, ws.c));
}

// The tensor-core kernel where it applies: half types, and float32 in TF32
// when torch allows TF32 for convs (tf32_policy.cuh); channels per group,
// in and out, multiples of one 16-byte vector (8 halves, 4 floats); an
// image of either operand and the GEMM sizes within 31 bits; at least one
// position. Any number of groups (one GEMM per group, a grid dimension).
// grad_out and input in any layout: read in place where dense NHWC and
// 16-byte aligned, else (NCHW, strided, unaligned) from an NHWC copy, the
// same values, so the same result bits; grad_w in any layout (the split
// reduction's strided stores). Returns false (nothing written, nothing
// copied) for anything else, which the SIMT kernels take.
template <typename S>
bool grad_weight_mma(const at::Tensor& grad_out, const at::Tensor& input, at::Tensor& grad_w,
                     const ConvShape& s) {
  if constexpr (!std::is_same_v<S, at::Half> && !std::is_same_v<S, at::BFloat16> &&
                !std::is_same_v<S, float>) {
    return false;
  } else {
    if (std::is_same_v<S, float> && !conv_tf32_allowed()) return false;
    constexpr int64_t kMax = INT_MAX, vec = 16 / sizeof(S);
    const int64_t Q = s.N * s.OH * s.OW, K = s.icg() * s.taps();
    if (input.dim() != 4 || s.icg() % vec != 0 || s.ocg() % vec != 0 || Q == 0 ||
        s.H * s.W * s.C > kMax || s.OH * s.OW * s.OC > kMax || Q > kMax - 64 || K > kMax)
      return false;
    const at::Tensor go = nhwc_dense(grad_out), x = nhwc_dense(input);
    MmaWgradParams p{};
    p.C = s.C, p.H = s.H, p.W = s.W, p.OC = s.OC, p.KW = s.KW, p.OH = s.OH, p.OW = s.OW;
    p.sh = s.sh, p.sw = s.sw, p.ph = s.ph, p.pw = s.pw, p.dh = s.dh, p.dw = s.dw;
    p.G = s.G, p.Cg = s.icg(), p.OCg = s.ocg(), p.Q = Q, p.K = K;
    switch (wgrad_tile(p.OCg, K)) {
      case WgradTile::k128x128:
        launch_mma_wgrad<MmaWgradTile128<S>, S>(p, go, x, grad_w, s);
        break;
      case WgradTile::k64x64:
        launch_mma_wgrad<MmaWgradTile64<S>, S>(p, go, x, grad_w, s);
        break;
    }
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
