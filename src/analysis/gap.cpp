// Deployment gap: the code-divergence accumulator, and the JSON and HTML views of a gap report.
#include "analysis/gap.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/error.h"

namespace lowbit::analysis {

void CodeDiff::add(const Tensor& sim, const Tensor& engine, const std::string& what) {
  check(sim.shape() == engine.shape(), "gap: '", what, "' has shape ", shape_str(sim.shape()),
        " in the simulation but ", shape_str(engine.shape()), " in the integer engine");
  auto a = sim.to_f64(), b = engine.to_f64();  // integer codes: exact in double
  for (size_t i = 0; i < a.size(); ++i) {
    int64_t d = std::llabs((int64_t)a[i] - (int64_t)b[i]);
    differing += d != 0;
    max_steps = std::max(max_steps, d);
  }
  elements += (int64_t)a.size();
}

namespace {

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : c == '"' ? "&quot;" : std::string(1, c);
  return o;
}
std::string fmt(double v, const char* f = "%.2f") {
  char b[64];
  std::snprintf(b, sizeof b, f, v);
  return b;
}

nlohmann::json diff_json(const CodeDiff& d) {
  return {{"differing", d.differing}, {"differing_percent", d.differing_percent()}, {"max_steps", d.max_steps}};
}

}  // namespace

nlohmann::json profile_gap_json(const ProfileGap& p, bool labelled) {
  using nlohmann::json;
  json jp = {{"profile", p.profile},
             {"requantize", {{"multiplier", p.multiplier}, {"rounding", p.rounding}, {"softmax", p.softmax}, {"bias", p.bias}}},
             {"integer_layers", p.integer_layers},
             {"float_output_layers", p.float_output_layers},
             {"float_islands", p.float_islands},
             {"left_in_float", p.left_in_float},
             {"top1_agreement_percent", p.top1_agreement},
             {"output_identical_percent", p.output_identical_percent},
             {"output_max_abs_diff", p.output_max_abs_diff}};
  if (labelled) {
    jp["sim_top1_percent"] = p.sim_top1;
    jp["int_top1_percent"] = p.int_top1;
  }
  jp["layers"] = json::array();
  for (auto& l : p.layers)
    jp["layers"].push_back({{"node", l.node}, {"tensor", l.tensor}, {"elements", l.isolated.elements},
                            {"isolated", diff_json(l.isolated)}, {"propagated", diff_json(l.propagated)}});
  return jp;
}

std::string gap_json(const GapReport& r) {
  using nlohmann::json;
  json j = {{"model", r.model}, {"data", r.data}, {"samples", r.samples}};
  if (r.has_fp32) j["fp32_top1_percent"] = r.fp32_top1;
  j["profiles"] = json::array();
  for (auto& p : r.profiles) j["profiles"].push_back(profile_gap_json(p, r.labelled));
  return j.dump(2) + "\n";
}

std::string gap_html_section(const ProfileGap& p, bool labelled) {
  std::ostringstream h;
  h << "<h2 id=\"gap-" << esc(p.profile) << "\">Profile " << esc(p.profile) << ": simulation vs integer engine</h2>\n"
    << "<p>Requantization: " << esc(p.multiplier) << " multiplier, rounding " << esc(p.rounding) << ", softmax "
    << esc(p.softmax) << ", bias " << esc(p.bias) << "; "
    << p.integer_layers << " integer layers";
  std::string islands;
  for (auto& [op, k] : p.float_islands) islands += (islands.empty() ? "" : ", ") + std::to_string(k) + " " + op;
  h << "; float islands: " << (islands.empty() ? "none" : esc(islands)) << ".";
  if (labelled) h << " Top-1: simulation " << fmt(p.sim_top1) << ", integer engine " << fmt(p.int_top1) << ".";
  h << " Top-1 agreement " << fmt(p.top1_agreement) << " %; first output identical to the bit on "
    << fmt(p.output_identical_percent) << " % of elements (max |diff| " << fmt(p.output_max_abs_diff, "%.3g")
    << ").</p>\n<p>Isolated: the layer given the simulation's input codes (its own arithmetic); propagated: each run "
       "carrying its own codes from the model input.</p>\n<table class=\"gap\"><tr><th class=\"l\">integer layer</th>"
       "<th class=\"l\">output codes</th><th>isolated: codes that differ %</th><th>isolated: max |diff| (steps)</th>"
       "<th>propagated: codes that differ %</th><th>propagated: max |diff| (steps)</th></tr>\n";
  for (auto& l : p.layers)
    h << "<tr><td class=\"l\">" << esc(l.node) << "</td><td class=\"l\">" << esc(l.tensor) << "</td><td>"
      << fmt(l.isolated.differing_percent(), "%.3f") << "</td><td>" << l.isolated.max_steps << "</td><td>"
      << fmt(l.propagated.differing_percent(), "%.3f") << "</td><td>" << l.propagated.max_steps << "</td></tr>\n";
  h << "</table>\n";
  for (auto& s : p.left_in_float) h << "<p class=\"info\">left in float: " << esc(s) << "</p>\n";
  return h.str();
}

std::string gap_html(const GapReport& r) {
  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>lowbit gap: " << esc(r.model)
    << "</title><style>body{font-family:sans-serif;margin:24px;max-width:1100px}table{border-collapse:collapse;"
       "margin:8px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right;font-size:13px}td.l,th.l{text-align:"
       "left}.info{color:#2c3e50}</style></head><body>\n";
  h << "<h1>Deployment gap: " << esc(r.model) << "</h1>\n<p>" << r.samples << " samples of " << esc(r.data)
    << ". Per integer layer, the codes that differ between simulation and engine: isolated (the layer given the "
       "simulation's input codes) and propagated (each run carrying its own codes from the model input).</p>\n"
    << "<table id=\"summary\"><tr><th class=\"l\">profile</th>" << (r.labelled ? "<th>FP32</th><th>simulation</th>"
       "<th>integer engine</th><th>gap (sim - int)</th>" : "")
    << "<th>top-1 agreement %</th><th>output identical %</th><th>integer layers</th></tr>\n";
  for (auto& p : r.profiles) {
    h << "<tr><td class=\"l\"><a href=\"#gap-" << esc(p.profile) << "\">" << esc(p.profile) << "</a></td>";
    if (r.labelled)
      h << "<td>" << (r.has_fp32 ? fmt(r.fp32_top1) : std::string("-")) << "</td><td>" << fmt(p.sim_top1)
        << "</td><td>" << fmt(p.int_top1) << "</td><td>" << fmt(p.sim_top1 - p.int_top1) << "</td>";
    h << "<td>" << fmt(p.top1_agreement) << "</td><td>" << fmt(p.output_identical_percent) << "</td><td>"
      << p.integer_layers << "</td></tr>\n";
  }
  h << "</table>\n";
  for (auto& p : r.profiles) h << gap_html_section(p, r.labelled);
  h << "</body></html>\n";
  return h.str();
}

}  // namespace lowbit::analysis
