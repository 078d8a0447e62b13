#!/usr/bin/env bash
# The oldest numpy, pandas and pillow the package says it works with (settings.ini's lower bounds), tested: a fresh
# virtual environment (.venv-floors) with exactly those three versions, everything else as the development toolchain
# pins it, then the library tests (not the documentation pages, the tutorials or the notebook sync). These three are
# the floors a Colab runtime meets with its own preinstalled packages; keeping them low lets it keep them.
# Not part of tools/test.sh (it takes about 20 minutes on 2 cores). Usage: bash tools/floors_test.sh [pytest args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
floors=$(python3 - <<'PY'
import configparser, re
req = configparser.ConfigParser(); req.read('settings.ini'); req = req['DEFAULT']['requirements'].split()
pins = [re.sub(r'>=', '==', r) for r in req if re.match(r'(numpy|pandas|pillow)>=', r)]
assert len(pins) == 3, req
print(' '.join(pins))
PY
)
echo "floors: $floors"
V=.venv-floors
[ -x "$V/bin/python" ] || python3 -m venv "$V"
grep -v -E '^(numpy|pandas|pillow)\b' requirements-dev.txt | grep -v '^#' > "$V/requirements.txt"
"$V/bin/pip" install -q -r "$V/requirements.txt" $floors
"$V/bin/pip" install -q --no-deps -e .
"$V/bin/python" -c "import numpy, pandas, PIL; print('testing with numpy', numpy.__version__, 'pandas', pandas.__version__, 'pillow', PIL.__version__)"
OMP_NUM_THREADS=1 "$V/bin/python" -m pytest -q -p no:cacheprovider tests --ignore=tests/test_docs.py \
    --ignore=tests/test_tutorials.py --ignore=tests/test_sync.py --ignore=tests/test_methods_notes.py "$@"
