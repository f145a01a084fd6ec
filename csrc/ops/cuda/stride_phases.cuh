#pragma once
// The stride-phase decomposition of grad_input, shared by the SIMT kernel
// (conv_grad_input_cuda.cu) and the tensor-core one (igemm_mma_dgrad.cuh).
//
// Input positions split into stride phases, ih = rh + sh*t. Only the taps
// with (rh + ph - kh*dh) % sh == 0 reach phase rh; they are kh0, kh0 + kstep,
// ... (kstep = sh / gcd(sh, dh)) and read grad_output at oh = t + o0 - j*ostep.
// Phase j (j < kstep, j < K) has first tap j and rows rh = (j*dh - ph) mod sh;
// the other sh - min(kstep, K) phases no tap reaches (all zeros).

#include <c10/macros/Macros.h>

#include <cstdint>

namespace convext {
namespace cuda {

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

}  // namespace cuda
}  // namespace convext
