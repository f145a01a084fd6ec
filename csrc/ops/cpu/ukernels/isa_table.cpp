// Picks the microkernel set for the running CPU once, at first use.
#include <cstdlib>
#include <cstring>

#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {
namespace {

bool cpu_has(const char* isa) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  if (std::strcmp(isa, "avx512bf16") == 0)
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
  if (std::strcmp(isa, "avx512") == 0) return __builtin_cpu_supports("avx512f");
  if (std::strcmp(isa, "avx2") == 0)
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  (void)isa;
  return false;
}

UKernelSet select() {
  // CONVEXT_ISA caps the choice (for testing every path on one machine).
  const char* cap = std::getenv("CONVEXT_ISA");
  const bool allow_bf16 = !cap || std::strcmp(cap, "avx512bf16") == 0;
  const bool allow512 = allow_bf16 || std::strcmp(cap, "avx512") == 0;
  const bool allow2 = allow512 || std::strcmp(cap, "avx2") == 0;
  UKernelSet set;
  if (allow512 && cpu_has("avx512") && ukernels_avx512(&set)) {
    if (allow_bf16 && cpu_has("avx512bf16")) ukernels_avx512bf16(&set);
    return set;
  }
  if (allow2 && cpu_has("avx2") && ukernels_avx2(&set)) return set;
  return ukernels_generic();
}

}  // namespace

const UKernelSet& ukernels() {
  static const UKernelSet set = select();
  return set;
}

}  // namespace cpu
}  // namespace convext
