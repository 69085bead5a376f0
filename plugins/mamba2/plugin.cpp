// The mamba2 plugin's entry point: libsb_mamba2.so.
#include "mamba2.hpp"

SELECTIVBENCH_PLUGIN(mamba2, sb::plugins::describe_mamba2)
