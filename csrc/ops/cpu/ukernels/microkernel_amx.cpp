// AMX-BF16 tile microkernel: a 32 x 32 float tile held in four 16 x 16 tile
// registers, fed by tdpbf16ps (16 x 16 x 32 multiply-adds of bfloat16 pairs
// into float per instruction, 8x a vdpbf16ps's work).
//
// Operand layouts (UKernel with kr = 2, ka = 32; panels padded to 32 k):
//  - A: per 32-k chunk, MR rows of 32 consecutive k values (row i at
//    i*32): two 16-row tiles with a 64-byte row stride;
//  - B: the usual pair panel, rows of NR (k, k+1) pairs, which is AMX's
//    "VNNI" layout: a 16-row tile is 16 pair rows of 16 columns, NR*4 bytes
//    apart.
// The tile instructions are written as inline assembly with memory clobbers
// (GCC's intrinsics do not tell the compiler the memory they read/write).
#include "ops/cpu/ukernels/microkernel.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && defined(__linux__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>

namespace convext {
namespace cpu {
namespace amx {

constexpr int kMR = 32, kNR = 32, kChunk = 32;

// The 64-byte tile configuration (palette 1): tmm0-3 C (16 rows of 16
// floats), tmm4-5 A and tmm6-7 B (16 rows of 64 bytes).
struct alignas(64) TileConfig {
  uint8_t palette, start_row, reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

TileConfig make_config() {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof(cfg));
  cfg.palette = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.colsb[t] = 64;
    cfg.rows[t] = 16;
  }
  return cfg;
}

// The tile configuration is per-thread state that other code on the thread
// (oneDNN's AMX kernels) may change between our ops, and ldtilecfg (which
// also zeroes every tile) cost a fifth of a call's time when run per call;
// reading it back (sttilecfg) is as slow. So each thread loads ours once per
// op: every CPU op entry bumps the epoch (tiles_new_op), and a kernel call
// reloads when its thread last configured in an earlier epoch. No foreign
// code runs on our threads inside an op, so within one the state is ours.
std::atomic<uint64_t> g_epoch{1};
thread_local uint64_t t_configured = 0;

inline void configure_tiles() {
  static const TileConfig cfg = make_config();
  const uint64_t e = g_epoch.load(std::memory_order_acquire);
  if (t_configured == e) return;
  asm volatile("ldtilecfg %0" ::"m"(cfg) : "memory");
  t_configured = e;
}

#define CX_TILE_LOAD(t, base, stride) \
  asm volatile("tileloadd (%0,%1,1), %%tmm" #t ::"r"(base), "r"(int64_t(stride)) : "memory")
#define CX_TILE_STORE(t, base, stride) \
  asm volatile("tilestored %%tmm" #t ", (%0,%1,1)" ::"r"(base), "r"(int64_t(stride)) : "memory")
#define CX_TILE_ZERO(t) asm volatile("tilezero %%tmm" #t ::)
#define CX_TILE_DP(c, a, b) asm volatile("tdpbf16ps %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::)

// The C tile (tmm0-3: rows 0-15 / 16-31 x columns 0-15 / 16-31) from c,
// or zero; and back to c.
inline void begin_c(float* c, int64_t ldc, bool accumulate) {
  const int64_t cs = ldc * int64_t(sizeof(float));
  float* c1 = c + 16 * ldc;
  if (accumulate) {
    CX_TILE_LOAD(0, c, cs);
    CX_TILE_LOAD(1, c + 16, cs);
    CX_TILE_LOAD(2, c1, cs);
    CX_TILE_LOAD(3, c1 + 16, cs);
  } else {
    CX_TILE_ZERO(0);
    CX_TILE_ZERO(1);
    CX_TILE_ZERO(2);
    CX_TILE_ZERO(3);
  }
}

inline void store_c(float* c, int64_t ldc) {
  const int64_t cs = ldc * int64_t(sizeof(float));
  float* c1 = c + 16 * ldc;
  CX_TILE_STORE(0, c, cs);
  CX_TILE_STORE(1, c + 16, cs);
  CX_TILE_STORE(2, c1, cs);
  CX_TILE_STORE(3, c1 + 16, cs);
}

// One 32-k chunk: A rows 0-15 at a0 and 16-31 at a1 (row strides s0, s1
// bytes), B's 16 pair rows at b; then the four products into the C tile.
// (bs: B's pair row stride in bytes, a packed panel's by default.)
inline void chunk_step(const Bf16Bits* a0, int64_t s0, const Bf16Bits* a1, int64_t s1,
                       const Bf16Bits* b, int64_t bs = kNR * 2 * int64_t(sizeof(Bf16Bits))) {
  CX_TILE_LOAD(4, a0, s0);
  CX_TILE_LOAD(5, a1, s1);
  CX_TILE_LOAD(6, b, bs);
  CX_TILE_LOAD(7, b + 32, bs);
  CX_TILE_DP(0, 4, 6);
  CX_TILE_DP(1, 4, 7);
  CX_TILE_DP(2, 5, 6);
  CX_TILE_DP(3, 5, 7);
}
constexpr int64_t kBChunk = (kChunk / 2) * kNR * 2;  // B values per chunk

void ukernel(int64_t kc, const Bf16Bits* a, const Bf16Bits* b, float* c, int64_t ldc,
             bool accumulate) {
  configure_tiles();
  begin_c(c, ldc, accumulate);
  for (int64_t k = 0; k < kc; k += kChunk) {
    chunk_step(a, 64, a + 16 * kChunk, 64, b);
    a += kMR * kChunk;
    b += kBChunk;
  }
  store_c(c, ldc);
}

// A in place (UKernelRows): rows 0-15 and 16-31 of each chunk lda apart.
void ukernel_rows(int64_t kc, const Bf16Bits* a, int64_t lda, const Bf16Bits* b, float* c,
                  int64_t ldc, bool accumulate) {
  configure_tiles();
  begin_c(c, ldc, accumulate);
  const int64_t as = lda * int64_t(sizeof(Bf16Bits));
  for (int64_t k = 0; k < kc; k += kChunk) {
    chunk_step(a + k, as, a + 16 * lda + k, as, b);
    b += kBChunk;
  }
  store_c(c, ldc);
}

// Both in place (UKernelRowsB): B's pair rows ldb apart.
void ukernel_rows_b(int64_t kc, const Bf16Bits* a, int64_t lda, const Bf16Bits* b, int64_t ldb,
                    float* c, int64_t ldc, bool accumulate) {
  configure_tiles();
  begin_c(c, ldc, accumulate);
  const int64_t as = lda * int64_t(sizeof(Bf16Bits)), bs = ldb * int64_t(sizeof(Bf16Bits));
  for (int64_t k = 0; k < kc; k += kChunk) {
    chunk_step(a + k, as, a + 16 * lda + k, as, b, bs);
    b += (kChunk / 2) * ldb;
  }
  store_c(c, ldc);
}

// Indirect A (UKernelIgemm, channels-last convs): row i of tap t is a pixel's
// run of kc channels at a[t*MR + i]; B holds, per tap, kc rounded up to 32
// pair rows (zero past kc). A 16-row A tile is loaded straight from the
// tensor when its rows are evenly spaced (16 neighbouring pixels of a row,
// any stride) and the chunk holds 32 channels; otherwise (row ends, padding
// taps, the last chunk of a kc that is not a multiple of 32) its rows are
// copied into a zero-filled 1 KiB tile first, so no row is read past kc.
inline const Bf16Bits* a_tile(const Bf16Bits* const* rows, int64_t k0, int64_t kc,
                              Bf16Bits* buf, int64_t* stride) {
  if (k0 + kChunk <= kc) {
    // Compared as addresses: rows may point into different buffers (a zero
    // row), where rows[0] + i*d would overflow (UBSan's pointer-overflow).
    const uintptr_t r0 = reinterpret_cast<uintptr_t>(rows[0]);
    const uintptr_t d = reinterpret_cast<uintptr_t>(rows[1]) - r0;
    bool even = true;
    for (int i = 2; i < 16; ++i) even &= reinterpret_cast<uintptr_t>(rows[i]) - r0 == i * d;
    if (even) {
      *stride = static_cast<int64_t>(d);
      return rows[0] + k0;
    }
  }
  const int64_t n = std::min<int64_t>(kChunk, kc - k0);
  if (n == kChunk) {  // whole rows: one 64-byte copy each (inlined, constant size)
    for (int i = 0; i < 16; ++i)
      __builtin_memcpy(buf + i * kChunk, rows[i] + k0, kChunk * sizeof(Bf16Bits));
    *stride = 64;
    return buf;
  }
  for (int i = 0; i < 16; ++i) {
    std::memcpy(buf + i * kChunk, rows[i] + k0, n * sizeof(Bf16Bits));
    std::memset(buf + i * kChunk + n, 0, (kChunk - n) * sizeof(Bf16Bits));
  }
  *stride = 64;
  return buf;
}

void ukernel_igemm(int64_t ks, int64_t kc, const Bf16Bits* const* a, const Bf16Bits* b, float* c,
                   int64_t ldc, bool accumulate) {
  configure_tiles();
  alignas(64) Bf16Bits buf[2][16 * kChunk];
  begin_c(c, ldc, accumulate);
  for (int64_t t = 0; t < ks; ++t) {
    const Bf16Bits* const* rows = a + t * kMR;
    for (int64_t k0 = 0; k0 < kc; k0 += kChunk) {
      int64_t s0, s1;
      const Bf16Bits* a0 = a_tile(rows, k0, kc, buf[0], &s0);
      const Bf16Bits* a1 = a_tile(rows + 16, k0, kc, buf[1], &s1);
      chunk_step(a0, s0, a1, s1, b);
      b += kBChunk;
    }
  }
  store_c(c, ldc);
}

// CPUID.(7,0):EDX bit 22 AMX-BF16, bit 24 AMX-TILE; the OS must enable the
// tile state (XCR0 bits 17, 18) and grant this process its use.
bool cpu_and_os_have_amx() {
  unsigned eax, ebx, ecx, edx;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  if (!(edx & (1u << 22)) || !(edx & (1u << 24))) return false;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !(ecx & (1u << 27))) return false;  // OSXSAVE
  unsigned lo, hi;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  if ((lo & (3u << 17)) != (3u << 17)) return false;
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}

}  // namespace amx

void tiles_new_op() { amx::g_epoch.fetch_add(1, std::memory_order_acq_rel); }

bool has_amx_bf16() {
  static const bool ok = amx::cpu_and_os_have_amx();
  return ok;
}

bool ukernels_amx(UKernelSet* out) {
  out->bf16_tiles = {&amx::ukernel, amx::kMR, amx::kNR, 2, amx::kChunk};
  out->bf16_igemm_tiles = {&amx::ukernel_igemm, amx::kMR, amx::kNR, 2, amx::kChunk};
  out->bf16_tiles_rows = {&amx::ukernel_rows, amx::kMR, amx::kNR};
  out->bf16_tiles_rows_b = {&amx::ukernel_rows_b, amx::kMR, amx::kNR, amx::kChunk};
  out->isa = "avx512+bf16+amx";
  return true;
}

}  // namespace cpu
}  // namespace convext

#else
namespace convext {
namespace cpu {
void tiles_new_op() {}
bool has_amx_bf16() { return false; }
bool ukernels_amx(UKernelSet*) { return false; }
}  // namespace cpu
}  // namespace convext
#endif
