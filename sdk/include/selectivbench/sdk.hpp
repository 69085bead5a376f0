// The selectivbench plugin SDK: everything a plugin includes.
#pragma once

#include "selectivbench/mixer.hpp"
#include "selectivbench/options.hpp"
#include "selectivbench/plugin.hpp"
#include "selectivbench/shapes.hpp"
#include "selectivbench/torch_compat.hpp"
#include "selectivbench/blocks/delta_rule.hpp"
#include "selectivbench/blocks/gla.hpp"
#include "selectivbench/blocks/gla_scalar.hpp"
#include "selectivbench/blocks/init.hpp"
#include "selectivbench/blocks/norms.hpp"
#include "selectivbench/blocks/rotary.hpp"
#include "selectivbench/blocks/selective_scan.hpp"
#include "selectivbench/blocks/short_conv.hpp"
#include "selectivbench/blocks/wiring.hpp"
