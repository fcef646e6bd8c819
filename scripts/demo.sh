#!/usr/bin/env bash
# The main job on the bundled default data: the lab corpus (12 classes of real encrypted traffic) becomes
# a labelled, anonymised, deduplicated, flow-split dataset; the baselines are trained, evaluated (also for
# early identification), audited for shortcuts, compared, and written into one HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
etbert=.venv/bin/etbert
out=demo-out
models=${DEMO_MODELS:-"majority random-forest xgboost lightgbm header-lightgbm svm knn"}

$etbert prepare data/lab-default -o "$out/lab-dataset" --overwrite
runs=()
for model in $models; do
    echo
    $etbert train "$out/lab-dataset" --model "$model" -o "$out/runs/$model" --overwrite
    $etbert evaluate "$out/runs/$model" --early > /dev/null
    runs+=("$out/runs/$model")
done
echo
$etbert audit "$out/lab-dataset"
echo
$etbert compare "${runs[@]}"
$etbert report "${runs[@]}" -o "$out/report.html"
echo
echo "Report: $out/report.html   Runs: $out/runs/   Dataset: $out/lab-dataset"
