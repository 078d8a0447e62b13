#!/usr/bin/env bash
# The whole test suite (README command (b); CI runs it through .ci/run on a clean clone).
#   bash tools/test.sh            # from anywhere; works in the repository root
# 1. sets up .venv (python3 -m venv, if missing) and installs the pinned toolchain + semicontrast (editable);
# 2. installs Debian's chromium if /usr/bin/chromium is missing (root or passwordless sudo needed);
# 3. runs every library notebook with nbdev_test (cells flagged `#| slow` / `#| gpu` are skipped: settings.ini tst_flags);
# 4. runs pytest on tests/: contracts, notebook/library sync, tutorials in smoke mode, docs pages in headless Chromium;
# 5. runs the widget tests again with ipywidgets 7 (Colab's) in a second small environment, .venv-w7.
# Everything runs offline after the install. Env: PYTHON (interpreter for the venv, default python3).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

T0=$(date +%s.%N); STEP=""; TIMES=()
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
begin() { STEP=$1; TS=$(now); echo; echo "=== $STEP"; }
end() { local t; t=$(secs "$TS"); TIMES+=("$(printf '%-34s %8s s' "$STEP" "$t")"); echo "=== $STEP: done in $t s"; STEP=""; }
report() {
  local rc=$?
  echo; echo "=== timings"; for t in "${TIMES[@]}"; do echo "  $t"; done
  [ -n "$STEP" ] && echo "  $(printf '%-34s %8s s' "$STEP" "$(secs "$TS")")  <- FAILED (exit status $rc)"
  echo "  $(printf '%-34s %8s s' total "$(secs "$T0")")"
  exit $rc
}
trap report EXIT

begin "set up .venv"
if [ ! -x .venv/bin/python ]; then "${PYTHON:-python3}" -m venv .venv; fi
.venv/bin/python -m pip install --disable-pip-version-check --progress-bar off -r requirements-dev.txt -e .
end

begin "chromium for the browser tests"
if [ -x /usr/bin/chromium ]; then
  echo "found $(/usr/bin/chromium --version 2>/dev/null || echo /usr/bin/chromium)"
else
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO="sudo"; else SUDO="none"; fi
  if [ "$SUDO" != none ] && command -v apt-get >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
  else
    echo "WARNING: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get)." >&2
    echo "         Run 'apt-get install -y chromium' as root; until then the browser tests in tests/test_docs.py fail." >&2
  fi
fi
end

begin "nbdev_test (nbs/)"
.venv/bin/nbdev_test --path nbs --n_workers 1 --timing
end

begin "wheel: fresh install, smoke run, predict"
bash tools/wheel_test.sh
end

begin "pytest (tests/)"
.venv/bin/python -m pytest -q -rA tests
end

begin "widgets with ipywidgets 7 (Colab's)"
# A second small environment: ipywidgets 7.x installed over the main one's packages (a .pth file puts .venv's
# site-packages and this repository after its own), so the widget tests run against both major versions.
if [ ! -x .venv-w7/bin/python ]; then "${PYTHON:-python3}" -m venv .venv-w7; fi
SITE=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
SITE7=$(.venv-w7/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
printf '%s\n%s\n' "$PWD" "$SITE" > "$SITE7/semicontrast-main-env.pth"
.venv-w7/bin/python -m pip install --disable-pip-version-check --progress-bar off -q "ipywidgets>=7.6,<8"
.venv-w7/bin/python -m pytest -q -rA -p no:cacheprovider tests/test_widgets.py
end
