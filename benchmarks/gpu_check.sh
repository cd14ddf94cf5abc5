#!/usr/bin/env bash
# lmprof on a lent CUDA machine, in one go (about 5 minutes on an H200 at the default sizes).
#
#   benchmarks/gpu_check.sh OUT_DIR            on --device cuda, with CPU twins of a short run
#   benchmarks/gpu_check.sh OUT_DIR --cpu-only the same steps on the CPU (what the test suite runs)
#
# Run it from anywhere; it works in the source tree it sits in (lmprof from there, on PYTHONPATH).
# Writes every run folder, log and drawing under OUT_DIR, and OUT_DIR/summary.md: one page, one line
# per check (ok / FAILED / skipped, and what it saw), then the CUDA overhead table. The page is written
# as the checks go, so a run cut short still leaves what it saw. Exits 1 if any check failed.
#
# The machine needs a python3 with torch (CUDA build), rich, jinja2 and matplotlib. What else lmprof
# needs (line_profiler, graphviz, graphviz-pure, torch-tb-profiler) comes as wheels made on a machine
# with the package index, e.g.
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 -d WHEELS line_profiler graphviz graphviz-pure torch-tb-profiler
# and installed there with `python3 -m pip install --no-index --no-deps --target SITE WHEELS/*.whl`, SITE
# on PYTHONPATH (lmprof finds graphviz-pure's executable in SITE/bin). Or let this script do it: put
# the wheels in GPU_CHECK_WHEELS (default benchmarks/wheels) and it installs them into OUT_DIR/site.
#
# Environment (all optional):
#   GPU_DATA           corpus folder (e.g. .gpu/wikitext-2-lite; default: lmprof's embedded corpus);
#                      the real-CUDA tests slice it for their side by side with upstream
#   UPSTREAM           upstream's word_language_model folder (main.py), for that side by side
#   GPU_CHECK_BATCHES  training batches per run (default 200)      GPU_CHECK_TWIN_BATCHES (default 20)
#   GPU_CHECK_SIZE     emsize = nhid (default 200)   GPU_CHECK_BPTT bptt (default 35)
#   GPU_CHECK_LADDER_BATCHES  speedlab's budget in batches (default 40)
#   GPU_CHECK_STEP_TIMEOUT    seconds any one step may take (default 300)
#   GPU_CHECK_WHEELS   wheel folder      GPU_CHECK_INSTALL  0: install nothing
#   PYTHON             the python to use (default python3)
set -u
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR [--cpu-only]}
mode=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
mkdir -p "$out" && out=$(cd "$out" && pwd)
absolute() { [ -z "$1" ] && return; (cd "$1" 2>/dev/null && pwd) || echo "$1"; }  # paths given from the caller's folder
data=$(absolute "${GPU_DATA:-${GPU_CHECK_DATA:-}}")
upstream=$(absolute "${UPSTREAM:-}")
site_path=(); IFS=: read -r -a given_path <<<"${PYTHONPATH:-}"
for p in "${given_path[@]}"; do [ -n "$p" ] && site_path+=("$(absolute "$p")"); done  # tests run elsewhere
cd "$root"
export PYTHONPATH="$root${site_path[*]:+:$(IFS=:; echo "${site_path[*]}")}"  # lmprof from this tree; nothing installed
export MPLBACKEND=Agg

batches=${GPU_CHECK_BATCHES:-200}; size=${GPU_CHECK_SIZE:-200}; bptt=${GPU_CHECK_BPTT:-35}
twin_batches=${GPU_CHECK_TWIN_BATCHES:-20}; ladder_batches=${GPU_CHECK_LADDER_BATCHES:-40}
step_timeout=${GPU_CHECK_STEP_TIMEOUT:-300}
data_flag=(); [ -n "$data" ] && data_flag=(--data "$data")
summary="$out/summary.md"; failed=0; started=$SECONDS

# --- the page ------------------------------------------------------------------------------------
row() {  # row STATUS CHECK DETAIL
  echo "| $2 | $1 | $3 |" >>"$summary"
  [ "$1" = FAILED ] && failed=1
  echo "$1  $2: $3"
}
lm() {  # lm LOGNAME ARGS...: run lmprof (under the step timeout), output to OUT/LOGNAME.log; its status
  local name=$1; shift
  timeout "$step_timeout" "$PY" -m lmprof "$@" >"$out/$name.log" 2>&1
}
last_line() { tail -1 "$1" 2>/dev/null | tr '|' '/' | cut -c1-300; }
pct() { "$PY" -c "import sys; v = sys.argv[1]; print('none' if v == 'None' else f'{float(v):.1%}')" "$1"; }
jq_py() {  # jq_py PYTHON_EXPR RUN...: evaluate an expression over the runs' result.json (as r[0], r[1], ...)
  local expr=$1; shift
  "$PY" - "$expr" "$@" <<'EOF'
import json, sys
r = [json.load(open(f"{d}/result.json")) for d in sys.argv[2:]]
print(eval(sys.argv[1]))
EOF
}

# --- set-up --------------------------------------------------------------------------------------
wheels=${GPU_CHECK_WHEELS:-$root/benchmarks/wheels}
if [ "${GPU_CHECK_INSTALL:-1}" != 0 ] && ls "$wheels"/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --target "$out/site" "$wheels"/*.whl >"$out/pip.log" 2>&1 \
    || echo "pip could not install every wheel from $wheels (see pip.log)"
  export PYTHONPATH="$PYTHONPATH:$out/site"
fi
device=cuda
if [ "$mode" = --cpu-only ] || ! "$PY" -c 'import torch, sys; sys.exit(not torch.cuda.is_available())' 2>/dev/null; then
  device=cpu
fi
env_line=$("$PY" - <<'EOF' 2>&1
import platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}), {gpu}, "
      f"CPU capability {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads, "
      f"python {platform.python_version()}")
EOF
)
{
  echo "# lmprof GPU check"
  echo
  echo "$(date -u '+%Y-%m-%d %H:%M UTC') · device **$device** · $env_line"
  echo
  echo "Sizes: $batches batches, emsize = nhid = $size, bptt $bptt, corpus ${data:-embedded}; CPU twins $twin_batches batches."
  [ "$device" = cpu ] && echo "No CUDA here (or --cpu-only): the CPU half only; the GPU-only checks say skipped."
  echo
  echo "| check | status | what it saw |"
  echo "| --- | --- | --- |"
} >"$summary"
"$PY" -c 'import lmprof' 2>"$out/import.log" || { row FAILED "import lmprof" "$(last_line "$out/import.log")"; exit 1; }
missing=$("$PY" - <<'EOF'
import importlib.util
from lmprof.views.render import find_renderer
names = [m for m in ("line_profiler", "graphviz", "jinja2", "matplotlib", "rich") if importlib.util.find_spec(m) is None]
print(", ".join(names + ([] if find_renderer("svg") else ["a Graphviz renderer"])) or "nothing")
EOF
)
[ "$missing" = nothing ] && row ok "set-up" "every module lmprof uses imports; a Graphviz renderer found" \
  || row FAILED "set-up" "missing: $missing (see the wheels above)"
size_flags=(--emsize "$size" --nhid "$size" --bptt "$bptt" "${data_flag[@]}")
run=(--epochs 1 --max-batches "$batches" "${size_flags[@]}")

# --- 1. train on the device; CPU twins: the same short run without dropout ---------------------
# With --dropout 0 nothing random is drawn after the weights (initialised on the CPU from the seed),
# so the device and the CPU compute the same function. What is left is arithmetic: cuDNN's LSTM and
# cuBLAS use TF32 tensor cores by default (10-bit mantissa, unit roundoff 4.9e-4), so after a few SGD
# steps the losses agree to about that order: the twin must agree within 0.5% (ten times the
# roundoff; a wrong batch, mask or learning rate moves the loss by far more). With TF32 switched off
# (NVIDIA_TF32_OVERRIDE=0) only the order of float32 sums differs: within 0.05%.
if lm train train "${run[@]}" --device "$device" --out "$out/train" --force; then
  row ok "train" "$(jq_py '"valid loss %.4f after %d batches" % (r[0]["metrics"]["epochs"][0]["val_loss"], r[0]["metrics"]["epochs"][0]["batches"])' "$out/train")"
else row FAILED "train" "$(last_line "$out/train.log")"; fi
twin=(--epochs 1 --max-batches "$twin_batches" --dropout 0 "${size_flags[@]}")
twin_check() {  # twin_check CHECK RUN TOLERANCE
  local seen close
  seen=$(jq_py '"valid loss %.6f on the device, %.6f on the CPU (%.2e relative)" % (r[0]["metrics"]["epochs"][0]["val_loss"], r[1]["metrics"]["epochs"][0]["val_loss"], abs(r[0]["metrics"]["epochs"][0]["val_loss"] / r[1]["metrics"]["epochs"][0]["val_loss"] - 1))' "$out/$2" "$out/twin-cpu")
  close=$(jq_py "abs(r[0]['metrics']['epochs'][0]['val_loss'] / r[1]['metrics']['epochs'][0]['val_loss'] - 1) <= $3" "$out/$2" "$out/twin-cpu")
  [ "$close" = True ] && row ok "$1" "$seen" || row FAILED "$1" "not within $3: $seen"
}
if lm twin-cpu train "${twin[@]}" --device cpu --out "$out/twin-cpu" --force; then
  if lm twin train "${twin[@]}" --device "$device" --out "$out/twin" --force; then
    twin_check "CPU twin, dropout 0" twin 0.005
  else row FAILED "CPU twin, dropout 0" "$(last_line "$out/twin.log")"; fi
  if [ "$device" = cuda ]; then
    if NVIDIA_TF32_OVERRIDE=0 lm twin-fp32 train "${twin[@]}" --device cuda --out "$out/twin-fp32" --force; then
      twin_check "CPU twin, TF32 off" twin-fp32 0.0005
    else row FAILED "CPU twin, TF32 off" "$(last_line "$out/twin-fp32.log")"; fi
  else row skipped "CPU twin, TF32 off" "needs CUDA"; fi
else row FAILED "CPU twin, dropout 0" "CPU twin failed: $(last_line "$out/twin-cpu.log")"; fi

# --- 2. cuDNN off gives the same outputs as cuDNN on, in float32 (TF32 off) ---------------------
if [ "$device" = cuda ]; then
  same=$(timeout "$step_timeout" "$PY" - <<'EOF' 2>&1 | tail -1
import torch

def on_minus_off() -> float:
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(32, 32, 2).cuda()
    x = torch.randn(35, 20, 32, device="cuda")
    with torch.no_grad():
        on = rnn(x)[0]
        with torch.backends.cudnn.flags(enabled=False):  # the unrolled graph is drawn with cuDNN off
            off = rnn(x)[0]
    return (on - off).abs().max().item()

tf32 = on_minus_off()  # cuDNN's LSTM multiplies on TF32 tensor cores by default (Ampere and later)
torch.backends.cudnn.allow_tf32 = False
torch.backends.cuda.matmul.allow_tf32 = False
fp32 = on_minus_off()
print(f"max |cuDNN on - off| = {fp32:.2e} in float32 ({tf32:.2e} with cuDNN's default TF32)", fp32 <= 1e-5)
EOF
)
  case "$same" in *True) row ok "cuDNN off, same outputs" "${same% True}";; *) row FAILED "cuDNN off, same outputs" "$same";; esac
else row skipped "cuDNN off, same outputs" "needs CUDA"; fi

# --- 3. diagram bptt (drawn on the CPU) ----------------------------------------------------------
if lm diagram diagram bptt --out "$out/bptt.svg"; then row ok "diagram bptt" "bptt.svg written"
else row FAILED "diagram bptt" "$(last_line "$out/diagram.log")"; fi

# --- 4. the real-CUDA tests (pytest -m cuda) -----------------------------------------------------
if "$PY" -c 'import pytest' 2>/dev/null; then
  # only the files that hold cuda-marked tests: quicker, and no other test file's imports can stop them
  mapfile -t tests < <(grep -l 'pytest.mark.cuda' tests/test_*.py)
  at=$SECONDS
  LMPROF_TEST_DATA=$data LMPROF_TEST_UPSTREAM=$upstream timeout "$step_timeout" \
    "$PY" -m pytest -m cuda -q -rs -p no:cacheprovider "${tests[@]}" >"$out/pytest-cuda.log" 2>&1
  code=$?
  line=$(grep -E '^=*\s*[0-9]+ (passed|failed|skipped|deselected|error)' "$out/pytest-cuda.log" | tail -1 | tr -d '=' | xargs)
  line="${line:-no summary line (exit $code)} ($((SECONDS - at)) s)"
  if [ $code = 0 ]; then row ok "pytest -m cuda" "$line"; else row FAILED "pytest -m cuda" "$line; see pytest-cuda.log"; fi
else row skipped "pytest -m cuda" "no pytest in this python"; fi

# --- 5. profile --fn train, default and --sync blocking: where loss.item()'s time goes ----------
item_share='next((l["share"] for f in r[0]["lines"]["functions"] for l in f["lines"] if "loss.item()" in l.get("source", "")), None)'
ok_default=0
for sync in launch blocking; do
  if lm "profile-$sync" profile --fn train --sync "$sync" "${run[@]}" --device "$device" --out "$out/profile-$sync" --force; then
    share=$(jq_py "$item_share" "$out/profile-$sync")
    note=$(grep -cE 'asynchronous launches|blocking launches' "$out/profile-$sync.log")
    declare "share_$sync=$share"
    if [ "$device" = cuda ] && [ "$note" = 0 ]; then row FAILED "profile --sync $sync" "no CUDA note under the line table"
    else row ok "profile --sync $sync" "loss.item() line: $(pct "$share") of train()"; fi
    [ "$sync" = launch ] && ok_default=1
  else row FAILED "profile --sync $sync" "$(last_line "$out/profile-$sync.log")"; fi
done
if [ "$device" = cuda ] && [ -n "${share_launch:-}" ] && [ -n "${share_blocking:-}" ]; then
  moved=$("$PY" -c "print($share_blocking < $share_launch)")
  seen="$(pct "$share_launch") of train() by default, $(pct "$share_blocking") with --sync blocking"
  [ "$moved" = True ] && row ok "blocking moves time off loss.item()" "$seen" \
    || row FAILED "blocking moves time off loss.item()" "$seen"
else row skipped "blocking moves time off loss.item()" "needs CUDA"; fi

# --- 6. the phase table: CUDA-event times and the host-vs-GPU gap ------------------------------
if [ "$ok_default" = 1 ] && lm show show "$out/profile-launch"; then
  clock=$(jq_py 'r[0]["phase_summary"]["clock"]' "$out/profile-launch")
  samples=$(jq_py 'sum(len(p.get("samples", [])) for p in r[0]["phases"])' "$out/profile-launch")
  coverage=$(pct "$(jq_py 'r[0]["phase_summary"].get("train_coverage")' "$out/profile-launch")")
  if [ "$device" = cuda ]; then
    gap=$(jq_py '"; ".join("%s %+.1f ms" % (p["name"], 1e3 * (p["host_seconds"] - p["seconds"])) for p in r[0]["phases"] if p["name"] in ("forward", "backward", "logging"))' "$out/profile-launch")
    grep -q 'host - GPU' "$out/show.log" && [ "$clock" = "cuda events" ] \
      && row ok "phase table on CUDA events" "clock $clock, $samples per-call samples, phases cover $coverage of train(); host - GPU: $gap" \
      || row FAILED "phase table on CUDA events" "clock $clock, no host - GPU column"
  else row ok "phase table" "clock $clock, $samples per-call samples, phases cover $coverage of train() (CUDA events need CUDA)"; fi
else row FAILED "phase table" "lmprof show failed"; fi

# --- 7. trace: kernel rows in the operator table and in the trace JSON --------------------------
if lm trace trace "${run[@]}" --device "$device" --out "$out/trace" --force; then
  ops=$(jq_py 'len(r[0]["ops"]["rows"])' "$out/trace")
  kernels=$(find "$out/trace" -name '*.pt.trace.json*' -exec zgrep -c '"cat": *"kernel"' {} + 2>/dev/null | awk -F: '{s += $NF} END {print s + 0}')
  if [ "$device" = cuda ]; then
    cuda_ops=$(jq_py 'sum(1 for o in r[0]["ops"]["rows"] if (o.get("self_cuda_seconds") or 0) > 0)' "$out/trace")
    widest=$("$PY" - "$out/trace/result.json" <<'EOF'
import json, sys
from lmprof.views.ops import short_op_name
print(max([len(short_op_name(o["name"])) for o in json.load(open(sys.argv[1]))["ops"]["rows"]] or [0]))
EOF
)
    [ "$cuda_ops" -gt 0 ] && [ "$kernels" -gt 0 ] \
      && row ok "trace" "$ops operator rows, $cuda_ops with CUDA time, names at most $widest characters; $kernels kernel events in the trace JSON" \
      || row FAILED "trace" "$cuda_ops operator rows with CUDA time, $kernels kernel events"
  else row ok "trace" "$ops operator rows (kernel rows need CUDA)"; fi
else row FAILED "trace" "$(last_line "$out/trace.log")"; fi

# --- 8. what each instrument costs on CUDA (benchmarks/bench_cuda_overhead.py, when present) -----
bench=benchmarks/bench_cuda_overhead.py
if [ "$device" != cuda ]; then row skipped "CUDA overhead bench" "needs CUDA"
elif [ ! -f "$bench" ]; then row skipped "CUDA overhead bench" "$bench is not in this tree"
else
  at=$SECONDS
  if timeout "$step_timeout" "$PY" "$bench" "${data_flag[@]}" --out "$out/cuda-overhead.md" >"$out/cuda-overhead.log" 2>&1 \
      && [ -s "$out/cuda-overhead.md" ]; then
    row ok "CUDA overhead bench" "table below ($((SECONDS - at)) s)"
  else row FAILED "CUDA overhead bench" "$(last_line "$out/cuda-overhead.log")"; fi
fi

# --- 9. speedlab's CUDA rungs, short: the variants this tree has --------------------------------
want=foreach; [ "$device" = cuda ] && want=foreach,tf32,cuda-graph
variants=$("$PY" -c "
import sys
from lmprof.experiments.speedlab.variants import BY_NAME
print(','.join(n for n in sys.argv[1].split(',') if n in BY_NAME))" "$want" 2>/dev/null)
if [ -z "$variants" ]; then row skipped "speedlab" "no speedlab variants in this tree"
elif timeout "$step_timeout" "$PY" -m lmprof speedlab --device "$device" --variants "$variants" --budget-batches \
    "$ladder_batches" --repeats 1 --eval-every 10 --valid-tokens 2000 --no-combine "${size_flags[@]}" \
    --out "$out/speedlab" --force --json >"$out/speedlab.json" 2>"$out/speedlab.log"; then
  seen=$("$PY" - "$out/speedlab.json" <<'EOF'
import json, sys
rows = json.load(open(sys.argv[1]))["rows"]
print(", ".join(f"{r['name']} {r['speedup']:.2f}x" if r.get("speedup") else f"{r['name']} {r['status']}" for r in rows))
EOF
)
  row ok "speedlab --device $device" "${seen:-see speedlab.log} ($ladder_batches batches each)"
else row FAILED "speedlab --device $device" "$(last_line "$out/speedlab.log")"; fi

# --- 10. explain gpu (the launch-bound lesson), when this tree has it ---------------------------
if [ "$device" != cuda ]; then row skipped "explain gpu" "needs CUDA"
elif ! "$PY" -m lmprof explain 2>/dev/null | grep -qE '^gpu\b'; then row skipped "explain gpu" "no such topic in this tree"
elif lm explain-gpu explain gpu; then row ok "explain gpu" "$(grep -cv '^\s*$' "$out/explain-gpu.log") lines; see explain-gpu.log"
else row FAILED "explain gpu" "$(last_line "$out/explain-gpu.log")"; fi

# --- 11. a 2-run sweep ---------------------------------------------------------------------------
if lm sweep sweep --models LSTM GRU "${run[@]}" --device "$device" --out "$out/sweep" --fresh; then
  rows=$(grep -cE '^\s*(LSTM|GRU)\b|│ *(LSTM|GRU) ' "$out/sweep.log")
  row ok "sweep LSTM GRU" "finished; $rows table lines name a model"
else row FAILED "sweep LSTM GRU" "$(last_line "$out/sweep.log")"; fi

# --- 12. report ----------------------------------------------------------------------------------
if [ "$ok_default" = 1 ] && lm report report "$out/profile-launch" && [ -s "$out/profile-launch/report.html" ]; then
  row ok "report" "profile-launch/report.html, $(wc -c <"$out/profile-launch/report.html") bytes"
else row FAILED "report" "$(last_line "$out/report.log")"; fi

{
  echo
  echo "Took $((SECONDS - started)) s. Logs: one *.log per step beside this page; run folders train/, twin*/,"
  echo "profile-launch/, profile-blocking/, trace/, speedlab/, sweep/."
  if [ -s "$out/cuda-overhead.md" ]; then
    echo
    echo "## What each instrument costs on CUDA (benchmarks/bench_cuda_overhead.py)"
    echo
    cat "$out/cuda-overhead.md"
  fi
} >>"$summary"
exit $failed
