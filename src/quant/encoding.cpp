// Quantization math over plain arrays.
#include "quant/encoding.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace lowbit::quant {

int32_t Grid::qmin() const {
  if (is_signed) return narrow ? -((1 << (bits - 1)) - 1) : -(1 << (bits - 1));
  return narrow ? 1 : 0;
}
int32_t Grid::qmax() const { return is_signed ? (1 << (bits - 1)) - 1 : (int32_t)((1u << bits) - 1); }

void validate(const QuantizerSpec& s) {
  check(s.grid.bits >= 2 && s.grid.bits <= 16, "bit width ", s.grid.bits, " is outside 2..16");
  if (s.granularity == Granularity::PerGroup) check(s.group_size > 0, "per-group quantization needs a group size > 0");
}

float round_with(float v, Rounding r) {
  return r == Rounding::HalfToEven ? std::nearbyint(v) : std::round(v);  // nearbyint: FE_TONEAREST (ties to even)
}

std::pair<float, int32_t> scale_zero_point(float lo, float hi, const QuantizerSpec& spec) {
  validate(spec);
  check(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "invalid quantization range [", lo, ", ", hi, "]");
  const Grid& g = spec.grid;
  double qmin = g.qmin(), qmax = g.qmax();
  auto pow2 = [&](double s) { return spec.scale_form == ScaleForm::PowerOfTwo ? std::exp2(std::ceil(std::log2(s))) : s; };
  if (spec.symmetric) {
    double absmax = std::max(std::abs((double)lo), std::abs((double)hi));
    int32_t z = g.is_signed ? 0 : (1 << (g.bits - 1));
    if (absmax == 0) return {1.f, z};
    return {(float)pow2(absmax / (qmax - z)), z};
  }
  double l = std::min<double>(lo, 0), h = std::max<double>(hi, 0);
  if (h - l == 0) return {1.f, (int32_t)std::clamp(0.0, qmin, qmax)};
  double s = pow2((h - l) / (qmax - qmin));
  auto zero_for = [&](double sc) { return std::clamp((double)round_with((float)(qmin - l / sc), spec.rounding), qmin, qmax); };
  double z = zero_for(s);
  // A side of the range that holds data needs at least one code: keep z off that end of the grid.
  if (h > 0 && z >= qmax) z = qmax - 1;
  if (l < 0 && z <= qmin) z = qmin + 1;
  // Rounding z may push an end of the range off the grid: enlarge s (z stays) until both ends fit.
  double need = s;
  if (qmax > z) need = std::max(need, h / (qmax - z));
  if (qmin < z) need = std::max(need, l / (qmin - z));
  if (need > s) s = pow2(need);
  return {(float)s, (int32_t)z};
}

int64_t num_slices(const Shape& shape, const QuantizerSpec& spec) {
  if (spec.granularity == Granularity::PerTensor) return 1;
  int r = (int)shape.size();
  check(spec.axis >= 0 && spec.axis < r, "quantization axis ", spec.axis, " is out of range for shape ", shape_str(shape));
  int64_t c = shape[spec.axis];
  if (spec.granularity == Granularity::PerChannel) return c;
  int64_t rest = c ? shape_numel(shape) / c : 0;
  return c * ((rest + spec.group_size - 1) / spec.group_size);
}

std::vector<int64_t> slice_index(const Shape& shape, const QuantizerSpec& spec) {
  validate(spec);
  int64_t n = shape_numel(shape);
  std::vector<int64_t> idx((size_t)n, 0);
  if (spec.granularity == Granularity::PerTensor) return idx;
  num_slices(shape, spec);  // validates the axis
  int64_t c = shape[spec.axis], inner = 1;
  for (size_t d = spec.axis + 1; d < shape.size(); ++d) inner *= shape[d];
  int64_t rest = c ? n / c : 0;
  int64_t blocks = spec.granularity == Granularity::PerGroup ? (rest + spec.group_size - 1) / spec.group_size : 1;
  for (int64_t i = 0; i < n; ++i) {
    int64_t ch = (i / inner) % c;
    if (blocks == 1) {
      idx[(size_t)i] = ch;
      continue;
    }
    int64_t pos = (i / (inner * c)) * inner + i % inner;  // position inside the channel, axis removed
    idx[(size_t)i] = ch * blocks + pos / spec.group_size;
  }
  return idx;
}

std::vector<std::pair<float, float>> minmax_per_slice(const float* x, const Shape& shape, const QuantizerSpec& spec) {
  auto idx = slice_index(shape, spec);
  int64_t k = num_slices(shape, spec);
  std::vector<std::pair<float, float>> r((size_t)k, {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()});
  for (size_t i = 0; i < idx.size(); ++i) {
    check(std::isfinite(x[i]), "cannot quantize a tensor holding NaN or Inf (element ", i, ")");
    auto& [lo, hi] = r[(size_t)idx[i]];
    lo = std::min(lo, x[i]);
    hi = std::max(hi, x[i]);
  }
  for (auto& [lo, hi] : r)
    if (lo > hi) lo = hi = 0.f;  // an empty slice (zero-sized tensor)
  return r;
}

Encoding make_encoding(const QuantizerSpec& spec, const Shape& shape, const std::vector<std::pair<float, float>>& ranges) {
  check((int64_t)ranges.size() == num_slices(shape, spec), "make_encoding: ", ranges.size(), " ranges for ",
        num_slices(shape, spec), " slices");
  Encoding e;
  e.spec = spec;
  e.shape = shape;
  for (auto& [lo, hi] : ranges) {
    auto [s, z] = scale_zero_point(lo, hi, spec);
    e.scale.push_back(s);
    e.zero_point.push_back(z);
  }
  return e;
}

void quantize(const float* x, int32_t* q, const Encoding& e) {
  auto idx = slice_index(e.shape, e.spec);
  for (size_t i = 0; i < idx.size(); ++i) {
    int64_t k = idx[i];
    q[i] = quantize_one(x[i], e.scale[k], e.zero_point[k], e.spec.grid, e.spec.rounding);
  }
}

void dequantize(const int32_t* q, float* x, const Encoding& e) {
  auto idx = slice_index(e.shape, e.spec);
  for (size_t i = 0; i < idx.size(); ++i) x[i] = dequantize_one(q[i], e.scale[idx[i]], e.zero_point[idx[i]]);
}

void fake_quantize(const float* x, float* y, const Encoding& e) {
  auto idx = slice_index(e.shape, e.spec);
  for (size_t i = 0; i < idx.size(); ++i) {
    int64_t k = idx[i];
    y[i] = dequantize_one(quantize_one(x[i], e.scale[k], e.zero_point[k], e.spec.grid, e.spec.rounding), e.scale[k],
                          e.zero_point[k]);
  }
}

void fake_quantize_fp16(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = half_to_float(float_to_half(x[i]));
}

}  // namespace lowbit::quant
