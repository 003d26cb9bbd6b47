#include "runtime/conv_geom.h"

#include "core/checked.h"

namespace lowbit {

ConvGeom node_window_geom(const Node& n, const Shape& xs, const std::vector<int64_t>& kernel) {
  std::string where = n.describe();
  check(xs.size() >= 3, where, ": input must be [N, C, spatial...], got ", shape_str(xs));
  size_t r = xs.size() - 2;
  ConvGeom g;
  g.batch = xs[0];
  g.in_ch = xs[1];
  g.in.assign(xs.begin() + 2, xs.end());
  g.kernel = kernel;
  check(g.kernel.size() == r, where, ": kernel has ", g.kernel.size(), " spatial dims, input has ", r);
  g.stride = n.attr_ints("strides", std::vector<int64_t>(r, 1));
  g.dilation = n.attr_ints("dilations", std::vector<int64_t>(r, 1));
  auto pads = n.attr_ints("pads", std::vector<int64_t>(2 * r, 0));
  check(g.stride.size() == r && g.dilation.size() == r && pads.size() == 2 * r, where,
        ": strides/dilations/pads do not match ", r, " spatial dims");
  for (size_t i = 0; i < r; ++i) {
    check(g.stride[i] > 0 && g.dilation[i] > 0 && g.kernel[i] > 0, where, ": strides, dilations and kernel must be positive");
    check(pads[i] >= 0 && pads[i + r] >= 0, where, ": negative pads");
    // Bounds for all later window arithmetic (output sizes, SAME padding, transposed sizes): none may wrap.
    int64_t span = checked_add(checked_mul(g.kernel[i] - 1, g.dilation[i], where, ": dilated kernel"), 1, where);
    int64_t padded = checked_add(checked_add(g.in[i], pads[i], where, ": padded input"), pads[i + r], where);
    checked_add(checked_add(padded, span, where, ": window arithmetic"), g.stride[i], where, ": window arithmetic");
    checked_add(checked_mul(g.stride[i], g.in[i], where, ": strided size"), span, where, ": strided size");
  }
  g.pad_begin.assign(pads.begin(), pads.begin() + r);
  g.pad_end.assign(pads.begin() + r, pads.end());
  return g;
}

}  // namespace lowbit
