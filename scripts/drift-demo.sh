#!/usr/bin/env bash
# The drift scenario end to end: a champion trained before a lighting change loses AUC on
# images labelled after it (monitoring alerts), a model retrained on all images, before and
# after the change, wins the champion/challenger comparison, and monitoring on later images shows the recovery.
#
#   scripts/drift-demo.sh [OUT_DIR]      (make drift-demo)
#
# With PREFECT_API_URL set (and `defectflow automations apply` done) the monitoring steps emit
# Prefect events and the alert Automation sends its notification; without it, the verdict is
# printed and `defectflow monitor` exits 8 on an alert. MLflow: a SQLite store in OUT_DIR
# unless MLFLOW_TRACKING_URI is set.
#
# Size (the figures in docs/orchestration.md come from the defaults; tests/integration/test_drift_demo.py runs a
# smaller copy): DRIFT_DEMO_N="BEFORE AFTER LATER" image counts (default "1200 700 150") and DRIFT_DEMO_SET,
# space-separated KEY=VALUE overrides given to every command (e.g. "synth.image_size=64 featurize.image_size=64").
set -euo pipefail
OUT=${1:-work/drift-demo}
DF=${DEFECTFLOW:-.venv/bin/defectflow}
PY=${PYTHON:-.venv/bin/python}
DRIFT_FROM=2026-10-13
read -r N_BEFORE N_AFTER N_LATER <<<"${DRIFT_DEMO_N:-1200 700 150}"
export MLFLOW_TRACKING_URI=${MLFLOW_TRACKING_URI:-sqlite:///$(realpath -m "$OUT")/mlflow.db}
SIZE=()
for item in ${DRIFT_DEMO_SET:-}; do SIZE+=(--set "$item"); done
COMMON=(--set register.model_name=defectflow-drift-demo "${SIZE[@]}")
mkdir -p "$OUT"

step() { printf '\n=== %s\n' "$*"; }
monitor() {  # the alert is the point of the demo: exit 8 is an outcome here, not an error
  local code=0
  "$DF" monitor --data "$1" --workdir "$2" "${COMMON[@]}" || code=$?
  [[ $code == 0 || $code == 8 ]] || exit "$code"
}

combine() {  # combine OUT PART... : one data folder (and labels.csv) holding every part
  "$PY" - "$@" <<'PY'
import shutil, sys
from pathlib import Path

import pandas as pd

out, *parts = map(Path, sys.argv[1:])
frames = []
for part in parts:
    shutil.copytree(part, out / part.name, dirs_exist_ok=True)
    labels = pd.read_csv(part / "labels.csv", dtype=str, keep_default_na=False)
    labels["image"] = part.name + "/" + labels["image"]
    labels["board_id"] = part.name + "/" + labels["board_id"]  # each synth run numbers its boards from 1
    frames.append(labels)
pd.concat(frames).to_csv(out / "labels.csv", index=False)
PY
}

step "1. six weeks of images from the original cameras (the default demo data) → train and promote the champion"
"$DF" synth --out "$OUT/before" --n "$N_BEFORE" --seed 7 --set synth.days=42 "${SIZE[@]}"
"$DF" pipeline --data "$OUT/before" --workdir "$OUT/train-before" "${COMMON[@]}"
"$DF" promote --data "$OUT/before" --workdir "$OUT/train-before" "${COMMON[@]}"

step "2. the inspection lamps are changed on $DRIFT_FROM; three weeks of new labelled images"
"$DF" synth --out "$OUT/after" --n "$N_AFTER" --seed 8 --drift-from "$DRIFT_FROM" --drift-kind lighting \
  --set synth.start="$DRIFT_FROM" --set synth.days=21 "${SIZE[@]}"

step "3. monitoring the champion on them: expect the AUC to drop below alerts.min_auc (alert)"
monitor "$OUT/after" "$OUT/train-before"

step "4. retraining on all labelled images, before and after the change; promotion compares both models on the newest window"
rm -rf "$OUT/all" && combine "$OUT/all" "$OUT/before" "$OUT/after"
"$DF" pipeline --data "$OUT/all" --workdir "$OUT/train-after" "${COMMON[@]}"
"$DF" promote --data "$OUT/all" --workdir "$OUT/train-after" "${COMMON[@]}"

step "5. a later week of labels: the new champion has recovered"
"$DF" synth --out "$OUT/later" --n "$N_LATER" --seed 9 --drift-from "$DRIFT_FROM" --drift-kind lighting \
  --set synth.start=2026-11-04 --set synth.days=6 "${SIZE[@]}"
monitor "$OUT/later" "$OUT/train-after"

step "promotion history"
"$DF" promote --history --workdir "$OUT/train-after" "${COMMON[@]}"
