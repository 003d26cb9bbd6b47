#include "ptq/data_free.h"

#include <algorithm>
#include <cmath>

#include "ir/passes.h"
#include "ptq/layer.h"

namespace lowbit::ptq {

namespace {

constexpr double kAlpha = 6.0;  // range = mean +- 6 std, as the BN-based rule

double pdf(double x) { return std::isfinite(x) ? std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI) : 0.0; }
double cdf(double x) { return std::isfinite(x) ? 0.5 * std::erfc(-x / std::sqrt(2.0)) : (x < 0 ? 0.0 : 1.0); }

void set_range_from_moments(ValueStats& s) {
  s.lo = INFINITY;
  s.hi = -INFINITY;
  for (size_t c = 0; c < s.mean.size(); ++c) {
    s.lo = std::min(s.lo, s.mean[c] - kAlpha * s.std[c]);
    s.hi = std::max(s.hi, s.mean[c] + kAlpha * s.std[c]);
  }
}

// Per-channel value c of stats with `n` channels (size-1 stats broadcast).
double at(const std::vector<double>& v, size_t c) { return v.size() == 1 ? v[0] : v[c]; }

}  // namespace

double clipped_normal_mean(double mu, double sigma, double lo, double hi) {
  if (!(sigma > 0)) return std::min(std::max(mu, lo), hi);
  double a = (lo - mu) / sigma, b = (hi - mu) / sigma;
  double Pa = std::isfinite(a) ? cdf(a) : (a < 0 ? 0.0 : 1.0);
  double Pb = std::isfinite(b) ? cdf(b) : (b < 0 ? 0.0 : 1.0);
  double pa = std::isfinite(a) ? pdf(a) : 0.0, pb = std::isfinite(b) ? pdf(b) : 0.0;
  double r = mu * (Pb - Pa) + sigma * (pa - pb);
  if (std::isfinite(lo)) r += lo * Pa;
  if (std::isfinite(hi)) r += hi * (1.0 - Pb);
  return r;
}

double clipped_normal_std(double mu, double sigma, double lo, double hi) {
  if (!(sigma > 0)) return 0.0;
  double a = (lo - mu) / sigma, b = (hi - mu) / sigma;
  double Pa = cdf(a), Pb = cdf(b), pa = pdf(a), pb = pdf(b);
  double apa = std::isfinite(a) ? a * pa : 0.0, bpb = std::isfinite(b) ? b * pb : 0.0;
  // E[z^2; lo < z < hi] = mu^2 (Pb - Pa) + 2 mu sigma (pa - pb) + sigma^2 ((Pb - Pa) + a pa - b pb)
  double m2 = mu * mu * (Pb - Pa) + 2 * mu * sigma * (pa - pb) + sigma * sigma * ((Pb - Pa) + apa - bpb);
  if (std::isfinite(lo)) m2 += lo * lo * Pa;
  if (std::isfinite(hi)) m2 += hi * hi * (1.0 - Pb);
  double m1 = clipped_normal_mean(mu, sigma, lo, hi);
  return std::sqrt(std::max(0.0, m2 - m1 * m1));
}

std::map<std::string, ValueStats> propagate_statistics(const Model& model, const std::map<std::string, quant::BnParams>& bn,
                                                      const std::vector<float>& input_range) {
  Model m = model;
  topological_sort(m.graph);
  const Graph& g = m.graph;
  std::map<std::string, ValueStats> st;
  if (input_range.size() == 2)
    for (auto& vi : g.inputs)
      if (!g.is_initializer(vi.name)) {
        double lo = input_range[0], hi = input_range[1];
        st[vi.name] = {{(lo + hi) / 2}, {(hi - lo) / std::sqrt(12.0)}, lo, hi, false};
      }
  auto from_bn = [&](const std::string& v) -> bool {
    auto it = bn.find(v);
    if (it == bn.end()) return false;
    ValueStats s;
    for (size_t c = 0; c < it->second.beta.size(); ++c) {
      s.mean.push_back(it->second.beta[c]);
      s.std.push_back(std::fabs((double)it->second.gamma[c]));
    }
    set_range_from_moments(s);
    st[v] = s;
    return true;
  };
  for (int ni = 0; ni < (int)g.nodes.size(); ++ni) {
    const Node& n = g.nodes[(size_t)ni];
    if (n.outputs.empty()) continue;
    const std::string& out = n.outputs[0];
    if (from_bn(out)) continue;
    auto in = [&](size_t i) -> const ValueStats* {
      if (i >= n.inputs.size()) return nullptr;
      auto it = st.find(n.inputs[i]);
      return it == st.end() ? nullptr : &it->second;
    };
    const ValueStats* x = in(0);
    if (!n.domain.empty()) continue;
    if (auto l = linear_layer(g, ni); l && x) {
      auto w = get_weight(g, *l);
      auto b = l->kind == LayerKind::MatMul ? std::vector<float>((size_t)l->shape.out_channels, 0.f) : get_bias(g, *l);
      if (x->mean.size() != 1 && (int64_t)x->mean.size() != l->shape.in_channels) continue;
      ValueStats s;
      for (int64_t o = 0; o < l->shape.out_channels; ++o) {
        double mu = b[(size_t)o], var = 0;
        for (int64_t k = 0; k < l->shape.k(); ++k) {
          double wv = w[(size_t)l->shape.index(o, k)];
          size_t c = (size_t)l->shape.input_channel(o, k);
          mu += wv * at(x->mean, c);
          var += wv * wv * at(x->std, c) * at(x->std, c);
        }
        s.mean.push_back(mu);
        s.std.push_back(std::sqrt(var));
      }
      set_range_from_moments(s);
      s.exact_mean = x->exact_mean;
      st[out] = s;
    } else if (auto cl = clamp_range(g, n); cl && x) {
      ValueStats s;
      s.exact_mean = x->exact_mean;
      for (size_t c = 0; c < x->mean.size(); ++c) {
        s.mean.push_back(clipped_normal_mean(x->mean[c], x->std[c], cl->lo, cl->hi));
        s.std.push_back(clipped_normal_std(x->mean[c], x->std[c], cl->lo, cl->hi));
      }
      s.lo = std::clamp<double>(x->lo, cl->lo, cl->hi);
      s.hi = std::clamp<double>(x->hi, cl->lo, cl->hi);
      st[out] = s;
    } else if (n.op_type == "Add" && x) {
      const ValueStats* y = in(1);
      const Tensor* c = nullptr;
      if (!y && g.is_initializer(n.inputs[1]) && g.initializers.at(n.inputs[1]).dtype() == DType::Float32)
        c = &g.initializers.at(n.inputs[1]);
      if (y && (x->mean.size() == y->mean.size() || x->mean.size() == 1 || y->mean.size() == 1)) {
        ValueStats s;
        size_t C = std::max(x->mean.size(), y->mean.size());
        for (size_t i = 0; i < C; ++i) {
          s.mean.push_back(at(x->mean, i) + at(y->mean, i));
          s.std.push_back(std::sqrt(at(x->std, i) * at(x->std, i) + at(y->std, i) * at(y->std, i)));
        }
        s.exact_mean = x->exact_mean && y->exact_mean;
        set_range_from_moments(s);
        st[out] = s;
      } else if (c && c->rank() <= 1 && (c->numel() == 1 || c->numel() == (int64_t)x->mean.size())) {
        ValueStats s = *x;
        for (size_t i = 0; i < s.mean.size(); ++i) s.mean[i] += c->data<float>()[c->numel() == 1 ? 0 : i];
        set_range_from_moments(s);
        st[out] = s;
      }
    } else if (x && (n.op_type == "MaxPool" || n.op_type == "AveragePool" || n.op_type == "GlobalAveragePool" ||
                     n.op_type == "GlobalMaxPool" || n.op_type == "Identity" || n.op_type == "Dropout" ||
                     (n.op_type == "Flatten" && g.producer(n.inputs[0]) >= 0 &&
                      g.nodes[(size_t)g.producer(n.inputs[0])].op_type.rfind("Global", 0) == 0))) {
      st[out] = *x;
      if (n.op_type == "MaxPool" || n.op_type == "GlobalMaxPool") st[out].exact_mean = false;  // max > mean
    } else if (n.op_type == "Concat" && n.attr_int("axis", 0) == 1) {
      ValueStats s;
      s.lo = INFINITY;
      s.hi = -INFINITY;
      bool ok = true;
      for (size_t i = 0; i < n.inputs.size() && ok; ++i) {
        const ValueStats* v = in(i);
        if (!v || v->mean.size() == 1) ok = false;  // channel count unknown
        else {
          s.mean.insert(s.mean.end(), v->mean.begin(), v->mean.end());
          s.std.insert(s.std.end(), v->std.begin(), v->std.end());
          s.lo = std::min(s.lo, v->lo);
          s.exact_mean = s.exact_mean && v->exact_mean;
          s.hi = std::max(s.hi, v->hi);
        }
      }
      if (ok) st[out] = s;
    }
  }
  return st;
}

void set_data_free_ranges(const Model& model, quant::QuantSimPlan& plan, const std::map<std::string, ValueStats>& stats) {
  Model m = model;
  topological_sort(m.graph);
  const Graph& g = m.graph;
  std::vector<std::string> missing;
  for (auto& a : plan.acts) {
    if (a.dynamic) continue;
    auto it = stats.find(a.tensor);
    if (it == stats.end()) {
      // Name the op where the statistics stopped: walk up first inputs to the first value that has them.
      std::string v = a.tensor, culprit = "model input";
      for (int steps = 0; steps < 64; ++steps) {
        int p = g.producer(v);
        if (p < 0) break;
        const Node& n = g.nodes[(size_t)p];
        bool inputs_known = std::all_of(n.inputs.begin(), n.inputs.end(), [&](const std::string& i) {
          return i.empty() || stats.count(i) || g.is_initializer(i);
        });
        culprit = n.op_type + " '" + n.name + "'";
        if (inputs_known) break;
        v = n.inputs[0];
      }
      if (g.producer(a.tensor) < 0) culprit = "model input (give its range)";
      missing.push_back("'" + a.tensor + "' (stops at " + culprit + ")");
      continue;
    }
    quant::resolve_auto_sign(a.q, (float)it->second.lo);
    a.enc = quant::make_encoding(a.q.spec, {1}, {{(float)it->second.lo, (float)std::max(it->second.lo, it->second.hi)}});
  }
  if (!missing.empty()) {
    std::string list;
    for (size_t i = 0; i < missing.size() && i < 6; ++i) list += (i ? ", " : "") + missing[i];
    fail("data-free ranges: ", missing.size(), " activation quantizer", missing.size() > 1 ? "s" : "",
         " cannot be set without data: ", list, missing.size() > 6 ? ", ..." : "");
  }
}

}  // namespace lowbit::ptq
