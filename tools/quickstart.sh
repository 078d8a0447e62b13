#!/usr/bin/env bash
# README command (a): set up .venv, then pre-train + fine-tune IDEAL and evaluate it on the embedded hippocampus MRI.
#   bash tools/quickstart.sh [more options for `semicontrast run`]
# Writes runs/quickstart/ (result.json, report.html, split.json, encoder.pth, model.pth). Env: PYTHON (default python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then "${PYTHON:-python3}" -m venv .venv; fi
.venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -r requirements-dev.txt -e .
exec .venv/bin/semicontrast run ideal --data hippocampus --out runs/quickstart "$@"
