// The gated_delta_net plugin's entry point: libsb_gated_delta_net.so.
#include "gated_delta_net.hpp"

SELECTIVBENCH_PLUGIN(gated_delta_net, sb::plugins::describe_gated_delta_net)
