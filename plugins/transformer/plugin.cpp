// The transformer plugin's entry point: libsb_transformer.so.
#include "transformer.hpp"

SELECTIVBENCH_PLUGIN(transformer, sb::plugins::describe_transformer)
