// Image preprocessing: channel conversion, resize (stb_image_resize), center crop, scale, mean/std, CHW.
#include <stb/stb_image_resize.h>

#include <algorithm>
#include <cmath>

#include "data/source.h"

namespace lowbit::data {

namespace {
void resized_size(int h, int w, int shorter, int& rh, int& rw) {
  if (shorter <= 0) {
    rh = h, rw = w;
  } else if (h <= w) {
    rh = shorter;
    rw = std::max(1, (int)std::lround((double)w * shorter / h));
  } else {
    rw = shorter;
    rh = std::max(1, (int)std::lround((double)h * shorter / w));
  }
}
}  // namespace

Shape preprocessed_shape(int h, int w, int c, const Preprocess& pre) {
  int rh, rw;
  resized_size(h, w, pre.resize, rh, rw);
  int oh = pre.crop_h > 0 ? pre.crop_h : rh, ow = pre.crop_w > 0 ? pre.crop_w : rw;
  int oc = pre.channels > 0 ? pre.channels : c;
  return {oc, oh, ow};
}

void preprocess_image(const uint8_t* px, int h, int w, int c, const Preprocess& pre, int out_h, int out_w, float* out,
                      const std::string& what) {
  check(c == 1 || c == 3 || c == 4, what, ": ", c, " channels (expected 1, 3 or 4)");
  int oc = pre.channels > 0 ? pre.channels : (c == 4 ? 3 : c);
  check(oc == 1 || oc == 3, what, ": cannot produce ", oc, " channels");
  int rh, rw;
  resized_size(h, w, pre.resize, rh, rw);
  std::vector<uint8_t> resized;
  const uint8_t* src = px;
  if (rh != h || rw != w) {
    resized.resize((size_t)rh * rw * c);
    check(stbir_resize_uint8(px, w, h, 0, resized.data(), rw, rh, 0, c) == 1, what, ": resize failed");
    src = resized.data();
  }
  int ch = pre.crop_h > 0 ? pre.crop_h : rh, cw = pre.crop_w > 0 ? pre.crop_w : rw;
  check(ch <= rh && cw <= rw, what, ": crop ", ch, "x", cw, " is larger than the ", rh, "x", rw, " image");
  check(ch == out_h && cw == out_w, what, ": image is ", ch, "x", cw, " after preprocessing, expected ", out_h, "x",
        out_w, " (all images must have one size; use --resize/--crop)");
  int y0 = (rh - ch) / 2, x0 = (rw - cw) / 2;
  auto stat = [&](const std::vector<float>& v, int k, float dflt) { return v.empty() ? dflt : v[v.size() == 1 ? 0 : k]; };
  check(pre.mean.empty() || pre.mean.size() == 1 || (int)pre.mean.size() == oc, what, ": mean has ", pre.mean.size(),
        " values for ", oc, " channels");
  check(pre.std.empty() || pre.std.size() == 1 || (int)pre.std.size() == oc, what, ": std has ", pre.std.size(),
        " values for ", oc, " channels");
  for (int k = 0; k < oc; ++k) {
    float m = stat(pre.mean, k, 0.f), s = stat(pre.std, k, 1.f);
    int src_k = (oc == 3 && pre.bgr) ? 2 - k : k;
    for (int y = 0; y < ch; ++y)
      for (int x = 0; x < cw; ++x) {
        const uint8_t* p = src + ((size_t)(y + y0) * rw + (x + x0)) * c;
        float v;
        if (oc == 1) v = c == 1 ? p[0] : 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];  // ITU-R BT.601 luma
        else v = c == 1 ? p[0] : p[src_k];
        out[((size_t)k * ch + y) * cw + x] = (v * pre.scale - m) / s;
      }
  }
}

}  // namespace lowbit::data
