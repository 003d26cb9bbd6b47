// Broadcast shape computation.
#include "kernels/broadcast.h"

namespace lowbit {

Shape broadcast_shapes(const std::vector<Shape>& shapes, const std::string& where) {
  size_t r = 0;
  for (auto& s : shapes) r = std::max(r, s.size());
  Shape out(r, 1);
  for (auto& s : shapes) {
    size_t off = r - s.size();
    for (size_t d = 0; d < s.size(); ++d) {
      int64_t& o = out[off + d];
      if (s[d] == o || s[d] == 1) continue;
      if (o == 1) {
        o = s[d];
        continue;
      }
      std::string all;
      for (auto& x : shapes) all += shape_str(x) + " ";
      fail(where, ": shapes ", all, "cannot be broadcast together");
    }
  }
  // A zero-sized dim broadcasts only against 1 or 0 (handled above since 0 != 1).
  return out;
}

}  // namespace lowbit
