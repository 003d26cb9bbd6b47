// lowbit: the public C++ API (one include). docs/api.md walks through it with a complete example.
//
//   session.h   Model::load / save, describe, Session (run a model on named inputs, with hooks)
//   data.h      DataSource (implement it, or open_data / ArraySource), Batch, DataOptions
//   quantize.h  QuantConfig, quantize -> QuantizedModel (export_qdq, save_encodings, evaluate, analyze), evaluate
// Every failure is a lowbit::Error (core/error.h) whose message is what the CLI prints; the library never exits.
#pragma once
#include "core/error.h"
#include "data.h"
#include "gap.h"
#include "qat.h"
#include "quantize.h"
#include "session.h"

namespace lowbit {
// The library's version ("0.1.0"), set once in the top-level CMakeLists.txt.
const char* version();
}  // namespace lowbit
