// The mesa_net plugin's entry point: libsb_mesa_net.so.
#include "mesa_net.hpp"

SELECTIVBENCH_PLUGIN(mesa_net, sb::plugins::describe_mesa_net)
