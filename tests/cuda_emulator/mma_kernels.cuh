#pragma once
// Test-only kernels for the tensor-core built-ins of csrc/ops/cuda/mma.cuh,
// written against the portability headers only, so they build both for the
// CPU emulator (mma_kernels.cpp, run by tests/test_cuda_mma.py) and with nvcc
// (.ci/check_mma_ptx.sh asserts their PTX holds mma.sync, ldmatrix and
// cp.async, and that ptxas reports no spills): mma on fragments the test
// builds from the PTX tables, ldmatrix of known matrices, a one-warp 16x8xK
// GEMM through a 3-stage cp.async pipeline, ldmatrix and mma, with switches
// for the defects the checks must catch (a wrong fragment index, a skipped
// cp.async wait, a misaligned row address).

#include <cstring>
#include <type_traits>

#include "ops/cuda/mma.cuh"

namespace convext {
namespace cuda {
namespace mma_test {

// One warp: d = mma(a, b, c) on the fragments given per lane (a: 32x4,
// b: 32x2 registers, c: 32x4 floats). TF32 operands are float bits, rounded
// with to_tf32 first when `round`.
template <typename T>
__global__ void mma_fragments_kernel(const uint32_t* a, const uint32_t* b, const float* c,
                                     float* d, bool round) {
  const int l = threadIdx.x;
  uint32_t fa[4], fb[2];
  float fc[4], fd[4];
  for (int i = 0; i < 4; ++i) fa[i] = gload(a, l * 4 + i), fc[i] = gload(c, l * 4 + i);
  for (int i = 0; i < 2; ++i) fb[i] = gload(b, l * 2 + i);
  if constexpr (std::is_same_v<T, float>) {
    if (round) {
      auto r = [](uint32_t u) { float f; std::memcpy(&f, &u, 4); return to_tf32(f); };
      for (auto& x : fa) x = r(x);
      for (auto& x : fb) x = r(x);
    }
    mma_m16n8k8_tf32(fd, fa, fb, fc);
  } else {
    mma_m16n8k16<T>(fd, fa, fb, fc);
  }
  for (int i = 0; i < 4; ++i) gstore(d, l * 4 + i, fd[i]);
}

// N 8x8 matrices m[j][r][c] -> shared (row pitch 8 + 8 * pad) -> ldmatrix;
// out[lane][j] = r[j]. `shift` moves every row address by that many
// elements (1: misaligned).
template <int N, bool Trans>
__global__ void ldmatrix_kernel(const c10::Half* m, uint32_t* out, int pad, int shift) {
  constexpr int kMax = 4 * 8 * 16 + 8;
  CONVEXT_SHARED_ALIGNED(c10::Half, buf, kMax);
  const int l = threadIdx.x, pitch = 8 + 8 * pad;
  for (int e = l; e < N * 64; e += 32) buf[e / 8 * pitch + e % 8] = gload(m, e);
  for (int e = l; e < 8; e += 32) buf[N * 8 * pitch + e] = c10::Half(0.0f);  // shift's tail
  __syncthreads();
  const int j = l / 8 % N, r = l % 8;
  uint32_t regs[N];
  ldmatrix<N, Trans>(regs, buf + ((j * 8 + r) * pitch + shift));
  for (int i = 0; i < N; ++i) gstore(out, l * N + i, regs[i]);
}

// D(16x8) = A(16xK, row-major) * B + C through shared memory, one warp.
// B is given n-major (Bt[8][K], ldmatrix) or k-major (B[K][8],
// ldmatrix.trans). Stages of 16 k go global -> shared by cp.async in a
// 3-deep ring; `skip_wait` leaves out the wait, `swap_a` swaps the second
// and third A matrices (a fragment index bug).
constexpr int kStages = 3, kPitch = 24;  // 16 k + 8 halves of padding: 48-byte rows

template <typename T>
__global__ void gemm_tile_kernel(const T* A, const T* B, float* D, int K, bool b_kmajor,
                                 bool skip_wait, bool swap_a) {
  CONVEXT_SHARED_ALIGNED(T, a_s, kStages * 16 * kPitch);
  CONVEXT_SHARED_ALIGNED(T, b_s, kStages * 16 * kPitch);
  const int l = threadIdx.x, steps = K / 16;
  auto load = [&](int step) {
    const int slot = step % kStages * 16 * kPitch, k0 = step * 16;
    // A: 16 rows x 2 chunks of 8; lane l: row l / 2, chunk l % 2
    cp_async_16(a_s + (slot + l / 2 * kPitch + l % 2 * 8), A, int64_t{l / 2} * K + k0 + l % 2 * 8,
                true);
    if (l < 16) {
      if (b_kmajor)  // B[k0 + l][0..7]
        cp_async_16(b_s + (slot + l * kPitch), B, int64_t{k0 + l} * 8, true);
      else  // Bt[l / 2][k0 + 8 * (l % 2) ..]
        cp_async_16(b_s + (slot + l / 2 * kPitch + l % 2 * 8), B,
                    int64_t{l / 2} * K + k0 + l % 2 * 8, true);
    }
  };
  float acc[4] = {0, 0, 0, 0};
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) load(s);
    cp_async_commit();
  }
  for (int s = 0; s < steps; ++s) {
    if (!skip_wait) cp_async_wait<kStages - 2>();
    __syncthreads();
    if (s + kStages - 1 < steps) load(s + kStages - 1);
    cp_async_commit();
    const int slot = s % kStages * 16 * kPitch;
    // A matrices: 0 = rows 0-7 / k 0-7, 1 = rows 8-15 / k 0-7, 2 = rows 0-7 / k 8-15, 3 = rows 8-15 / k 8-15
    const int j = l / 8, r = l % 8;
    const int jj = swap_a && (j == 1 || j == 2) ? 3 - j : j;
    uint32_t fa[4], fb[2];
    ldmatrix<4>(fa, a_s + (slot + (r + 8 * (jj % 2)) * kPitch + 8 * (jj / 2)));
    if (b_kmajor)  // matrix i: B[8i + r][0..7], transposed
      ldmatrix<2, true>(fb, b_s + (slot + (r + 8 * (j % 2)) * kPitch));
    else  // matrix i: Bt[r][8i ..]
      ldmatrix<2>(fb, b_s + (slot + r * kPitch + 8 * (j % 2)));
    mma_m16n8k16<T>(acc, fa, fb, acc);
  }
  cp_async_wait<0>();
  const int g = l / 4, t = l % 4;
  for (int i = 0; i < 4; ++i) gstore(D, int64_t{g + 8 * (i / 2)} * 8 + 2 * t + i % 2, acc[i]);
}

// 32 threads, each copies 4 chunks of 4 floats src -> shared, one cp.async
// group per chunk (zero-filled where ok[] is 0), waits until `pending`
// groups remain, then reads back its first `read` chunks (read > 4 -
// pending: a read of a group not yet waited for).
__global__ void cp_async_kernel(const float* src, const int32_t* ok, float* dst, int pending,
                                int read) {
  CONVEXT_SHARED_ALIGNED(float, buf, 32 * 16);
  const int l = threadIdx.x;
  for (int c = 0; c < 4; ++c) {
    const int e = (c * 32 + l) * 4;
    cp_async_16(buf + e, src, e, gload(ok, c * 32 + l) != 0);
    cp_async_commit();
  }
  switch (pending) {
    case 0: cp_async_wait<0>(); break;
    case 1: cp_async_wait<1>(); break;
    case 2: cp_async_wait<2>(); break;
    default: cp_async_wait<3>(); break;
  }
  __syncthreads();
  for (int c = 0; c < read; ++c)
    for (int k = 0; k < 4; ++k) {
      const int e = (c * 32 + l) * 4 + k;
      gstore(dst, e, static_cast<float>(buf[e]));
    }
  cp_async_wait<0>();
}

}  // namespace mma_test
}  // namespace cuda
}  // namespace convext
