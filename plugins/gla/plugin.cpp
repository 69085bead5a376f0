// The gla plugin's entry point: libsb_gla.so.
#include "gla.hpp"

SELECTIVBENCH_PLUGIN(gla, sb::plugins::describe_gla)
