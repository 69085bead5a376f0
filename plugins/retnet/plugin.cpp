// The retnet plugin's entry point: libsb_retnet.so.
#include "retnet.hpp"

SELECTIVBENCH_PLUGIN(retnet, sb::plugins::describe_retnet)
