// Gradient w.r.t. the input on CUDA, as implicit GEMMs without col2im (the
// CPU backend's stride-phase decomposition, see conv_grad_input_cpu.cpp).
//
// Input positions split into stride phases, ih = rh + sh*t. Only the taps
// with (rh + ph - kh*dh) % sh == 0 reach phase rh; they are kh0, kh0 + kstep,
// ... (kstep = sh / gcd(sh, dh)) and read grad_output at oh = t + o0 - j*ostep.
// So per phase and group:
//   grad_in[c][t] = sum_k Wt[c][k] * go_patch[k][t],  k = (output channel, tap)
// Phases are disjoint, so every element is written once, with no atomics.
// One launch covers every phase that some tap reaches: phase j (j < kstep,
// j < K) has first tap j and rows rh = (j*dh - ph) mod sh. The others (there
// are sh - kstep of them when the stride exceeds the kernel) are zero and
// filled before the launch, so the grid does not grow with the stride.

#include <ATen/Dispatch.h>

#include <numeric>

#include "ops/cuda/conv_kernels_cuda.h"
#include "ops/cuda/conv_operands.cuh"
#include "ops/cuda/depthwise_cuda.cuh"
#include "ops/cuda/gemm_problem.cuh"

namespace convext {
namespace cuda {
namespace {

// One spatial dim of a phase: its grid size, first tap, tap count, and
// grad_output offset of the first tap and per further tap.
struct PhaseDim {
  int64_t extent = 0, k0 = 0, ntaps = 0, o0 = 0, ostep = 0;
};

C10_HOST_DEVICE inline PhaseDim phase_dim(int64_t r, int64_t s, int64_t p, int64_t d, int64_t K,
                                          int64_t kstep, int64_t size) {
  PhaseDim q;
  q.extent = (size - r + s - 1) / s;
  for (int64_t k = 0; k < K && k < kstep; ++k) {
    const int64_t v = r + p - k * d;
    if (v % s == 0) {
      q.k0 = k;
      q.ntaps = (K - k + kstep - 1) / kstep;
      q.o0 = v / s;
      q.ostep = kstep * d / s;  // kstep * d = lcm(s, d)
      break;
    }
  }
  return q;
}

// Rows (or columns) of the phase whose first tap is j.
C10_HOST_DEVICE inline int64_t phase_of(int64_t j, int64_t s, int64_t p, int64_t d) {
  const int64_t r = (j * d - p) % s;
  return r < 0 ? r + s : r;
}

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
  p.kstep_h = s.sh / std::gcd(s.sh, s.dh);
  p.kstep_w = s.sw / std::gcd(s.sw, s.dw);
  p.phases_h = std::min(p.kstep_h, s.KH);
  p.phases_w = std::min(p.kstep_w, s.KW);
  // Rows/columns of tapless phases get zeros first (phases beyond the image
  // are empty: their blocks return at once).
  auto covered = [](int64_t n, int64_t st, int64_t pad, int64_t d, int64_t size) {
    int64_t c = 0;
    for (int64_t j = 0; j < n; ++j) c += phase_of(j, st, pad, d) < size;
    return c;
  };
  if (covered(p.phases_h, s.sh, s.ph, s.dh, s.H) < std::min(s.sh, s.H) ||
      covered(p.phases_w, s.sw, s.pw, s.dw, s.W) < std::min(s.sw, s.W)) {
    grad_in.zero_();
  }
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

}  // namespace

void CudaKernels::grad_input(const at::Tensor& grad_out, const at::Tensor& weight,
                             at::Tensor& grad_in, const ConvShape& s) {
  if (s.depthwise()) {
    depthwise_grad_input(grad_out, weight, grad_in, s);
    return;
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kBFloat16, at::kHalf, grad_out.scalar_type(),
                                  "convext_conv_grad_input_cuda",
                                  [&] { grad_input_gemm<scalar_t>(grad_out, weight, grad_in, s); });
}

}  // namespace cuda
}  // namespace convext
