// Measures what one core's GEMM microkernel sustains on cache-resident
// panels: the benchmark's "machine peak" on CPUs (convext.bench, through
// convext._C.microkernel_gflops), where the clock the core really runs at
// (turbo, VM limits) is not knowable from /proc. Benchmark-only code, kept
// out of the kernel library (ops/cpu).
#include <chrono>
#include <string>
#include <vector>

#include "ops/cpu/ukernels/microkernel.h"
#include "bench/peak_probe.h"

namespace convext {
namespace cpu {
namespace {

template <typename P, typename T>
double probe(const UKernel<P, T>& uk, P one, double seconds) {
  constexpr int64_t kc = 128, m_panels = 8, n_panels = 4;  // A and B stay in L1/L2
  std::vector<P> a(kc * uk.mr * m_panels, one), b(kc * uk.nr * n_panels, one);
  std::vector<T> c(m_panels * uk.mr * n_panels * uk.nr);
  const int64_t ldc = n_panels * uk.nr;
  tiles_new_op();
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  int64_t calls = 0;
  while (elapsed < seconds) {
    for (int64_t jp = 0; jp < n_panels; ++jp)
      for (int64_t ip = 0; ip < m_panels; ++ip)
        uk.fn(kc, a.data() + ip * kc * uk.mr, b.data() + jp * kc * uk.nr,
              c.data() + ip * uk.mr * ldc + jp * uk.nr, ldc, calls > 0);
    calls += m_panels * n_panels;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return 2.0 * uk.mr * uk.nr * kc * calls / elapsed / 1e9;
}

}  // namespace

double microkernel_gflops(const std::string& dtype, double seconds) {
  const UKernelSet& set = ukernels();
  if (dtype == "float64") return probe(set.f64, 1.0, seconds);
  if (dtype == "bfloat16" && set.bf16_tiles.fn)  // kc = 128: whole 32-k chunks
    return probe(set.bf16_tiles, Bf16Bits(0x3f80), seconds);
  if (dtype == "bfloat16" && set.bf16.fn) return probe(set.bf16, Bf16Bits(0x3f80), seconds);
  return probe(set.f32, 1.0f, seconds);  // float32, and half types computed in float32
}

}  // namespace cpu
}  // namespace convext
