// The instruction-set table: one row per microkernel set, best first, with
// its name (the CONVEXT_ISA value), the CPU predicate and the function that
// fills the set. The kernels in use are the first row at or below the
// CONVEXT_ISA cap that this CPU runs; tests run every row it runs.
#include <cstdlib>
#include <cstring>

#include "ops/cpu/ukernels/microkernel.h"

namespace convext {
namespace cpu {
namespace {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
bool has_avx512bf16() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16");
}
bool has_amx() { return has_avx512bf16() && has_amx_bf16(); }
bool has_avx512() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f");
}
bool has_avx2() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#else
bool has_avx512bf16() { return false; }
bool has_amx() { return false; }
bool has_avx512() { return false; }
bool has_avx2() { return false; }
#endif
bool has_generic() { return true; }

bool init_avx512bf16(UKernelSet* out) { return ukernels_avx512(out) && ukernels_avx512bf16(out); }
bool init_amx(UKernelSet* out) { return init_avx512bf16(out) && ukernels_amx(out); }
bool init_generic(UKernelSet* out) {
  *out = ukernels_generic();
  return true;
}

constexpr IsaEntry kIsaTable[] = {
    {"amx", &has_amx, &init_amx},
    {"avx512bf16", &has_avx512bf16, &init_avx512bf16},
    {"avx512", &has_avx512, &ukernels_avx512},
    {"avx2", &has_avx2, &ukernels_avx2},
    {"generic", &has_generic, &init_generic},
};
constexpr int64_t kIsaCount = sizeof(kIsaTable) / sizeof(kIsaTable[0]);

// The set of row i, or false when the CPU lacks it or it was not compiled in.
bool fill(int64_t i, UKernelSet* set) {
  *set = UKernelSet{};
  return kIsaTable[i].cpu_has() && kIsaTable[i].init(set);
}

UKernelSet select() {
  // CONVEXT_ISA caps the choice (for testing every path on one machine); a
  // name not in the table caps it at the last row, generic.
  const char* cap = std::getenv("CONVEXT_ISA");
  int64_t first = cap ? kIsaCount - 1 : 0;
  for (int64_t i = 0; cap && i < kIsaCount; ++i)
    if (std::strcmp(cap, kIsaTable[i].name) == 0) first = i;
  UKernelSet set;
  for (int64_t i = first; i < kIsaCount; ++i)
    if (fill(i, &set)) return set;
  return ukernels_generic();
}

}  // namespace

const IsaEntry* isa_table(int64_t* count) {
  *count = kIsaCount;
  return kIsaTable;
}

const UKernelSet* ukernel_set(const char* name) {
  static UKernelSet sets[kIsaCount];
  static bool ok[kIsaCount];
  static const bool filled = [] {
    for (int64_t i = 0; i < kIsaCount; ++i) ok[i] = fill(i, &sets[i]);
    return true;
  }();
  (void)filled;
  for (int64_t i = 0; i < kIsaCount; ++i)
    if (std::strcmp(name, kIsaTable[i].name) == 0) return ok[i] ? &sets[i] : nullptr;
  return nullptr;
}

const UKernelSet& ukernels() {
  static const UKernelSet set = select();
  return set;
}

}  // namespace cpu
}  // namespace convext
