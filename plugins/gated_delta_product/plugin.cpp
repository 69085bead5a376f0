// The gated_delta_product plugin's entry point: libsb_gated_delta_product.so.
#include "gated_delta_product.hpp"

SELECTIVBENCH_PLUGIN(gated_delta_product, sb::plugins::describe_gated_delta_product)
