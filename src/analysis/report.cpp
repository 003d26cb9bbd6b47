#include "analysis/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

namespace lowbit::analysis {

using nlohmann::json;

namespace {

// Every number the report shows is rounded once, here, and both the JSON and the HTML print that value.
double r2(double v) { return std::round(v * 100.0) / 100.0; }
std::string f2(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.2f", r2(v) == 0 ? 0.0 : r2(v));
  return b;
}
std::string g4(double v) {
  char b[64];
  std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '<') o += "&lt;";
    else if (c == '>') o += "&gt;";
    else if (c == '&') o += "&amp;";
    else if (c == '"') o += "&quot;";
    else o += c;
  }
  return o;
}

bool accuracy(const Report& r) { return r.metric == Metric::Accuracy; }
// Loss of a metric value against FP32 (accuracy points), or the value itself (SQNR).
double drop(const Report& r, double v) { return r2(r.fp32 - v); }

// Horizontal bars: one per item, value >= 0.
std::string bar_chart(const std::vector<std::pair<std::string, double>>& items, const std::string& unit) {
  const int W = 900, left = 330, rowh = 18;
  double mx = 1e-9;
  for (auto& [_, v] : items) mx = std::max(mx, v);
  std::ostringstream s;
  int H = rowh * (int)items.size() + 10;
  s << "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\">";
  for (size_t i = 0; i < items.size(); ++i) {
    int y = 5 + rowh * (int)i;
    double w = std::max(0.0, items[i].second) / mx * (W - left - 80);
    s << "<text x=\"" << left - 6 << "\" y=\"" << y + 13 << "\" text-anchor=\"end\" font-size=\"12\">"
      << esc(items[i].first.size() > 48 ? items[i].first.substr(0, 45) + "..." : items[i].first) << "</text>";
    s << "<rect x=\"" << left << "\" y=\"" << y + 2 << "\" width=\"" << w << "\" height=\"" << rowh - 5
      << "\" fill=\"" << (i == 0 ? "#c0392b" : "#e67e22") << "\"/>";
    s << "<text x=\"" << left + w + 4 << "\" y=\"" << y + 13 << "\" font-size=\"12\">" << f2(items[i].second) << unit
      << "</text>";
  }
  s << "</svg>";
  return s.str();
}

std::string channel_plot_svg(const ChannelPlot& p) {
  const int W = 900, H = 220, pad = 40;
  double lo = std::min<double>(p.grid_lo, *std::min_element(p.lo.begin(), p.lo.end()));
  double hi = std::max<double>(p.grid_hi, *std::max_element(p.hi.begin(), p.hi.end()));
  if (hi <= lo) hi = lo + 1;
  auto Y = [&](double v) { return pad / 2 + (hi - v) / (hi - lo) * (H - pad); };
  double step = (double)(W - 2 * pad) / std::max<size_t>(1, p.lo.size());
  std::ostringstream s;
  s << "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\">";
  s << "<line x1=\"" << pad << "\" x2=\"" << W - pad << "\" y1=\"" << Y(0) << "\" y2=\"" << Y(0) << "\" stroke=\"#999\"/>";
  for (size_t c = 0; c < p.lo.size(); ++c) {
    double x = pad + step * ((double)c + 0.5);
    s << "<line x1=\"" << x << "\" x2=\"" << x << "\" y1=\"" << Y(p.lo[c]) << "\" y2=\"" << Y(p.hi[c])
      << "\" stroke=\"#2c7fb8\" stroke-width=\"" << std::max(1.0, step * 0.6) << "\"/>";
  }
  for (double g : {(double)p.grid_lo, (double)p.grid_hi})
    s << "<line x1=\"" << pad << "\" x2=\"" << W - pad << "\" y1=\"" << Y(g) << "\" y2=\"" << Y(g)
      << "\" stroke=\"#c0392b\" stroke-dasharray=\"6,4\"/><text x=\"" << W - pad + 2 << "\" y=\"" << Y(g) + 4
      << "\" font-size=\"11\" fill=\"#c0392b\">" << g4(g) << "</text>";
  s << "<text x=\"" << pad << "\" y=\"" << H - 4 << "\" font-size=\"11\">channel 0 .. " << p.lo.size() - 1
    << " (bars: min..max per channel; dashed: the per-tensor quantization range)</text></svg>";
  return s.str();
}

std::string histogram_svg(const HistogramPlot& h) {
  const int W = 900, H = 200, pad = 40;
  double lo = std::min(h.lo, h.grid_lo), hi = std::max(h.hi, h.grid_hi);
  if (hi <= lo) hi = lo + 1;
  auto X = [&](double v) { return pad + (v - lo) / (hi - lo) * (W - 2 * pad); };
  double mx = 1;
  for (auto c : h.counts) mx = std::max(mx, std::log10(1.0 + (double)c));
  double bw = (h.hi - h.lo) / (double)h.counts.size();
  std::ostringstream s;
  s << "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"" << W << "\" height=\"" << H << "\">";
  for (size_t i = 0; i < h.counts.size(); ++i) {
    double x0 = X(h.lo + bw * (double)i), x1 = X(h.lo + bw * (double)(i + 1));
    double hh = std::log10(1.0 + (double)h.counts[i]) / mx * (H - pad);
    s << "<rect x=\"" << x0 << "\" y=\"" << H - pad / 2 - hh << "\" width=\"" << std::max(0.5, x1 - x0 - 0.5)
      << "\" height=\"" << hh << "\" fill=\"#41ab5d\"/>";
  }
  for (double g : {h.grid_lo, h.grid_hi})
    s << "<line x1=\"" << X(g) << "\" x2=\"" << X(g) << "\" y1=\"0\" y2=\"" << H - pad / 2
      << "\" stroke=\"#c0392b\" stroke-dasharray=\"6,4\"/><text x=\"" << X(g) + 3 << "\" y=\"12\" font-size=\"11\" fill=\"#c0392b\">"
      << g4(g) << "</text>";
  s << "<text x=\"" << pad << "\" y=\"" << H - 4 << "\" font-size=\"11\">values " << g4(h.lo) << " .. " << g4(h.hi)
    << " (log counts; dashed: the quantization range)</text></svg>";
  return s.str();
}

}  // namespace

std::string report_json(const Report& r, const std::string& model) {
  bool acc = accuracy(r);
  json j;
  j["model"] = model;
  j["metric"] = acc ? "accuracy" : "sqnr";
  j["metric_description"] = metric_name(r.metric);
  j["eval_samples"] = r.eval_samples;
  j["calibration_samples"] = r.calib_samples;
  j["sanity"] = {{"max_relative_error", r.sanity_max_rel_error}, {"passed", true}};
  j["fp32"] = r2(r.fp32);
  j["quantized"] = r2(r.quantized);
  j["weights_only"] = r2(r.weights_only);
  j["activations_only"] = r2(r.activations_only);
  j["ranking"] = "output_sqnr_alone_db";
  if (acc) j["accuracy_noise_points"] = r2(r.accuracy_noise_points);
  json qs = json::array();
  int rank = 0;
  for (auto& q : r.quantizers) {
    json e = {{"rank", ++rank}, {"kind", q.q.weight ? "weight" : "activation"}, {"tensor", q.q.tensor},
              {"node", q.q.node}, {"label", q.q.label()}, {"bits", q.bits}, {"alone", r2(q.alone)},
              {"all_but", r2(q.all_but)}, {"sqnr_db", r2(q.sqnr_db)},
              {"output_sqnr_alone_db", r2(q.output_sqnr_alone_db)}, {"output_sqnr_all_but_db", r2(q.output_sqnr_all_but_db)}};
    if (acc) {
      e["alone_drop"] = drop(r, q.alone);
      e["all_but_gain"] = r2(q.all_but - r.quantized);
    }
    qs.push_back(e);
  }
  j["quantizers"] = qs;
  json cp = json::array(), hs = json::array(), recs = json::array();
  for (auto& p : r.channel_plots)
    cp.push_back({{"label", p.label}, {"min", p.lo}, {"max", p.hi}, {"grid_min", p.grid_lo}, {"grid_max", p.grid_hi}});
  for (auto& h : r.histograms)
    hs.push_back({{"label", h.label}, {"min", h.lo}, {"max", h.hi}, {"counts", h.counts}, {"grid_min", h.grid_lo},
                  {"grid_max", h.grid_hi}});
  for (auto& rc : r.recommendations) recs.push_back({{"severity", rc.severity}, {"text", rc.text}});
  j["channel_plots"] = cp;
  j["histograms"] = hs;
  j["recommendations"] = recs;
  if (r.fix) {
    json steps = json::array();
    for (auto& s : r.fix->steps) steps.push_back({{"raised", s.raised}, {"bits", s.bits}, {"metric", r2(s.metric)}, {"drop", drop(r, s.metric)}});
    j["mixed_precision"] = {{"target_drop", r.fix->target_drop}, {"met", r.fix->met},
                            {"raised", (int)r.fix->overrides.size()}, {"steps", steps}, {"config", "config.json"}};
  }
  if (r.gap) j["gap"] = profile_gap_json(*r.gap, acc);
  return j.dump(1) + "\n";
}

std::string report_html(const Report& r, const std::string& model) {
  bool acc = accuracy(r);
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>lowbit analysis: " << esc(model)
    << "</title><style>body{font-family:sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse;"
       "margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}td.l,th.l{text-align:"
       "left}.cards{display:flex;gap:12px}.card{border:1px solid #ccc;padding:8px 14px;border-radius:6px}.card b{font-"
       "size:22px;display:block}.high{color:#c0392b}.medium{color:#d35400}.info{color:#2c3e50}.culprit{font-size:18px;"
       "background:#fdecea;padding:10px;border-left:5px solid #c0392b}</style></head><body>\n";
  h << "<h1>Quantization analysis: " << esc(model) << "</h1>\n<p>Metric: " << metric_name(r.metric) << " on "
    << r.eval_samples << " samples; calibration on " << r.calib_samples << " samples. FP32 sanity check passed (max "
    << "relative output error with every quantizer bypassed: " << g4(r.sanity_max_rel_error) << ").</p>\n";
  const QuantizerResult& w = r.quantizers.front();
  h << "<p class=\"culprit\" id=\"culprit\">Most sensitive: <b>" << esc(w.q.label()) << "</b> (" << w.bits
    << "-bit): alone its output SQNR is " << f2(w.output_sqnr_alone_db) << " dB and it gives " << f2(w.alone)
    << (acc ? " (drop " + f2(drop(r, w.alone)) + ")" : std::string(" dB")) << ".</p>\n";
  if (acc)
    h << "<p id=\"noise\">Accuracy differences smaller than " << f2(r.accuracy_noise_points) << " points are "
      << "within sampling noise on " << r.eval_samples << " images (95% binomial interval); the ranking uses the output "
      << "SQNR against FP32.</p>\n";
  h << "<div class=\"cards\" id=\"summary\">";
  for (auto [name, v] : std::vector<std::pair<const char*, double>>{{"FP32", r.fp32}, {"quantized", r.quantized},
                                                                     {"weights only", r.weights_only},
                                                                     {"activations only", r.activations_only}})
    h << "<div class=\"card\">" << name << "<b>" << f2(v) << "</b>" << (acc ? "drop " + f2(drop(r, v)) : std::string("dB"))
      << "</div>";
  h << "</div>\n<h2>Recommendations</h2><ul id=\"recommendations\">";
  for (auto& rc : r.recommendations) h << "<li class=\"" << rc.severity << "\">" << esc(rc.text) << "</li>";
  h << "</ul>\n<h2>Sensitivity: each quantizer alone (output SQNR against FP32, lowest first)</h2>\n";
  std::vector<std::pair<std::string, double>> bars;
  for (size_t i = 0; i < r.quantizers.size() && i < 20; ++i)
    bars.emplace_back(r.quantizers[i].q.label(), r.quantizers[i].output_sqnr_alone_db);
  h << bar_chart(bars, " dB") << "\n";
  h << "<table id=\"quantizers\"><tr><th>rank</th><th class=\"l\">quantizer</th><th>bits</th>"
    << "<th>output SQNR alone dB</th><th>output SQNR all but this dB</th><th>alone</th>"
    << (acc ? "<th>alone drop</th>" : "") << "<th>all but this</th>" << (acc ? "<th>gain</th>" : "")
    << "<th>SQNR dB</th></tr>\n";
  int rank = 0;
  for (auto& q : r.quantizers) {
    h << "<tr><td>" << ++rank << "</td><td class=\"l\">" << esc(q.q.label()) << "</td><td>" << q.bits << "</td><td>"
      << f2(q.output_sqnr_alone_db) << "</td><td>" << f2(q.output_sqnr_all_but_db) << "</td><td>" << f2(q.alone)
      << "</td>";
    if (acc) h << "<td>" << f2(drop(r, q.alone)) << "</td>";
    h << "<td>" << f2(q.all_but) << "</td>";
    if (acc) h << "<td>" << f2(q.all_but - r.quantized) << "</td>";
    h << "<td>" << f2(q.sqnr_db) << "</td></tr>\n";
  }
  h << "</table>\n";
  if (r.fix) {
    h << "<h2>Mixed-precision fix (target drop " << f2(r.fix->target_drop) << ")</h2><p>" << (r.fix->met ? "Met" : "Not met")
      << " by raising " << r.fix->overrides.size()
      << " quantizer(s), most sensitive first; the config is in <code>config.json</code>.</p><table id=\"mixed\"><tr>"
         "<th>step</th><th class=\"l\">raised</th><th>to bits</th><th>metric</th><th>drop</th></tr>";
    int k = 0;
    for (auto& s : r.fix->steps)
      h << "<tr><td>" << ++k << "</td><td class=\"l\">" << esc(s.raised) << "</td><td>" << s.bits << "</td><td>"
        << f2(s.metric) << "</td><td>"
        << f2(drop(r, s.metric)) << "</td></tr>";
    h << "</table>\n";
  }
  h << "<h2>Worst tensors</h2>\n";
  for (auto& p : r.channel_plots) h << "<h3>" << esc(p.label) << "</h3>" << channel_plot_svg(p) << "\n";
  for (auto& x : r.histograms) h << "<h3>Histogram of " << esc(x.label) << "</h3>" << histogram_svg(x) << "\n";
  if (r.gap) h << gap_html_section(*r.gap, acc);
  h << "<p>Generated by <code>lowbit analyze</code>; every number is also in <code>report.json</code>.</p></body></html>\n";
  return h.str();
}

std::string fixed_config_json(const quant::QuantConfig& base, const MixedPrecisionFix& fix) {
  quant::QuantConfig c = base;
  c.overrides.insert(c.overrides.end(), fix.overrides.begin(), fix.overrides.end());
  return quant::config_to_json(c);
}

}  // namespace lowbit::analysis
