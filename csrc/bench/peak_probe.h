#pragma once
#include <string>

namespace convext {
namespace cpu {

// GFLOP/s one core's microkernel sustains for `dtype` ("float32", "float64",
// "bfloat16", "float16") on cache-resident panels, timed for `seconds`.
double microkernel_gflops(const std::string& dtype, double seconds);

}  // namespace cpu
}  // namespace convext
