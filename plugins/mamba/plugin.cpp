// The mamba plugin's entry point: libsb_mamba.so.
#include "mamba.hpp"

SELECTIVBENCH_PLUGIN(mamba, sb::plugins::describe_mamba)
