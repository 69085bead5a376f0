// The s4d plugin's entry point: libsb_s4d.so.
#include "s4d.hpp"

SELECTIVBENCH_PLUGIN(s4d, sb::plugins::describe_s4d)
