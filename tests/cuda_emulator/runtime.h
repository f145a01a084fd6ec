#pragma once
// The host-only runtime layer (csrc/ops/cuda/runtime.cuh) for the CPU
// emulator (test-only): the same names, but kernels run on CPU fibers, the
// "device" has a settable SM count and 32-bit index limit, and each tensor pointer handed to a
// kernel registers the tensor's memory span for the bounds checks (outputs
// and scratch are first filled with NaN bytes, so unwritten elements show).

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace cuda_emulator {

// emulator.cpp
int sm_count();
int64_t int32_index_limit();
void register_tensor(const at::Tensor& t, bool write);
void run(const char* kernel, unsigned grid, unsigned block, const std::function<void()>& body);

// "convext::cuda::igemm_kernel<float, ...>" for launch<igemm_kernel<float, ...>>.
template <auto Kernel>
const char* kernel_name() {
  static const std::string name = [](std::string_view f) {
    const size_t b = f.find("Kernel = ") + 9;
    return std::string(f.substr(b, f.rfind(']') - b));
  }(__PRETTY_FUNCTION__);
  return name.c_str();
}

}  // namespace cuda_emulator

namespace convext {
namespace cuda {

struct NoDeviceGuard {};
inline NoDeviceGuard device_guard(const at::Tensor&) { return {}; }

inline int sm_count() { return ::cuda_emulator::sm_count(); }
inline int64_t int32_index_limit() { return ::cuda_emulator::int32_index_limit(); }

template <typename T>
at::Tensor scratch(const at::Tensor& like, int64_t n) {
  return at::empty({n}, like.options().dtype(c10::CppTypeToScalarType<T>::value));
}

template <typename T>
const T* read_ptr(const at::Tensor& t) {
  ::cuda_emulator::register_tensor(t, false);
  return t.const_data_ptr<T>();
}
template <typename T>
T* write_ptr(const at::Tensor& t) {
  ::cuda_emulator::register_tensor(t, true);
  return t.mutable_data_ptr<T>();
}

// Runs Kernel(args...) in every thread of every block; throws the first
// check that failed.
template <auto Kernel, typename... Args>
void launch(unsigned grid, unsigned block, Args&&... args) {
  ::cuda_emulator::run(::cuda_emulator::kernel_name<Kernel>(), grid, block,
                       [&] { Kernel(args...); });
}

}  // namespace cuda
}  // namespace convext

namespace cuda_emulator {
// Test controls (emulator.cpp): the emulated device's SM count (launch sizes
// and path choices depend on it) and 32-bit index limit, forgetting the tensors of the last op, and
// launches and blocks so far per kernel instantiation.
void set_sm_count(int n);
void set_int32_index_limit(int64_t n);
void clear_ranges();
std::map<std::string, int64_t> launch_counts();
std::map<std::string, int64_t> block_counts();
}  // namespace cuda_emulator
