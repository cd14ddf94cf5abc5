#!/usr/bin/env bash
# lmprof on a lent CUDA machine, in one go (about 8 minutes at the default sizes).
#
#   benchmarks/gpu_check.sh OUT_DIR            on --device cuda, with a CPU twin of the first run
#   benchmarks/gpu_check.sh OUT_DIR --cpu-only the same steps on the CPU (what the test suite runs)
#
# Writes every run folder, log and drawing under OUT_DIR, and OUT_DIR/summary.md: one page, one line
# per check (ok / FAILED / skipped, and what it saw). Exits 1 if any check failed, 0 otherwise.
#
# The machine needs a python3 with torch (CUDA build), rich, jinja2 and matplotlib. What else lmprof
# needs comes as wheels carried beside this script; make them on a machine with the internet:
#   python3 -m pip download --only-binary=:all: -d benchmarks/wheels line_profiler graphviz \
#       torch-tb-profiler   # plus graphviz-pure / anything pip names as missing
# (pick --python-version / --platform to match the GPU machine if it differs). lmprof itself is
# installed from this source tree (pip install --no-deps -e .), or found through PYTHONPATH.
#
# Sizes (environment variables; the test suite makes them tiny):
#   GPU_CHECK_DATA     corpus folder (default: the embedded corpus)
#   GPU_CHECK_BATCHES  training batches per run (default 200)
#   GPU_CHECK_SIZE     emsize = nhid (default 200)     GPU_CHECK_BPTT  bptt (default 35)
#   GPU_CHECK_WHEELS   wheel folder (default benchmarks/wheels)
#   GPU_CHECK_INSTALL  0 to skip every pip install (lmprof already importable)
#   PYTHON             the python to use (default python3)
set -u
out=${1:?usage: benchmarks/gpu_check.sh OUT_DIR [--cpu-only]}
mode=${2:-}
root=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
mkdir -p "$out" && out=$(cd "$out" && pwd)
cd "$root"
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"  # lmprof from this tree even if pip cannot install it
export MPLBACKEND=Agg

batches=${GPU_CHECK_BATCHES:-200}; size=${GPU_CHECK_SIZE:-200}; bptt=${GPU_CHECK_BPTT:-35}
data_flag=(); [ -n "${GPU_CHECK_DATA:-}" ] && data_flag=(--data "$GPU_CHECK_DATA")
summary="$out/summary.md"; failed=0; started=$SECONDS

# --- the page ------------------------------------------------------------------------------------
row() {  # row STATUS CHECK DETAIL
  echo "| $2 | $1 | $3 |" >>"$summary"
  [ "$1" = FAILED ] && failed=1
  echo "$1  $2: $3"
}
lm() {  # lm LOGNAME ARGS...: run lmprof, output to OUT/LOGNAME.log; status of lmprof
  local name=$1; shift
  "$PY" -m lmprof "$@" >"$out/$name.log" 2>&1
}
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
if [ "${GPU_CHECK_INSTALL:-1}" != 0 ]; then
  wheels=${GPU_CHECK_WHEELS:-$root/benchmarks/wheels}
  if [ -d "$wheels" ]; then
    "$PY" -m pip install -q --no-index --find-links "$wheels" "$wheels"/*.whl >"$out/pip.log" 2>&1 \
      || echo "pip could not install every wheel from $wheels (see pip.log)"
  fi
  "$PY" -m pip install -q --no-deps --no-build-isolation -e "$root" >>"$out/pip.log" 2>&1 \
    || echo "pip install -e failed; using PYTHONPATH=$root"
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
  echo "Sizes: $batches batches, emsize = nhid = $size, bptt $bptt, corpus ${GPU_CHECK_DATA:-embedded}."
  [ "$device" = cpu ] && echo "No CUDA here (or --cpu-only): the CPU half only; the GPU-only checks say skipped."
  echo
  echo "| check | status | what it saw |"
  echo "| --- | --- | --- |"
} >"$summary"
"$PY" -c 'import lmprof' 2>"$out/import.log" || { row FAILED "import lmprof" "$(tail -1 "$out/import.log")"; exit 1; }
run=(--epochs 1 --max-batches "$batches" --emsize "$size" --nhid "$size" --bptt "$bptt" "${data_flag[@]}")

# --- 1. train on the device, and its CPU twin: losses close, not equal (different kernels) -------
if lm train train "${run[@]}" --device "$device" --out "$out/train" --force; then
  if lm train-cpu train "${run[@]}" --device cpu --out "$out/train-cpu" --force; then
    seen=$(jq_py '"valid loss %.5f on the device, %.5f on the CPU" % (r[0]["metrics"]["epochs"][0]["val_loss"], r[1]["metrics"]["epochs"][0]["val_loss"])' "$out/train" "$out/train-cpu")
    close=$(jq_py 'abs(r[0]["metrics"]["epochs"][0]["val_loss"] - r[1]["metrics"]["epochs"][0]["val_loss"]) < 0.02 * r[1]["metrics"]["epochs"][0]["val_loss"]' "$out/train" "$out/train-cpu")
    [ "$close" = True ] && row ok "train + CPU twin" "$seen" || row FAILED "train + CPU twin" "not close: $seen"
  else row FAILED "train + CPU twin" "CPU twin failed: $(tail -1 "$out/train-cpu.log")"; fi
else row FAILED "train + CPU twin" "$(tail -1 "$out/train.log")"; fi

# --- 2. profile --fn train, default and --sync blocking: where loss.item()'s time goes ----------
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
  else row FAILED "profile --sync $sync" "$(tail -1 "$out/profile-$sync.log")"; fi
done
if [ "$device" = cuda ] && [ -n "${share_launch:-}" ] && [ -n "${share_blocking:-}" ]; then
  moved=$("$PY" -c "print($share_blocking < $share_launch)")
  seen="$(pct "$share_launch") of train() by default, $(pct "$share_blocking") with --sync blocking"
  [ "$moved" = True ] && row ok "blocking moves time off loss.item()" "$seen" \
    || row FAILED "blocking moves time off loss.item()" "$seen"
else row skipped "blocking moves time off loss.item()" "needs CUDA"; fi

# --- 3. the phase table: CUDA-event times and the host-vs-GPU gap ------------------------------
if [ "$ok_default" = 1 ] && lm show show "$out/profile-launch"; then
  clock=$(jq_py 'r[0]["phase_summary"]["clock"]' "$out/profile-launch")
  samples=$(jq_py 'sum(len(p.get("samples", [])) for p in r[0]["phases"])' "$out/profile-launch")
  if [ "$device" = cuda ]; then
    gap=$(jq_py '"; ".join("%s %+.1f ms" % (p["name"], 1e3 * (p["host_seconds"] - p["seconds"])) for p in r[0]["phases"] if p["name"] in ("forward", "backward", "logging"))' "$out/profile-launch")
    grep -q 'host - GPU' "$out/show.log" && [ "$clock" = "cuda events" ] \
      && row ok "phase table on CUDA events" "clock $clock, $samples per-call samples; host - GPU: $gap" \
      || row FAILED "phase table on CUDA events" "clock $clock, no host - GPU column"
  else row ok "phase table" "clock $clock, $samples per-call samples (CUDA events need CUDA)"; fi
else row FAILED "phase table" "lmprof show failed"; fi

# --- 4. trace: kernel rows in the operator table and in the trace JSON --------------------------
if lm trace trace "${run[@]}" --device "$device" --out "$out/trace" --force; then
  ops=$(jq_py 'len(r[0]["ops"]["rows"])' "$out/trace")
  kernels=$(find "$out/trace" -name '*.pt.trace.json*' -exec zgrep -c '"cat": *"kernel"' {} + 2>/dev/null | awk -F: '{s += $NF} END {print s + 0}')
  if [ "$device" = cuda ]; then
    cuda_ops=$(jq_py 'sum(1 for o in r[0]["ops"]["rows"] if (o.get("self_cuda_seconds") or 0) > 0)' "$out/trace")
    [ "$cuda_ops" -gt 0 ] && [ "$kernels" -gt 0 ] \
      && row ok "trace" "$ops operator rows, $cuda_ops with CUDA time; $kernels kernel events in the trace JSON" \
      || row FAILED "trace" "$cuda_ops operator rows with CUDA time, $kernels kernel events"
  else row ok "trace" "$ops operator rows (kernel rows need CUDA)"; fi
else row FAILED "trace" "$(tail -1 "$out/trace.log")"; fi

# --- 5. diagram bptt (drawn on the CPU), and cuDNN off gives the same outputs as cuDNN on -------
if lm diagram diagram bptt --out "$out/bptt.svg"; then row ok "diagram bptt" "bptt.svg written"
else row FAILED "diagram bptt" "$(tail -1 "$out/diagram.log")"; fi
if [ "$device" = cuda ]; then
  same=$("$PY" - <<'EOF' 2>&1
import torch
torch.manual_seed(0)
rnn = torch.nn.LSTM(32, 32, 2).cuda()
x = torch.randn(35, 20, 32, device="cuda")
with torch.no_grad():
    on = rnn(x)[0]
    with torch.backends.cudnn.flags(enabled=False):  # the unrolled graph is drawn with cuDNN off
        off = rnn(x)[0]
print(f"max |cuDNN on - off| = {(on - off).abs().max().item():.2e}", torch.allclose(on, off, atol=1e-5))
EOF
)
  case "$same" in *True) row ok "cuDNN off, same outputs" "$same";; *) row FAILED "cuDNN off, same outputs" "$same";; esac
else row skipped "cuDNN off, same outputs" "needs CUDA"; fi

# --- 6. a 2-run sweep ----------------------------------------------------------------------------
if lm sweep sweep --models LSTM GRU "${run[@]}" --device "$device" --out "$out/sweep" --fresh; then
  rows=$(grep -cE '^\s*(LSTM|GRU)\b|│ *(LSTM|GRU) ' "$out/sweep.log")
  row ok "sweep LSTM GRU" "finished; $rows table lines name a model"
else row FAILED "sweep LSTM GRU" "$(tail -1 "$out/sweep.log")"; fi

# --- 7. report -----------------------------------------------------------------------------------
if [ "$ok_default" = 1 ] && lm report report "$out/profile-launch" && [ -s "$out/profile-launch/report.html" ]; then
  row ok "report" "profile-launch/report.html, $(wc -c <"$out/profile-launch/report.html") bytes"
else row FAILED "report" "$(tail -1 "$out/report.log" 2>/dev/null)"; fi

{
  echo
  echo "Took $((SECONDS - started)) s. Logs: one *.log per step beside this page; run folders train/, train-cpu/,"
  echo "profile-launch/, profile-blocking/, trace/, sweep/."
} >>"$summary"
exit $failed
