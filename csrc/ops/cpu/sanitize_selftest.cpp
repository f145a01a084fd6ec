// Test-only entry points that misbehave on purpose, so that the sanitizer
// build (.ci/sanitize.sh) can prove it reports what it should: a heap
// overrun (AddressSanitizer) and a signed overflow (UndefinedBehaviorSanitizer).
// Compiled only with -DCONVEXT_SANITIZE_SELFTEST, which only that script
// sets: the normal build holds none of this.
#ifdef CONVEXT_SANITIZE_SELFTEST

#include <torch/library.h>

#include <cstdint>
#include <memory>

namespace {

int64_t heap_overrun(int64_t n) {
  std::unique_ptr<int32_t[]> p(new int32_t[n]());
  p[n] = static_cast<int32_t>(n);  // one past the end
  return p[0] + p[n];
}

int64_t signed_overflow(int64_t a) { return a * 4; }

}  // namespace

TORCH_LIBRARY(convext_selftest, m) {
  m.def("heap_overrun(int n) -> int", heap_overrun);
  m.def("signed_overflow(int a) -> int", signed_overflow);
}

#endif  // CONVEXT_SANITIZE_SELFTEST
