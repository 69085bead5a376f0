// The delta_net plugin's entry point: libsb_delta_net.so.
#include "delta_net.hpp"

SELECTIVBENCH_PLUGIN(delta_net, sb::plugins::describe_delta_net)
