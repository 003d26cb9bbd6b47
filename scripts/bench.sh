#!/usr/bin/env bash
# Runs the FP32 throughput benchmark and writes docs/results/bench_fp32.md; the README's table between
# the BENCH markers is replaced by the same table. Usage: bash scripts/bench.sh  (after scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
json=$(mktemp)
trap 'rm -f "$json"' EXIT
build/bench/bench_models --benchmark_format=json --benchmark_out="$json" --benchmark_out_format=json >/dev/null
/usr/bin/python3 - "$json" <<'PY'
import json, os, platform, re, subprocess, sys
data = json.load(open(sys.argv[1]))
cpu = "unknown CPU"
for line in open("/proc/cpuinfo"):
    if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
rows = []
for b in data["benchmarks"]:
    name, batch = re.match(r"BM_(\w+)/(\d+)", b["name"]).groups()
    rows.append((name, int(batch), b["real_time"], b["images/s"]))
commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
table = ["| network (224x224, FP32) | batch | ms / batch | images/s |", "|---|---:|---:|---:|"]
for name, batch, ms, ips in rows:
    table.append(f"| {name}-style | {batch} | {ms:.1f} | {ips:.1f} |")
table.append("")
table.append(f"Measured by `bash scripts/bench.sh` (build/bench/bench_models) on {os.cpu_count()} cores of {cpu}, "
             f"commit {commit or 'uncommitted'}.")
text = "\n".join(table) + "\n"
open("docs/results/bench_fp32.md", "w").write("# FP32 executor throughput\n\n" + text)
readme = open("README.md").read()
new = re.sub(r"(<!-- BENCH:BEGIN -->\n).*?(<!-- BENCH:END -->)", lambda m: m.group(1) + text + m.group(2), readme, flags=re.S)
open("README.md", "w").write(new)
print(text)
PY
