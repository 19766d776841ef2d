#!/usr/bin/env bash
# The prepared GPU check: on one CUDA machine, with no network and nothing to install.
#
#   scripts/gpu_check.sh [OUTPUT_DIR]
#
# Runs from the source tree as it is (PYTHONPATH, no pip install), with a Python that has
# torch, numpy, pandas, pyarrow and xxhash.  In one output folder it writes:
#   env.txt                 the environment fields of this machine
#   runs/                   the whole catalogue on CPU and CUDA (each case executed twice in
#                           its process, race-prone kernels five times), then the CUDA
#                           probes twice more in fresh processes (run-to-run across processes)
#   deterministic/          the CUDA probes with torch.use_deterministic_algorithms off and on
#                           (CUBLAS_WORKSPACE_CONFIG=:4096:8 set for both)
#   report.{md,html,json}   the comparison of runs/
#   deterministic.{md,html,json}   the comparison of deterministic/
#   statuses.txt            case counts by run, device and status
# Exit status: 0 when everything ran, 1 when a step failed or a case crashed, timed out,
# or errored outside deterministic mode, 2 when there is no CUDA device.
# Budget: under five minutes on one H100/H200.
set -uo pipefail

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-gpu-check-$(date -u +%Y%m%dT%H%M%SZ)}
py=${PYTHON:-python3}
export PYTHONPATH="$here${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
mkdir -p "$out" || exit 1
out=$(cd "$out" && pwd)
cd "$here" || exit 1
failed=0

step() {  # step NAME COMMAND...: run, time and log one step; remember a failure
    local name=$1; shift
    local start=$SECONDS
    echo "== $name"
    "$@"
    local rc=$?
    echo "== $name: exit $rc in $((SECONDS - start)) s"
    return $rc
}

# GPU_CHECK_WITHOUT_GPU=1 rehearses the script on a CPU-only machine (CUDA cases: unsupported).
need_cuda=$([ "${GPU_CHECK_WITHOUT_GPU:-0}" = 1 ] && echo "" || echo "; assert torch.cuda.is_available()")
if ! "$py" -c "import torch, numpy, pandas, pyarrow, xxhash$need_cuda" 2>/dev/null; then
    echo "gpu_check: needs a CUDA device and torch, numpy, pandas, pyarrow, xxhash in $py" >&2
    exit 2
fi

"$py" -m audit env > "$out/env.txt" || failed=1
cat "$out/env.txt"

step "catalogue on CPU and CUDA" "$py" -m audit run -q --results "$out/runs" || failed=1
step "CUDA run-to-run, fresh processes" "$py" -m audit sweep -q --results "$out/runs" \
    --probe '*@cuda' --axis deterministic=off --repeat 2 > "$out/sweep-repeat.txt"
[ $? -le 1 ] || failed=1   # 1 = the comparison found something: a finding, not a failure
step "deterministic mode off/on" env CUBLAS_WORKSPACE_CONFIG=:4096:8 "$py" -m audit sweep -q \
    --results "$out/deterministic" --probe '*@cuda' --axis deterministic=off,on > "$out/sweep-deterministic.txt"
[ $? -le 1 ] || failed=1

for name in report:runs deterministic:deterministic; do
    stem=${name%%:*}; dir=${name#*:}
    "$py" -m audit compare "$out/$dir" --markdown > "$out/$stem.md"; [ $? -le 1 ] || failed=1
    "$py" -m audit compare "$out/$dir" --json > "$out/$stem.json"; [ $? -le 1 ] || failed=1
    "$py" -m audit compare "$out/$dir" --html "$out/$stem.html" > /dev/null; [ $? -le 1 ] || failed=1
done

"$py" - "$out" > "$out/statuses.txt" <<'EOF' || failed=1
"""Count statuses; fail on a crash or timeout anywhere, or an error outside deterministic mode."""
import sys
from audit.store.scan import read_runs
out = sys.argv[1]
bad = 0
for sub in ("runs", "deterministic"):
    frame, _ = read_runs([f"{out}/{sub}"])
    counts = frame.groupby(["run_id", "deterministic_algorithms", "device", "status"]).size()
    print(f"# {sub}\n{counts.to_string()}\n")
    broken = frame.status.isin(["crash", "timeout"]) | (
        (frame.status == "error") & (frame.deterministic_algorithms != "True"))
    for row in frame[broken].itertuples():
        print(f"FAILED {row.probe_key} {row.params}: {row.status}: {row.message}")
    bad += int(broken.sum())
sys.exit(1 if bad else 0)
EOF
cat "$out/statuses.txt"
echo "gpu_check: results in $out; $([ $failed = 0 ] && echo 'everything ran' || echo 'SOMETHING FAILED')"
exit $failed
