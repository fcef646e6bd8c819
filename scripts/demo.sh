#!/usr/bin/env bash
# The main job on the bundled default data (grows with the toolkit).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "demo: not wired yet" >&2
