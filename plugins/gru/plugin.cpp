// The gru plugin's entry point: libsb_gru.so.
#include "gru.hpp"

SELECTIVBENCH_PLUGIN(gru, sb::plugins::describe_gru)
