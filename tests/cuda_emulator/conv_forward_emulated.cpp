// The project's conv_forward_cuda.cu compiled as host C++ for the CPU emulator.
#include "ops/cuda/conv_forward_cuda.cu"
