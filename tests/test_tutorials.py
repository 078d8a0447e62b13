"Every tutorial runs top to bottom in smoke mode (SEMICONTRAST_SMOKE=1), as a reader would run it, and shows its figures."
import os
from pathlib import Path
import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = sorted((Path(__file__).resolve().parents[1]/'tutorials').glob('*.ipynb'))
# lines a tutorial must print in smoke mode: the parts that run on data beside the embedded set
MUST_PRINT = {'02_mscs': ['MoNuSeg (monuseg2018_sample): ']}   # the shared MoNuSeg sample (tests/test_data.py requires it too)


def test_there_are_tutorials():
    assert [p.name for p in TUTORIALS][:1] == ['00_quickstart.ipynb']


@pytest.mark.parametrize('path', TUTORIALS, ids=[p.stem for p in TUTORIALS])
def test_tutorial_executes_in_smoke_mode(path, monkeypatch):
    monkeypatch.setenv('SEMICONTRAST_SMOKE', '1')
    monkeypatch.setenv('OMP_NUM_THREADS', '2')
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name='python3', resources={'metadata': {'path': str(path.parent)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]
    assert not [o for o in outputs if o.get('output_type') == 'error']
    text = ''.join(o.get('text', '') for o in outputs if o.get('output_type') == 'stream')
    assert 'run size: smoke' in text
    for line in MUST_PRINT.get(path.stem, []): assert line in text, f'{path.name} did not print {line!r}'
    plotly = [o for o in outputs if 'application/vnd.plotly.v1+json' in o.get('data', {})]
    assert len(plotly) >= 3, 'the tutorial should display its plotly figures'
