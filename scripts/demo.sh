#!/usr/bin/env bash
# The main job on the bundled default data: the lab corpus (12 classes of real encrypted traffic)
# becomes a labelled, anonymised, deduplicated, flow-split dataset; its summary is printed.
set -euo pipefail
cd "$(dirname "$0")/.."
out=demo-out
.venv/bin/etbert prepare data/lab-default -o "$out/lab-dataset" --overwrite
echo
echo "Dataset: $out/lab-dataset (flows.parquet + manifest.json). Print the summary again with:"
echo "  .venv/bin/etbert inspect $out/lab-dataset"
