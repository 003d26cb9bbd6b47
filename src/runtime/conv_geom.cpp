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

ConvGeom conv_transpose_geom(const Node& n, const Shape& xs, const Shape& ws) {
  std::string where = n.describe();
  check(ws.size() == xs.size(), where, ": weight rank ", ws.size(), " differs from input rank ", xs.size());
  ConvGeom g = node_window_geom(n, xs, Shape(ws.begin() + 2, ws.end()));
  g.group = n.attr_int("group", 1);
  check(g.group > 0, where, ": group must be positive");
  check(ws[0] == g.in_ch, where, ": weight ", shape_str(ws), " does not match ", g.in_ch, " input channels");
  g.out_ch = ws[1] * g.group;
  size_t r = g.in.size();
  auto out_pad = n.attr_ints("output_padding", std::vector<int64_t>(r, 0));
  auto out_shape = n.attr_ints("output_shape");
  std::string ap = n.attr_string("auto_pad", "NOTSET");
  check(out_pad.size() == r, where, ": output_padding has ", out_pad.size(), " values for ", r, " spatial dims");
  check(out_shape.empty() || out_shape.size() >= r, where, ": output_shape has fewer than ", r, " values");
  g.out.assign(r, 0);
  for (size_t i = 0; i < r; ++i) {
    int64_t span = (g.kernel[i] - 1) * g.dilation[i] + 1;
    int64_t full = g.stride[i] * (g.in[i] - 1) + out_pad[i] + span;
    if (!out_shape.empty() || ap == "SAME_UPPER" || ap == "SAME_LOWER") {
      int64_t target = !out_shape.empty() ? out_shape[out_shape.size() - r + i] : g.in[i] * g.stride[i];
      // total may be negative (output_shape larger than the full result): floor division, as the ONNX spec's
      // reference, turns that into extra rows at the end.
      int64_t total = full - target;
      int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      if (ap == "SAME_UPPER") {
        g.pad_begin[i] = half;
        g.pad_end[i] = total - half;
      } else {
        g.pad_begin[i] = total - half;
        g.pad_end[i] = half;
      }
      g.out[i] = target;
    } else {
      if (ap == "VALID") g.pad_begin[i] = g.pad_end[i] = 0;
      g.out[i] = full - g.pad_begin[i] - g.pad_end[i];
    }
  }
  return g;
}

}  // namespace lowbit
