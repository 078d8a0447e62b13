#!/usr/bin/env bash
# The user's install, tested: build the wheel, install it into a fresh virtual environment with the runtime
# requirements only (the newest versions the declared bounds allow; torch pinned to the CPU build on this disk), and
# run an import check, `semicontrast run supervised --smoke` and `semicontrast predict` there, outside the repository.
# Prints the versions pip resolved and the size of the installed environment.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
W=build/wheeltest
rm -rf "$W"; mkdir -p "$W"
.venv/bin/python -m build --wheel --no-isolation --outdir "$W/dist" . > "$W/build.log" 2>&1 || { tail -20 "$W/build.log"; exit 1; }
WHL=$(ls "$W"/dist/semicontrast-*.whl)
python3 -m venv "$W/venv"
"$W/venv/bin/pip" install -q --upgrade pip
"$W/venv/bin/pip" install -q torch==2.13.0 "$WHL"
echo "resolved: $("$W/venv/bin/pip" freeze | grep -i -E '^(semicontrast|torch|fastai|fastcore|numpy|monai|nibabel|scikit-image|plotly|pandas|scikit-learn)==' | tr '\n' ' ')"
echo "installed environment: $(du -sh "$W/venv" | cut -f1) ($(du -sh "$W"/venv/lib/python3*/site-packages/torch | cut -f1) of it torch)"
cd "$W"
venv/bin/python - <<'PY'
import semicontrast, semicontrast.learner, semicontrast.inference, semicontrast.cli
from semicontrast.data import hippocampus_path
assert 'site-packages' in semicontrast.__file__, semicontrast.__file__   # the wheel, not the repository
assert (hippocampus_path()/'dataset.json').is_file()                     # the embedded data is in the wheel
import importlib.metadata as md
meta = md.metadata('semicontrast')
assert 'CC-BY-SA-4.0' in (meta.get('License') or '') + ' '.join(meta.get_all('Classifier') or []) + (meta.get('License-Expression') or ''), 'the metadata names no data licence'
print('import check: ok,', semicontrast.__file__)
PY
venv/bin/semicontrast run supervised --smoke --quiet --out run
IMG=$(venv/bin/python -c "from semicontrast.data import hippocampus_path; import json; p=hippocampus_path(); print(p/json.load(open(p/'dataset.json'))['training'][0]['image'])")
venv/bin/semicontrast predict --model run --input "$IMG" --out pred --quiet
test -s pred/*.nii.gz
echo "wheel test: ok"
