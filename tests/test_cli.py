"The `semicontrast` console script end to end: result card, report, split reuse, determinism and user errors."
import json, os, shutil, subprocess, sys
from pathlib import Path
import pytest

from semicontrast.data import hippocampus_path

# the console script installed next to this Python (pip install -e . puts it there)
_SCRIPT = Path(sys.executable).parent/'semicontrast'
assert _SCRIPT.exists(), f"console script {_SCRIPT} missing: install the package with `pip install -e .`"
EXE = [str(_SCRIPT)]
ENV = dict(os.environ, OMP_NUM_THREADS='2')


def run(*args, cwd=None):
    return subprocess.run(EXE + list(args), capture_output=True, text=True, env=ENV, cwd=cwd, timeout=600)


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('cli')/'run'
    r = run('run', 'supervised', '--data', 'hippocampus', '--smoke', '--seed', '3', '--quiet', '--out', str(out))
    assert r.returncode == 0, r.stderr
    return out, r


def test_smoke_run_writes_a_complete_result_card(smoke_run):
    out, r = smoke_run
    res = json.loads((out/'result.json').read_text())
    for key in ('method', 'dataset', 'seed', 'split', 'per_case', 'mean', 'std', 'per_class', 'versions', 'device',
                'timings', 'preprocessing', 'config', 'history', 'command'):
        assert key in res, key
    assert res['method'] == 'supervised' and res['seed'] == 3 and res['dataset']['name'] == 'hippocampus'
    sp = res['split']
    parts = [set(sp[p]) for p in ('labelled', 'unlabelled', 'valid', 'test')]
    assert sum(len(p) for p in parts) == len(set().union(*parts)) == res['dataset']['n_cases']  # disjoint, complete
    assert len(sp['labelled']) == 2 and len(sp['test']) == 2
    assert set(res['per_case']) == set(sp['test'])
    for cid, per_class in res['per_case'].items():
        assert set(per_class) == {'anterior', 'posterior'}
        for m in per_class.values():
            assert 0.0 <= m['dice'] <= 1.0 and m['hd95'] >= 0.0 and m['asd'] >= 0.0
    assert set(res['mean']) == {'dice', 'hd95', 'asd'}
    assert res['versions']['torch'] and res['device']['type'] == 'cpu'
    assert res['timings']['total_s'] > 0 and res['preprocessing']['spatial'] == 'pad'
    # the printed summary table and the files
    assert 'anterior' in r.stdout and 'mean' in r.stdout and 'Dice' in r.stdout
    assert {'result.json', 'report.html', 'split.json', 'model.pth'} <= {p.name for p in out.iterdir()}
    page = (out/'report.html').read_text()
    assert 'plotly-graph-div' in page and '<script src="http' not in page
    for cid in sp['test']: assert cid in page


def test_split_file_reuse_and_determinism(smoke_run, tmp_path):
    out, _ = smoke_run
    r = run('run', 'supervised', '--data', 'hippocampus', '--smoke', '--seed', '3', '--quiet',
            '--split', str(out/'split.json'), '--out', str(tmp_path/'again'))
    assert r.returncode == 0, r.stderr
    a = json.loads((out/'result.json').read_text()); b = json.loads((tmp_path/'again'/'result.json').read_text())
    assert a['split'] == b['split']
    assert a['per_case'] == b['per_case']  # same seed, same settings, CPU: identical metrics


def test_refuses_to_overwrite_a_result(smoke_run):
    out, _ = smoke_run
    before = (out/'result.json').read_text()
    r = run('run', 'supervised', '--data', 'hippocampus', '--smoke', '--out', str(out))
    assert r.returncode == 2 and 'already holds a result' in r.stderr and '--overwrite' in r.stderr
    assert (out/'result.json').read_text() == before


def test_msd_folder_by_path_is_detected(tmp_path):
    src = hippocampus_path()
    task = tmp_path/'Task04_Tiny'
    for sub in ('imagesTr', 'labelsTr'):
        (task/sub).mkdir(parents=True)
        for f in sorted((src/sub).glob('*.nii.gz'))[:6]: shutil.copy(f, task/sub/f.name)
    r = run('run', 'supervised', '--data', str(task), '--smoke', '--quiet', '--out', str(tmp_path/'out'))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path/'out'/'result.json').read_text())
    assert res['dataset']['format'] == 'msd' and res['dataset']['n_cases'] == 6


@pytest.mark.parametrize('args,needle', [
    (['run', 'supervised', '--data', '/no/such/folder'], '/no/such/folder'),
    (['run', 'nosuchmethod', '--data', 'phantom'], 'nosuchmethod'),
    (['run', 'supervised', '--data', 'phantom', '--labeled', '500'], 'labelled'),
    (['run', 'supervised', '--data', 'phantom', '--epochs', '0'], '--epochs'),
])
def test_user_errors_exit_2_with_one_line(tmp_path, args, needle):
    r = run(*args, '--smoke', '--out', str(tmp_path/'o'))
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = [l for l in r.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith('semicontrast: error:'), r.stderr
    assert needle in lines[0] and 'Traceback' not in r.stderr
    assert not (tmp_path/'o'/'result.json').exists()


def test_bad_split_file_names_the_file(tmp_path):
    bad = tmp_path/'split.json'; bad.write_text('{"labelled": ["nope"]')
    r = run('run', 'supervised', '--data', 'phantom', '--smoke', '--split', str(bad), '--out', str(tmp_path/'o'))
    assert r.returncode == 2 and 'split.json' in r.stderr and 'Traceback' not in r.stderr


def test_ct_msd_task_is_windowed_and_the_window_recorded(tmp_path):
    "An MSD task whose dataset.json says CT is clipped to the HU window and scaled to [0, 1]; the card records it."
    import numpy as np, nibabel as nib
    task = tmp_path/'Task09_TinyCT'
    (task/'imagesTr').mkdir(parents=True); (task/'labelsTr').mkdir()
    g = np.random.default_rng(0)
    training = []
    for i in range(6):
        lab = np.zeros((32, 32, 6), np.uint8); lab[8 + i:20 + i, 10:22, 1:5] = 1
        img = np.where(lab > 0, 60.0, -1000.0) + g.normal(0, 20, lab.shape)   # organ ~60 HU in air
        aff = np.diag([0.8, 0.8, 2.5, 1.0])
        nib.save(nib.Nifti1Image(img.astype(np.int16), aff), task/'imagesTr'/f'ct_{i:03d}.nii.gz')
        nib.save(nib.Nifti1Image(lab, aff), task/'labelsTr'/f'ct_{i:03d}.nii.gz')
        training.append({'image': f'./imagesTr/ct_{i:03d}.nii.gz', 'label': f'./labelsTr/ct_{i:03d}.nii.gz'})
    (task/'dataset.json').write_text(json.dumps({'name': 'TinyCT', 'modality': {'0': 'CT'},
                                                 'labels': {'0': 'background', '1': 'organ'}, 'training': training}))
    r = run('run', 'supervised', '--data', str(task), '--smoke', '--quiet', '--out', str(tmp_path/'out'))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path/'out'/'result.json').read_text())
    assert res['preprocessing']['intensity'] == 'window' and res['preprocessing']['window'] == [-160.0, 240.0]
    assert set(next(iter(res['per_case'].values()))) == {'organ'}
    assert res['per_case'][res['split']['test'][0]]['organ']['hd95'] >= 0.0
