// Window geometry (strides, dilations, pads) of a Conv/ConvTranspose/pool node for a given input shape.
#pragma once
#include <vector>

#include "ir/graph.h"
#include "kernels/conv.h"

namespace lowbit {

// `kernel` comes from the weight's spatial dims or the kernel_shape attribute. Explicit pads only: call
// resolve_auto_pad() afterwards for auto_pad. Errors name the node.
ConvGeom node_window_geom(const Node& n, const Shape& xs, const std::vector<int64_t>& kernel);

// The geometry of a ConvTranspose node for input x and weight w ([C, M/group, *kernel]): `in` is x's spatial size,
// `out` the result's, pads resolved from pads / auto_pad / output_shape / output_padding (a pad may be negative:
// output_shape larger than the full result adds rows at the end). Errors name the node.
ConvGeom conv_transpose_geom(const Node& n, const Shape& xs, const Shape& ws);

}  // namespace lowbit
