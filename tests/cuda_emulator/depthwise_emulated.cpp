// The project's depthwise_cuda.cu compiled as host C++ for the CPU emulator.
#include "ops/cuda/depthwise_cuda.cu"
