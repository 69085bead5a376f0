// The linear_attention plugin's entry point: libsb_linear_attention.so.
#include "linear_attention.hpp"

SELECTIVBENCH_PLUGIN(linear_attention, sb::plugins::describe_linear_attention)
