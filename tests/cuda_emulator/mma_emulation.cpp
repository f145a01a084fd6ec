// mma.sync and cp.async for the CPU emulator (test-only; the built-ins are
// declared in mma.h, the layouts are documented in csrc/ops/cuda/mma.cuh).
// The fragment maps below are the PTX ISA's tables ("Matrix Fragments for
// mma.m16n8k16 with floating point type", "Matrix Fragments for mma.m16n8k8"
// for .tf32), written out independently of any kernel.
// Products are exact and summed in double, then added to C and rounded to
// float once: the hardware's result within the f32 accumulation bound.
// TF32 operands keep only their top 19 bits, as the tensor core reads them.

#include <c10/util/Exception.h>

#include <cinttypes>
#include <cstdio>
#include <deque>
#include <string>
#include <vector>

#include "cuda_emulator/mma.h"

namespace cuda_emulator {

uint64_t block_serial();  // emulator.cpp
[[noreturn]] void fail_check(const std::string& what);

namespace {

struct Fragments {
  const uint32_t* a;
  const uint32_t* b;
};

double half_value(MmaType type, uint32_t bits16) {
  const auto b = static_cast<uint16_t>(bits16);
  return type == MmaType::f16 ? static_cast<float>(c10::Half(b, c10::Half::from_bits()))
                              : static_cast<float>(c10::BFloat16(b, c10::BFloat16::from_bits()));
}

double tf32_value(uint32_t bits) {
  bits &= ~0x1fffu;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Per lane of the block on this CPU thread: its open cp.async writes and its
// committed groups, oldest first.
struct LaneCopies {
  std::vector<std::function<void()>> open;
  std::deque<std::vector<std::function<void()>>> groups;
};
thread_local uint64_t tl_serial = 0;
thread_local std::vector<LaneCopies> tl_lanes;

LaneCopies& lane_copies() {
  const uint64_t s = block_serial();
  if (s != tl_serial) {
    tl_serial = s;
    tl_lanes.assign(size_t{block_dim().x} * block_dim().y * block_dim().z, LaneCopies{});
  }
  const uint3 &t = thread_idx(), &d = block_dim();
  return tl_lanes[(t.z * d.y + t.y) * d.x + t.x];
}

}  // namespace

void mma(MmaType type, float* d, const uint32_t* a, const uint32_t* b, const float* c,
         std::source_location site) {
  Fragments mine{a, b};
  uint64_t lanes[32];
  warp_exchange(0xffffffffu, reinterpret_cast<uintptr_t>(&mine), lanes, site);
  const bool tf32 = type == MmaType::tf32;
  const int K = tf32 ? 8 : 16;
  double A[16][16], B[16][8];
  for (int l = 0; l < 32; ++l) {
    const Fragments& f = *reinterpret_cast<const Fragments*>(lanes[l]);
    const int g = l / 4, t = l % 4;
    for (int i = 0; i < 4; ++i) {
      if (tf32) {
        A[g + 8 * (i % 2)][t + 4 * (i / 2)] = tf32_value(f.a[i]);
      } else {
        A[g + 8 * (i % 2)][2 * t + 8 * (i / 2)] = half_value(type, f.a[i]);
        A[g + 8 * (i % 2)][2 * t + 8 * (i / 2) + 1] = half_value(type, f.a[i] >> 16);
      }
    }
    for (int i = 0; i < 2; ++i) {
      if (tf32) {
        B[t + 4 * i][g] = tf32_value(f.b[i]);
      } else {
        B[2 * t + 8 * i][g] = half_value(type, f.b[i]);
        B[2 * t + 8 * i + 1][g] = half_value(type, f.b[i] >> 16);
      }
    }
  }
  const int lane = static_cast<int>(lane_id()), g = lane / 4, t = lane % 4;
  float out[4];
  for (int i = 0; i < 4; ++i) {
    const int row = g + 8 * (i / 2), col = 2 * t + i % 2;
    double s = 0;
    for (int k = 0; k < K; ++k) s += A[row][k] * B[k][col];
    out[i] = static_cast<float>(s + c[i]);
  }
  __syncwarp(0xffffffffu, site);  // every lane has read the fragments before any changes them
  std::memcpy(d, out, sizeof out);  // d may alias c
}

void check_aligned16(const void* p, const char* what) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  if (a % 16 != 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%" PRIxPTR, a);
    fail_check(std::string("misaligned ") + what + " " + buf + " (needs 16 bytes)");
  }
}

void cp_async_issue(std::function<void()> land) { lane_copies().open.push_back(std::move(land)); }

void cp_async_commit(std::source_location) {
  LaneCopies& l = lane_copies();
  l.groups.push_back(std::move(l.open));
  l.open.clear();
}

void cp_async_wait_group(int n, std::source_location) {
  LaneCopies& l = lane_copies();
  while (static_cast<int>(l.groups.size()) > n) {
    for (auto& land : l.groups.front()) land();
    l.groups.pop_front();
  }
}

}  // namespace cuda_emulator
