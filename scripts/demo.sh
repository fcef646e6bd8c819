#!/usr/bin/env bash
# The main job on the bundled default data: the lab corpus (12 classes of real encrypted traffic) becomes
# a labelled, anonymised, deduplicated, flow-split dataset; a small ET-BERT is pre-trained on its training
# split and fine-tuned; it and the baselines are trained, evaluated (also for early identification),
# audited for shortcuts, compared, and written into one HTML report.
# DEMO_MODELS picks the baselines; DEMO_ETBERT_STEPS the pre-training steps (0: no ET-BERT).
set -euo pipefail
cd "$(dirname "$0")/.."
etbert=.venv/bin/etbert
out=demo-out
models=${DEMO_MODELS:-"majority random-forest xgboost lightgbm header-lightgbm svm knn"}
etbert_steps=${DEMO_ETBERT_STEPS:-300}

$etbert prepare data/lab-default -o "$out/lab-dataset" --overwrite
runs=()
for model in $models; do
    echo
    $etbert train "$out/lab-dataset" --model "$model" -o "$out/runs/$model" --overwrite
    $etbert evaluate "$out/runs/$model" --early > /dev/null
    runs+=("$out/runs/$model")
done
if [ "$etbert_steps" -gt 0 ]; then
    # CPU-sized: 128 tokens a document and a flow (the model's default is 512); docs/etbert.md has more
    echo
    rm -rf "$out/etbert-small"
    $etbert pretrain "$out/lab-dataset" -o "$out/etbert-small" --config small --max-steps "$etbert_steps" \
        --seq-length 128 --payload-only --mlm-weight 1.0
    $etbert train "$out/lab-dataset" --model etbert-flow -o "$out/runs/etbert-flow" --overwrite \
        --set pretrained="$out/etbert-small" --set seq_length=128
    $etbert evaluate "$out/runs/etbert-flow" --early > /dev/null
    runs+=("$out/runs/etbert-flow")
fi
echo
$etbert audit "$out/lab-dataset"
echo
$etbert compare "${runs[@]}"
$etbert report "${runs[@]}" -o "$out/report.html"
echo
echo "Report: $out/report.html   Runs: $out/runs/   Dataset: $out/lab-dataset"
