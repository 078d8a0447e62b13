"Every tutorial runs top to bottom in smoke mode (SEMICONTRAST_SMOKE=1), as a reader would run it, and shows its figures."
import os
from pathlib import Path
import nbformat
import pytest
from nbclient import NotebookClient
from test_data import MONUSEG   # the project's shared MoNuSeg sample, wherever this clone is (test_data requires it)

TUTORIALS = sorted((Path(__file__).resolve().parents[1]/'tutorials').glob('*.ipynb'))
# lines a tutorial must print in smoke mode: the parts that run on data beside the embedded set
MUST_PRINT = {'02_mscs': ['MoNuSeg (monuseg2018_sample): ']}   # the shared MoNuSeg sample (tests/test_data.py requires it too)


def test_there_are_tutorials():
    assert [p.name for p in TUTORIALS][:1] == ['00_quickstart.ipynb']


@pytest.mark.parametrize('path', TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_executes_in_smoke_mode(path, monkeypatch):
    monkeypatch.setenv('SEMICONTRAST_SMOKE', '1')
    monkeypatch.setenv('OMP_NUM_THREADS', '2')
    if path.stem in MUST_PRINT:   # the notebook reads MONUSEG_PATH, as a user sets it
        monkeypatch.setenv('MONUSEG_PATH', str(MONUSEG))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]
    assert not [o for o in outputs if o.get('output_type') == 'error']
    text = ''.join(o.get('text', '') for o in outputs if o.get('output_type') == 'stream')
    assert 'run size: smoke' in text
    for line in MUST_PRINT.get(path.stem, []): assert line in text, f'{path.name} did not print {line!r}'
    plotly = [o for o in outputs if 'application/vnd.plotly.v1+json' in o.get('data', {})]
    assert len(plotly) >= 3, 'the tutorial should display its plotly figures'


def _requirements() -> set:
    "Distribution names settings.ini installs for a notebook user: requirements + notebook_requirements (lower-cased)."
    import configparser, re
    cp = configparser.ConfigParser(interpolation=None); cp.read(Path(__file__).resolve().parents[1]/'settings.ini')
    reqs = cp['DEFAULT']['requirements'].split() + cp['DEFAULT']['notebook_requirements'].split()
    return {re.split(r'[<>=!~\[ ]', r)[0].lower() for r in reqs}

# import name -> distribution name, where they differ
_DIST = {'skimage': 'scikit-image', 'sklearn': 'scikit-learn', 'PIL': 'pillow', 'IPython': 'ipython'}
# what these distributions bring with them (fastai: fastprogress, fastcore; ipywidgets: ipython)
_BUNDLED = {'fastprogress': 'fastai', 'ipython': 'ipywidgets', 'pandas': 'fastai'}

@pytest.mark.parametrize('path', TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_colab_install_cell_installs_what_the_tutorial_imports(path):
    "The first code cell installs an uploaded semicontrast wheel with its notebook extra on Colab only; every import is covered by it."
    import ast, sys
    nb = nbformat.read(path, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == 'code']
    first = code[0]
    assert "if 'google.colab' in sys.modules:" in first
    assert '!pip install -q "{wheels[-1]}[notebooks]"' in first   # the wheel the user uploaded (the package is on no index)
    assert 'github.com' not in first and 'pip wheel --no-deps -w dist .' in first   # no address that does not exist; how to build one
    assert 'Restart session' in first   # says when pip replaced what the runtime had loaded
    reqs, mods = _requirements(), set()
    assert any(r == 'ipywidgets' for r in reqs)
    for src in code[1:]:
        src = '\n'.join(l for l in src.splitlines() if not l.lstrip().startswith(('!', '%')))
        for node in ast.walk(ast.parse(src)):
            if isinstance(node, ast.Import): mods |= {a.name.split('.')[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0: mods.add(node.module.split('.')[0])
    missing = []
    for m in sorted(mods - {'semicontrast', 'google'}):
        if m in sys.stdlib_module_names: continue
        dist = _DIST.get(m, m).lower()
        if dist in reqs or _BUNDLED.get(dist) in reqs: continue
        missing.append(m)
    assert not missing, f'{path.name} imports {missing}, which `semicontrast[notebooks]` does not install'
