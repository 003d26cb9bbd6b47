#!/usr/bin/env bash
# Applies known mutations to the library one at a time, rebuilds the unit tests and confirms that the test named for
# each mutation goes red (a test that stays green under its mutation asserts nothing). Restores every file afterwards.
# usage: bash scripts/mutation_check.sh          (after scripts/setup.sh; takes a few minutes: one rebuild per mutation)
set -uo pipefail
cd "$(dirname "$0")/.."
[ -x build/tests/unit_tests ] || { echo "mutation_check: build the tests first (bash scripts/setup.sh)"; exit 1; }

# file | sed expression (the mutation) | gtest filter that must fail | what the mutation breaks
mutations=(
  "src/runtime/ops_quant.cpp|s/float r = round_even_near(v) + z;/float r = std::round(v) + z;/|ExportExactness.*|QuantizeLinear (per tensor) rounds half away from zero"
  "src/runtime/executor.cpp|s/!keep.count(in)) release(in);/!keep.count(in)) (void)0;/|Executor.IntermediatesAreFreedAfterLastUse|consumed intermediates are kept"
  "src/quant/quantsim.cpp|s/if (n.op_type == \"ConvTranspose\" \&\& q.spec.granularity/if (false \&\& q.spec.granularity/|Placement.GroupedWeightsGetOneScalePerOutputChannel|grouped ConvTranspose shares scales across groups"
  "src/quant/quantsim.cpp|s/check(cfg.activations.spec.granularity == Granularity::PerTensor,/check(true,/|Placement.PerChannelActivationsAreAnErrorNamingTheConfigKey|per-channel activations accepted silently"
  "src/quant/config.cpp|s/j\[\"group_size\"\] = q.spec.group_size;/(void)0;/|Analysis.ConfigJsonRoundTrips|the config loses group_size"
  "src/quant/range.cpp|s/P\[(size_t)i - 1\] += tail\[(size_t)i\];/(void)0;/|KlRange.*|KL drops the clipped mass"
  "src/quant/range.cpp|s/std::vector<double> hist = flatten_point_masses(h.counts());/std::vector<double> hist = h.counts();/|KlRange.PointMassesDoNotMoveTheThreshold|KL sees point masses"
  "src/quant/range.cpp|s/^    smooth(Q);/    (void)0;/|KlRange.ThresholdIsTheArgminOverCandidates|KL without smoothing"
  "src/quant/quantsim.cpp|s/else if (kl.count(a.tensor)) {/else if (false) {/|Calibrate.KlRangeDoesNotDependOnBatchOrder|KL falls back to the first-pass range"
  "src/ir/tensor_proto.cpp|s/check(d_end == real_dir.end() \&\& f_it != real_file.end(),/check(true,/|OnnxIO.ExternalDataNeverLeavesTheModelFolder|external data follows symlinks out of the model's folder"
  "src/ir/onnx_io.cpp|s/^  validate_model(m, origin);/  (void)0;/|OnnxIO.ValidationRefusesBadConvAttributesBeforeShapeInference|models are not validated on load"
  "src/core/tensor.cpp|s/if (__builtin_mul_overflow(n, d, \&n)) fail/if ((n *= d) \&\& false) fail/|Tensor.ShapeProductsThatOverflowInt64AreErrors|shape products wrap around"
  "src/core/tensor.cpp|s/^  check_allocation(dtype_, shape_);/  (void)0;/|Tensor.AllocationsAboveTheMemoryBudgetAreErrors|allocations ignore the memory budget"
  "src/ir/infer_types.cpp|s/else if (kInt64Out.count(op)) all(DType::Int64);/else if (kInt64Out.count(op)) all(DType::Int32);/|OnnxIO.InferredElementTypesMatchTheConformanceModels|Shape and ArgMax outputs typed int32"
  "src/ir/tensor_proto.cpp|s/check(count == numel, what/count = numel; check(true, what/|OnnxIO.HugeInitializerWithoutDataIsRefusedBeforeAllocation|value count checked only after allocating"
  "src/ir/tensor_proto.cpp|s/dst\[i\] = sign \&\& v >= 8 ? (uint8_t)(v | 0xF0u) : v;/dst[i] = v;/|OnnxIO.FourBitTensorsArePackedLowNibbleFirst:ExportExactness.*|int4 codes read without sign extension"
  "src/quant/quantsim.cpp|s/sv.push_back(e.scale\[(size_t)k\]);/sv.push_back(e.scale[(size_t)(k == 0 ? 0 : k - 1)]);/|ExportExactness.*|a blocked weight scale taken from the neighbouring group"
)

red=0
green=0
for m in "${mutations[@]}"; do
  IFS='|' read -r file expr filter what <<<"$m"
  cp "$file" "$file.mutation_backup"
  sed -i "$expr" "$file"
  if cmp -s "$file" "$file.mutation_backup"; then
    echo "STALE  $what: the mutation no longer applies to $file"
    mv "$file.mutation_backup" "$file"
    touch "$file"
    green=$((green + 1))
    continue
  fi
  if cmake --build build -j"$(nproc)" --target unit_tests >/dev/null 2>&1 &&
     build/tests/unit_tests --gtest_filter="$filter" >/dev/null 2>&1; then
    echo "GREEN  $what: $filter still passes"
    green=$((green + 1))
  else
    echo "red    $what: $filter fails, as it should"
    red=$((red + 1))
  fi
  mv "$file.mutation_backup" "$file"
  touch "$file"  # the restored file must be newer than the mutated object
done
cmake --build build -j"$(nproc)" >/dev/null 2>&1
echo "mutation_check: $red caught, $green not caught"
[ "$green" -eq 0 ]
