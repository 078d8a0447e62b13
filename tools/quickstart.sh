#!/usr/bin/env bash
# README command (a): set up .venv and train + evaluate the supervised baseline on the embedded hippocampus MRI.
#   bash tools/quickstart.sh [more options for `semicontrast run`]
# Writes runs/quickstart/ (result.json, report.html, split.json, model.pth). Env: PYTHON (default python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ ! -x .venv/bin/python ]; then "${PYTHON:-python3}" -m venv .venv; fi
.venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -r requirements-dev.txt -e .
exec .venv/bin/semicontrast run supervised --data hippocampus --out runs/quickstart "$@"
