// The analysis report: JSON with every number (schema in docs/analyze_report.md) and a self-contained HTML page
// (inline CSS and SVG, no scripts, no network) showing the same numbers, most severe first.
#pragma once
#include <string>

#include "analysis/analyze.h"

namespace lowbit::analysis {

std::string report_json(const Report& r, const std::string& model);
std::string report_html(const Report& r, const std::string& model);
// A quantization config JSON: `base` (the config the analysis ran with) plus the fix's overrides.
std::string fixed_config_json(const quant::QuantConfig& base, const MixedPrecisionFix& fix);

}  // namespace lowbit::analysis
