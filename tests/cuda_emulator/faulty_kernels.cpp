// Test-only kernels with one deliberate defect each, written against the same
// portability header as the real ones, to prove that every check of the
// emulator trips (and two correct ones, to prove it does not cry wolf).

#include <torch/extension.h>

#include "cuda_emulator/runtime.h"
#include "ops/cuda/device.cuh"

namespace convext {
namespace cuda {
namespace {

constexpr int kN = 64;

// out[i] = in[(i + shift) % n] through shared memory; without the barrier,
// a read-after-write race (shift -1: the neighbour has already written) or
// a write-after-read one (shift 1: it writes after this thread read).
__global__ void rotate_kernel(const float* in, float* out, int shift, bool sync) {
  CONVEXT_SHARED(float, buf, kN);
  const int i = threadIdx.x;
  buf[i] = 0.0f;
  __syncthreads();
  buf[i] = gload(in, i);
  if (sync) __syncthreads();
  gstore(out, i, static_cast<float>(buf[(i + kN + shift) % kN]));
}

// Writes after the others read, with no barrier between (a write-after-read
// race: the double-buffer bug of a missing end-of-step __syncthreads).
__global__ void reuse_buffer_kernel(const float* in, float* out) {
  CONVEXT_SHARED(float, buf, kN);
  const int i = threadIdx.x;
  buf[i] = gload(in, i);
  __syncthreads();
  const float v = buf[(i + 1) % kN];
  buf[i] = v * 2;  // race: thread i - 1 reads buf[i] in the same interval
  gstore(out, i, v);
}

// Reads element n of an n-element tensor (or writes it).
__global__ void overrun_kernel(const float* in, float* out, int64_t n, bool write) {
  const int64_t i = blockIdx.x * int64_t{blockDim.x} + threadIdx.x;
  if (i > n) return;
  if (write) {
    gstore(out, i, 1.0f);
  } else if (i < n) {
    gstore(out, i, gload(in, i + 1));
  }
}

// Half the block skips the barrier and exits.
__global__ void divergent_barrier_kernel(float* out) {
  if (threadIdx.x < kN / 2) __syncthreads();
  gstore(out, threadIdx.x, 1.0f);
}

// Every thread reaches a barrier, but two different ones.
__global__ void split_barrier_kernel(float* out) {
  if (threadIdx.x % 2) {
    __syncthreads();
  } else {
    __syncthreads();
  }
  gstore(out, threadIdx.x, 1.0f);
}

// Lane 0 skips a full-warp shuffle.
__global__ void shuffle_deadlock_kernel(float* out) {
  float v = threadIdx.x;
  if (threadIdx.x != 0) v = __shfl_down_sync(0xffffffffu, v, 1);
  gstore(out, threadIdx.x, v);
}

// Reads a shared element nobody wrote.
__global__ void uninitialised_shared_kernel(float* out) {
  CONVEXT_SHARED(float, buf, kN);
  if (threadIdx.x > 0) buf[threadIdx.x] = 1.0f;
  __syncthreads();
  gstore(out, threadIdx.x, static_cast<float>(buf[(threadIdx.x + 1) % kN]));
}

// Indexes one past a shared array.
__global__ void shared_overrun_kernel(float* out) {
  CONVEXT_SHARED(float, buf, kN);
  buf[threadIdx.x + 1] = 1.0f;
  __syncthreads();
  gstore(out, threadIdx.x, 0.0f);
}

// Correct: per-warp sums by shuffles, a ballot of odd lanes, a block-wide
// atomic count.
__global__ void warp_ops_kernel(const float* in, float* sums, unsigned* ballots, float* count) {
  float v = gload(in, threadIdx.x);
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const unsigned b = __ballot_sync(0xffffffffu, threadIdx.x % 2);
  const float x = __shfl_xor_sync(0xffffffffu, static_cast<float>(threadIdx.x), 1);
  if (x != static_cast<float>(threadIdx.x ^ 1)) gstore(count, 0, -1e9f);
  if (threadIdx.x % 32 == 0) {
    gstore(sums, threadIdx.x / 32, v);
    gstore(ballots, threadIdx.x / 32, b);
  }
  atomicAdd(count, 1.0f);
}

// A fresh op: no registered tensors; x: kN contiguous floats.
at::Tensor fresh(const at::Tensor& x) {
  cuda_emulator::clear_ranges();
  TORCH_CHECK(x.numel() == kN && x.scalar_type() == at::kFloat && x.is_contiguous());
  return at::empty_like(x);
}

// Binds a kernel that takes only an output: name(x) runs it on one block of kN.
template <auto Kernel>
void bind_output_only(pybind11::module& m, const char* name) {
  m.def(name, [](const at::Tensor& x) {
    at::Tensor out = fresh(x);
    launch<Kernel>(1, kN, write_ptr<float>(out));
  });
}

}  // namespace
}  // namespace cuda
}  // namespace convext

void bind_faulty_kernels(pybind11::module& m) {
  using namespace convext::cuda;
  m.def("rotate", [](const at::Tensor& x, int shift, bool sync) {
    at::Tensor out = fresh(x);
    launch<rotate_kernel>(1, kN, read_ptr<float>(x), write_ptr<float>(out), shift, sync);
    return out;
  });
  m.def("reuse_buffer", [](const at::Tensor& x) {
    at::Tensor out = fresh(x);
    launch<reuse_buffer_kernel>(1, kN, read_ptr<float>(x), write_ptr<float>(out));
    return out;
  });
  m.def("overrun", [](const at::Tensor& x, bool write) {
    at::Tensor out = fresh(x);
    launch<overrun_kernel>(2, kN, read_ptr<float>(x), write_ptr<float>(out), int64_t{kN}, write);
    return out;
  });
  m.def("write_input", [](const at::Tensor& x) {
    fresh(x);
    launch<divergent_barrier_kernel>(1, kN / 2, const_cast<float*>(read_ptr<float>(x)));
  });
  bind_output_only<divergent_barrier_kernel>(m, "divergent_barrier");
  bind_output_only<split_barrier_kernel>(m, "split_barrier");
  bind_output_only<shuffle_deadlock_kernel>(m, "shuffle_deadlock");
  bind_output_only<uninitialised_shared_kernel>(m, "uninitialised_shared");
  bind_output_only<shared_overrun_kernel>(m, "shared_overrun");
  m.def("warp_ops", [](const at::Tensor& x) {
    at::Tensor sums = at::empty({kN / 32}, x.options());
    at::Tensor ballots = at::empty({kN / 32}, x.options().dtype(at::kInt));
    at::Tensor count = at::zeros({1}, x.options());
    fresh(x);
    read_ptr<float>(count);  // registered before write_ptr: no NaN fill, stays zero
    launch<warp_ops_kernel>(1, kN, read_ptr<float>(x), write_ptr<float>(sums),
                            reinterpret_cast<unsigned*>(write_ptr<int>(ballots)),
                            write_ptr<float>(count));
    return std::make_tuple(sums, ballots, count);
  });
}
