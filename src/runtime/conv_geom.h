// Window geometry (strides, dilations, pads) of a Conv/ConvTranspose/pool node for a given input shape.
#pragma once
#include <vector>

#include "ir/graph.h"
#include "kernels/conv.h"

namespace lowbit {

// `kernel` comes from the weight's spatial dims or the kernel_shape attribute. Explicit pads only: call
// resolve_auto_pad() afterwards for auto_pad. Errors name the node.
ConvGeom node_window_geom(const Node& n, const Shape& xs, const std::vector<int64_t>& kernel);

}  // namespace lowbit
