// Gradient w.r.t. the input on CUDA, as implicit GEMMs without col2im (the
// CPU backend's stride-phase decomposition, see conv_grad_input_cpu.cpp and
// stride_phases.cuh). Per phase and group:
//   grad_in[c][t] = sum_k Wt[c][k] * go_patch[k][t],  k = (output channel, tap)
// Phases are disjoint, so every element is written once, with no atomics.
// One launch covers every phase that some tap reaches; the others (stride >
// kernel) are zero and filled before the launch, so the grid does not grow
// with the stride. Half types, and float32 when torch allows TF32 for convs
// (tf32_policy.cuh), with C/G, OC/G multiples of one 16-byte vector run on
// tensor cores (igemm_mma_dgrad.cuh, tile shape per problem; an NCHW
// grad_output is copied to NHWC first); everything else on the SIMT kernel
// (igemm.cuh).

#include <ATen/Dispatch.h>

#include <numeric>
#include <vector>

#include "ops/cuda/conv_kernels_cuda.h"
#include "ops/cuda/conv_operands.cuh"
#include "ops/cuda/depthwise_cuda.cuh"
#include "ops/cuda/gemm_problem.cuh"
#include "ops/cuda/igemm_mma_dgrad.cuh"
#include "ops/cuda/nhwc_copy.cuh"
#include "ops/cuda/stride_phases.cuh"
#include "ops/cuda/tf32_policy.cuh"

namespace convext {
namespace cuda {
namespace {

template <typename S>
struct GradInputPhases {
  const S* w = nullptr;
  const S* go = nullptr;
  S* gi = nullptr;
  Strides4 ws, gs, is;
  ConvShape s;
  int64_t kstep_h = 1, kstep_w = 1, phases_h = 1, phases_w = 1;  // phases with taps
  int64_t tiles_m = 1, tiles_n = 1;  // tiles_n: of the largest phase (rh = rw = 0), a bound

  int64_t blocks() const { return phases_h * phases_w * s.G * tiles_m * tiles_n; }

  __device__ bool tile(int64_t blk, int BM, int BN, GemmTile<S, S>& t) const {
    const int64_t icg = s.C / s.G, ocg = s.OC / s.G;
    const int64_t mt = blk % tiles_m;
    blk /= tiles_m;
    const int64_t nt = blk % tiles_n;
    blk /= tiles_n;
    const int64_t g = blk % s.G;
    blk /= s.G;
    const int64_t rw = phase_of(blk % phases_w, s.sw, s.pw, s.dw);
    const int64_t rh = phase_of(blk / phases_w, s.sh, s.ph, s.dh);
    const PhaseDim y = phase_dim(rh, s.sh, s.ph, s.dh, s.KH, kstep_h, s.H);
    const PhaseDim x = phase_dim(rw, s.sw, s.pw, s.dw, s.KW, kstep_w, s.W);
    t.M = icg;
    t.N = s.N * y.extent * x.extent;
    t.m0 = mt * BM;
    t.n0 = nt * BN;
    if (t.n0 >= t.N) return false;
    t.k0 = 0;
    t.k1 = ocg * y.ntaps * x.ntaps;  // 0: no tap reaches the phase, it is all zeros
    // A: weight (OC, C/G, KH, KW) as rows of input channels x (oc, phase tap).
    t.a.ptr = w;
    t.a.off = g * ocg * ws.n + y.k0 * ws.h + x.k0 * ws.w;
    t.a.mn = linear_axis(ws.c);
    t.a.k = grid_axis(ws.n, y.ntaps, x.ntaps, kstep_h, kstep_w, ws.h, ws.w);
    // B: grad_output at (ty + o0 - j*ostep, tx + ...), zero outside it.
    t.b.ptr = go;
    t.b.off = g * ocg * gs.c + y.o0 * gs.h + x.o0 * gs.w;
    t.b.h0 = y.o0;
    t.b.w0 = x.o0;
    t.b.H = s.OH;
    t.b.W = s.OW;
    t.b.mn = grid_axis(gs.n, y.extent, x.extent, 1, 1, gs.h, gs.w);
    t.b.k = grid_axis(gs.c, y.ntaps, x.ntaps, -y.ostep, -x.ostep, gs.h, gs.w);
    // C: grad_input at (rh + sh*ty, rw + sw*tx).
    t.c.ptr = gi;
    t.c.off = g * icg * is.c + rh * is.h + rw * is.w;
    t.c.m = linear_axis(is.c);
    t.c.n = grid_positions(is, y.extent, x.extent, s.sh, s.sw);
    return true;
  }
};

// Tap steps and the number of phases some tap reaches, per spatial dim.
struct PhaseCounts {
  int64_t kstep_h = 1, kstep_w = 1, phases_h = 1, phases_w = 1;
};

PhaseCounts phase_counts(const ConvShape& s) {
  PhaseCounts c;
  c.kstep_h = s.sh / std::gcd(s.sh, s.dh);
  c.kstep_w = s.sw / std::gcd(s.sw, s.dw);
  c.phases_h = std::min(c.kstep_h, s.KH);
  c.phases_w = std::min(c.kstep_w, s.KW);
  return c;
}

// The kernels write the phases some tap reaches; the rows and columns of the
// others (stride > kernel) are zeroed here: one strided fill per such row or
// column phase, or one fill of everything when there are more than a few.
// (Phases beyond the image are empty: their blocks return at once.)
void zero_tapless_phases(at::Tensor& grad_in, const ConvShape& s, const PhaseCounts& c) {
  auto tapless = [](int64_t n, int64_t st, int64_t pad, int64_t d, int64_t size) {
    std::vector<bool> reached(std::min(st, size));
    for (int64_t j = 0; j < n; ++j) {
      const int64_t r = phase_of(j, st, pad, d);
      if (r < size) reached[r] = true;
    }
    std::vector<int64_t> out;
    for (int64_t r = 0; r < static_cast<int64_t>(reached.size()); ++r)
      if (!reached[r]) out.push_back(r);
    return out;
  };
  const auto rows = tapless(c.phases_h, s.sh, s.ph, s.dh, s.H);
  const auto cols = tapless(c.phases_w, s.sw, s.pw, s.dw, s.W);
  if (rows.size() + cols.size() > 4) {
    grad_in.zero_();
    return;
  }
  for (int64_t r : rows) grad_in.slice(2, r, s.H, s.sh).zero_();
  for (int64_t r : cols) grad_in.slice(3, r, s.W, s.sw).zero_();
}

template <typename S>
void grad_input_gemm(const at::Tensor& grad_out, const at::Tensor& weight, at::Tensor& grad_in,
                     const ConvShape& s) {
  using T = at::opmath_type<S>;
  GradInputPhases<S> p;
  p.w = read_ptr<S>(weight);
  p.go = read_ptr<S>(grad_out);
  p.gi = write_ptr<S>(grad_in);
  p.ws = strides4(weight);
  p.gs = strides4(grad_out);
  p.is = strides4(grad_in);
  p.s = s;
  const PhaseCounts ph = phase_counts(s);
  p.kstep_h = ph.kstep_h;
  p.kstep_w = ph.kstep_w;
  p.phases_h = ph.phases_h;
  p.phases_w = ph.phases_w;
  zero_tapless_phases(grad_in, s, ph);
  const int64_t n_max = s.N * ceil_div(s.H, s.sh) * ceil_div(s.W, s.sw);
  const int64_t problems = p.phases_h * p.phases_w * s.G;
  const bool big = use_big_tiles<T>(s.icg(), n_max, problems, /*split_fills=*/false);
  with_tile<T>(big, [&](auto cfg) {
    using Cfg = decltype(cfg);
    p.tiles_m = ceil_div<int64_t>(s.icg(), Cfg::BM);
    p.tiles_n = ceil_div<int64_t>(n_max, Cfg::BN);
    launch_igemm<Cfg, S, S, false>(p, p.blocks());
  });
}

// The tensor-core kernel (igemm_mma_dgrad.cuh) where it applies: half types,
// and float32 in TF32 when torch allows TF32 for convs; C/G and OC/G
// multiples of one 16-byte vector (8 halves, 4 floats); an image of either
// tensor, the repacked weight and the phase arithmetic within 31 bits.
// grad_output in any layout: read in place with contiguous channels
// (channels_last 2D, (N, L, C) 1D) and 16-byte aligned positions, else
// (NCHW, strided, unaligned) from a dense NHWC copy, the same values, so the
// same result bits. grad_in may have any layout: 16-byte stores where it has
// channels innermost and aligned positions, element stores otherwise. The
// tile shape is mma_tiles.cuh's choice for the largest phase. Returns false
// (nothing written, nothing copied) for anything else, which the SIMT kernel
// takes.
template <typename S>
bool grad_input_mma(const at::Tensor& grad_out, const at::Tensor& weight, at::Tensor& grad_in,
                    const ConvShape& s) {
  if constexpr (!std::is_same_v<S, at::Half> && !std::is_same_v<S, at::BFloat16> &&
                !std::is_same_v<S, float>) {
    return false;
  } else {
    if (std::is_same_v<S, float> && !conv_tf32_allowed()) return false;
    constexpr int64_t kMax = (int64_t{1} << 31) - 1, kVec = 16 / sizeof(S);
    // a size-1 dim's stride never meets a nonzero index
    auto live = [](int64_t size, int64_t stride) { return size > 1 ? stride : 0; };
    Strides4 gs{live(s.N, grad_out.stride(0)), grad_out.stride(1),
                live(s.OH, grad_out.stride(2)), live(s.OW, grad_out.stride(3))};
    const Strides4 is{live(s.N, grad_in.stride(0)), live(s.C, grad_in.stride(1)),
                      live(s.H, grad_in.stride(2)), live(s.W, grad_in.stride(3))};
    const int64_t icg = s.icg(), ocg = s.ocg();
    if (icg % kVec != 0 || ocg % kVec != 0 || icg == 0 || ocg == 0) return false;
    const bool go_in_place = gs.c == 1 && gs.n % kVec == 0 && gs.h % kVec == 0 &&
                             gs.w % kVec == 0 &&
                             reinterpret_cast<uintptr_t>(grad_out.const_data_ptr()) % 16 == 0;
    if (!go_in_place)  // the strides of the NHWC copy made below
      gs = Strides4{live(s.N, s.OH * s.OW * s.OC), 1, live(s.OH, s.OW * s.OC), live(s.OW, s.OC)};
    const PhaseCounts ph = phase_counts(s);
    const int64_t m_max = s.N * ceil_div(s.H, s.sh) * ceil_div(s.W, s.sw);
    const int64_t problems = ph.phases_h * ph.phases_w * s.G;
    // blocks of the smallest tile, a bound for every shape
    const int64_t blocks_max = problems * ceil_div<int64_t>(m_max, 64) * ceil_div<int64_t>(icg, 64);
    // every 32-bit quantity of the kernel, at its largest
    const int64_t go_image = (s.OH - 1) * gs.h + (s.OW - 1) * gs.w + s.OC;
    const int64_t gi_image = (s.C - 1) * is.c + (s.H - 1) * is.h + (s.W - 1) * is.w + 1;
    const int64_t phase_h = (s.KH - 1) * s.dh + s.ph + s.sh + s.H + s.OH;
    const int64_t phase_w = (s.KW - 1) * s.dw + s.pw + s.sw + s.W + s.OW;
    if (std::max({m_max, blocks_max, go_image, gi_image, phase_h, phase_w, weight.numel()}) >
        kMax)
      return false;
    // [g][c][kh][kw][oc]: rows c, k = (kh, kw, oc) contiguous
    const at::Tensor wr =
        weight.unflatten(0, {s.G, ocg}).permute({0, 2, 3, 4, 1}).contiguous();
    if (reinterpret_cast<uintptr_t>(wr.const_data_ptr()) % 16 != 0) return false;
    // (N, OC, OH, OW) view of the NHWC copy, strides gs
    const at::Tensor go = go_in_place ? grad_out : nhwc_dense(grad_out).permute({0, 3, 1, 2});
    S* gi = write_ptr<S>(grad_in);  // before the fill (the emulator poisons outputs here)
    zero_tapless_phases(grad_in, s, ph);
    auto i32 = [](int64_t v) { return static_cast<int>(v); };
    MmaGradInputParams p{};
    p.N = i32(s.N), p.G = i32(s.G), p.icg = i32(icg), p.ocg = i32(ocg);
    p.H = i32(s.H), p.W = i32(s.W), p.OH = i32(s.OH), p.OW = i32(s.OW);
    p.KH = i32(s.KH), p.KW = i32(s.KW), p.sh = i32(s.sh), p.sw = i32(s.sw);
    p.ph = i32(s.ph), p.pw = i32(s.pw), p.dh = i32(s.dh), p.dw = i32(s.dw);
    p.kstep_h = i32(ph.kstep_h), p.kstep_w = i32(ph.kstep_w), p.phases_w = i32(ph.phases_w);
    p.go_n = gs.n, p.gi_n = is.n;
    p.go_h = i32(gs.h), p.go_w = i32(gs.w);
    p.gi_c = i32(is.c), p.gi_h = i32(is.h), p.gi_w = i32(is.w);
    p.vec_store = is.c == 1 && is.n % kVec == 0 && is.h % kVec == 0 && is.w % kVec == 0 &&
                  reinterpret_cast<uintptr_t>(gi) % 16 == 0;
    with_mma_tile<S>(choose_mma_tile(problems, m_max, icg, sm_count()), [&](auto policy) {
      using P = decltype(policy);
      p.tiles_m = i32(ceil_div<int64_t>(m_max, P::BM));
      p.tiles_n = i32(ceil_div<int64_t>(icg, P::BN));
      const int64_t blocks = problems * p.tiles_m * p.tiles_n;
      if (blocks > 0)
        launch<igemm_mma_grad_input_kernel<P>>(static_cast<unsigned>(blocks), P::kThreads,
                                               read_ptr<S>(go), read_ptr<S>(wr), gi, p);
    });
    return true;
  }
}

}  // namespace

bool CudaKernels::grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                             const at::Tensor* bias, at::Tensor& grad_in, const ConvShape& s) {
  // No CUDA epilogue adds a bias here yet: ConvOps adds it (see conv_ops.h).
  if (bias) return false;
  if (s.depthwise()) {
    depthwise_grad_input(grad_out, weight, grad_in, s);
    return true;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_conv_grad_input_cuda",
                                  [&] {
                                    if (!grad_input_mma<scalar_t>(grad_out, weight, grad_in, s))
                                      grad_input_gemm<scalar_t>(grad_out, weight, grad_in, s);
                                  });
  return true;
}

}  // namespace cuda
}  // namespace convext
