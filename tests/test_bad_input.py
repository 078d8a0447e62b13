"""Bad input through the command line: every row of the table "Bad input -> what you get" (nbs/00a_data.ipynb).

Each case writes a tiny broken dataset (or split file, or argument) in `tmp_path`, calls `semicontrast.cli.main` in
this process and checks the three promises: exit status 2, a one-line message on stderr that names the offending file
(or argument) and says what to do, and no result in `--out` (no result.json, no report.html, not even the folder).
The tests after the table check that a failed or interrupted run never replaces a previous complete result, and that
the table in the docs and the cases here stay in step.
"""
import json, re, shutil
from pathlib import Path
import numpy as np
import pytest
import h5py
import nibabel as nib

import semicontrast.cli as cli
from semicontrast.cli import main
from semicontrast.method import RunContext

ROOT = Path(__file__).resolve().parent.parent
SHAPE = (16, 16, 4)   # (X, Y, Z) of every tiny volume


# ---------------------------------------------------------------- tiny datasets
def nii(path, arr, affine=None):
    nib.save(nib.Nifti1Image(np.asarray(arr), np.eye(4) if affine is None else affine), str(path))
    return path

def arrays(i, shape=SHAPE):
    rng = np.random.default_rng(i)
    lbl = np.zeros(shape, np.uint8); lbl[4:11, 3:10, 1:3] = 1; lbl[6:9, 5:8, 1:3] = 2
    img = (lbl * 1.0 + rng.normal(0, 0.3, shape)).astype(np.float32)
    return img, lbl

def msd(tmp, n=6, with_json=True) -> Path:
    "An MSD task folder Task99_Tiny with n cases case_000 ... (3 classes, one MRI channel)."
    root = tmp/'Task99_Tiny'
    (root/'imagesTr').mkdir(parents=True); (root/'labelsTr').mkdir()
    for i in range(n):
        img, lbl = arrays(i)
        nii(root/'imagesTr'/f'case_{i:03d}.nii.gz', img); nii(root/'labelsTr'/f'case_{i:03d}.nii.gz', lbl)
    if with_json:
        (root/'dataset.json').write_text(json.dumps({
            'name': 'Tiny', 'modality': {'0': 'MRI'}, 'labels': {'0': 'background', '1': 'a', '2': 'b'},
            'training': [{'image': f'./imagesTr/case_{i:03d}.nii.gz', 'label': f'./labelsTr/case_{i:03d}.nii.gz'} for i in range(n)]}))
    return root

def la(tmp, n=6, label=True) -> Path:
    "A left atrium (UA-MT h5) folder: <case>/mri_norm2.h5 with 'image' and 'label'."
    root = tmp/'LA'
    for i in range(n):
        (root/f'LA{i:03d}').mkdir(parents=True)
        img, lbl = arrays(i)
        with h5py.File(root/f'LA{i:03d}'/'mri_norm2.h5', 'w') as f:
            f['image'] = img
            if label: f['label'] = (lbl > 0).astype(np.uint8)
    return root

def truncate(p:Path, keep:float=0.6):
    b = p.read_bytes(); p.write_bytes(b[:int(len(b) * keep)])

def split_file(tmp, **parts) -> Path:
    d = dict(labelled=['case_000', 'case_001'], unlabelled=['case_002'], valid=['case_003'], test=['case_004', 'case_005'])
    d.update(parts)
    p = tmp/'split.json'; p.write_text(json.dumps(d))
    return p


# ---------------------------------------------------------------- the cases: id -> (method, build(tmp) -> (args, needles))
CASES = {}
def case(cid, method='supervised'):
    def deco(fn): CASES[cid] = (method, fn); return fn
    return deco

@case('missing-data-path')
def _(tmp): return ['--data', str(tmp/'no_such_folder')], ['no_such_folder', 'give the path']

@case('empty-folder')
def _(tmp):
    (tmp/'empty').mkdir(); return ['--data', str(tmp/'empty')], ["empty'", '--format']

@case('wrong-format')
def _(tmp): return ['--data', str(msd(tmp)), '--format', 'btcv'], ['Task99_Tiny', 'img/', 'Point to']

@case('unknown-format-name')
def _(tmp): return ['--data', str(msd(tmp)), '--format', 'dicom'], ['--format', "'dicom'", 'choose from']

@case('listed-image-missing')
def _(tmp):
    r = msd(tmp); (r/'imagesTr'/'case_005.nii.gz').unlink()
    return ['--data', str(r)], ['imagesTr/case_005.nii.gz', 'dataset.json', 'Check the path']

@case('image-without-label')
def _(tmp):
    r = msd(tmp, with_json=False); (r/'labelsTr'/'case_005.nii.gz').unlink()
    return ['--data', str(r)], ['labelsTr/case_005.nii.gz', 'Add the label']

@case('label-without-image')
def _(tmp):
    r = msd(tmp, with_json=False); nii(r/'labelsTr'/'case_099.nii.gz', arrays(0)[1])
    return ['--data', str(r)], ['labelsTr/case_099.nii.gz', 'imagesTr/case_099.nii.gz', 'Restore the image']

@case('shape-mismatch')
def _(tmp):
    r = msd(tmp); nii(r/'labelsTr'/'case_002.nii.gz', arrays(2, (16, 16, 3))[1])
    return ['--data', str(r)], ['labelsTr/case_002.nii.gz', 'imagesTr/case_002.nii.gz', 'resample']

@case('affine-mismatch')
def _(tmp):
    r = msd(tmp); aff = np.eye(4); aff[0, 3] = 5.0
    nii(r/'labelsTr'/'case_002.nii.gz', arrays(2)[1], affine=aff)
    return ['--data', str(r)], ['labelsTr/case_002.nii.gz', 'affine', 'nearest-neighbour']

@case('label-outside-declared-classes')
def _(tmp):
    r = msd(tmp); lbl = arrays(2)[1]; lbl[0, 0, 0] = 3
    nii(r/'labelsTr'/'case_002.nii.gz', lbl)
    return ['--data', str(r)], ['labelsTr/case_002.nii.gz', 'dataset.json', 'value(s) [3]']

@case('label-not-integer')
def _(tmp):
    r = msd(tmp); lbl = arrays(2)[1].astype(np.float32); lbl[5, 5, 1] = 0.5
    nii(r/'labelsTr'/'case_002.nii.gz', lbl)
    return ['--data', str(r)], ['labelsTr/case_002.nii.gz', 'nearest-neighbour']

@case('label-negative')
def _(tmp):
    r = msd(tmp); lbl = arrays(2)[1].astype(np.int16); lbl[0, 0, 0] = -1
    nii(r/'labelsTr'/'case_002.nii.gz', lbl)
    return ['--data', str(r)], ['labelsTr/case_002.nii.gz', 'negative', 'Fix the label file']

@case('nan-intensity')
def _(tmp):
    r = msd(tmp); img = arrays(2)[0]; img[3, 3, 1] = np.nan
    nii(r/'imagesTr'/'case_002.nii.gz', img)
    return ['--data', str(r)], ['imagesTr/case_002.nii.gz', 'NaN', 'nan_to_num']

@case('inf-intensity')
def _(tmp):
    r = msd(tmp); img = arrays(2)[0]; img[3, 3, 1] = np.inf
    nii(r/'imagesTr'/'case_002.nii.gz', img)
    return ['--data', str(r)], ['imagesTr/case_002.nii.gz', 'inf', 'nan_to_num']

@case('4d-image-in-msd-task')
def _(tmp):
    r = msd(tmp); img = arrays(2)[0]
    nii(r/'imagesTr'/'case_002.nii.gz', np.stack([img, img], -1))
    return ['--data', str(r)], ['imagesTr/case_002.nii.gz', '2 channels', 'dataset.json']

@case('4d-nifti-file')
def _(tmp):
    img = arrays(0)[0]; p = nii(tmp/'cine_4d.nii.gz', np.stack([img] * 3, -1))
    return ['--data', str(p)], ['cine_4d.nii.gz', '4D', '3D image was expected']

@case('channel-counts-differ')
def _(tmp):
    r = msd(tmp, with_json=False); img = arrays(2)[0]
    nii(r/'imagesTr'/'case_002.nii.gz', np.stack([img, img], -1))
    return ['--data', str(r)], ['imagesTr/case_002.nii.gz', '2 channels', '1 channel']

@case('2d-image-in-volume-dataset')
def _(tmp):
    r = msd(tmp); img, lbl = arrays(2)
    nii(r/'imagesTr'/'case_002.nii.gz', img[..., 1]); nii(r/'labelsTr'/'case_002.nii.gz', lbl[..., 1])
    return ['--data', str(r)], ['imagesTr/case_002.nii.gz', '2D', 'slice axis']

@case('complex-image-dtype')
def _(tmp):
    r = msd(tmp); nii(r/'imagesTr'/'case_002.nii.gz', arrays(2)[0].astype(np.complex64))
    return ['--data', str(r)], ['imagesTr/case_002.nii.gz', 'complex', 'magnitude']

@case('h5-image-not-numbers')
def _(tmp):
    r = la(tmp)
    with h5py.File(r/'LA002'/'mri_norm2.h5', 'r+') as f:
        del f['image']; f['image'] = np.full(SHAPE, b'abc')
    return ['--data', str(r)], ['LA002/mri_norm2.h5', 'numeric', 'Re-export']

@case('truncated-nii-gz')
def _(tmp):
    r = msd(tmp); truncate(r/'imagesTr'/'case_002.nii.gz')
    return ['--data', str(r)], ['imagesTr/case_002.nii.gz', 'truncated', 'again']

@case('truncated-h5')
def _(tmp):
    r = la(tmp); truncate(r/'LA002'/'mri_norm2.h5')
    return ['--data', str(r)], ['LA002/mri_norm2.h5', 'truncated', 'again']

@case('corrupt-nifti')
def _(tmp):
    r = msd(tmp); (r/'labelsTr'/'case_002.nii.gz').write_bytes(b'this is not a NIfTI file' * 20)
    return ['--data', str(r)], ['labelsTr/case_002.nii.gz', 'corrupt', 'again']

@case('no-labelled-cases')
def _(tmp): return ['--data', str(la(tmp, label=False))], ["LA'", 'No labelled', 'add a']

@case('labeled-zero')
def _(tmp): return ['--data', str(msd(tmp)), '--labeled', '0'], ['--labeled 0', 'at least 1']

@case('labeled-too-many')
def _(tmp): return ['--data', str(msd(tmp)), '--labeled', '5'], ['--labeled', '6 patients']

@case('unlabeled-zero-semi-supervised', method='cps')
def _(tmp): return ['--data', str(msd(tmp)), '--unlabeled', '0'], ['--unlabeled 0', 'cps', 'unlabelled']

@case('split-without-unlabelled-semi-supervised', method='ideal')
def _(tmp):
    r = msd(tmp); s = split_file(tmp, unlabelled=[], valid=['case_002', 'case_003'])
    return ['--data', str(r), '--split', str(s)], ['split.json', 'ideal', "'unlabelled'"]

@case('split-file-missing')
def _(tmp): return ['--data', str(msd(tmp)), '--split', str(tmp/'nope.json')], ['nope.json', 'Check the path']

@case('split-not-json')
def _(tmp):
    p = tmp/'split.json'; p.write_text('{"labelled": ["case_000"]')
    return ['--data', str(msd(tmp)), '--split', str(p)], ['split.json', 'not valid JSON', 'make_split']

@case('split-unknown-cases')
def _(tmp):
    return ['--data', str(msd(tmp)), '--split', str(split_file(tmp, test=['case_004', 'case_777']))], \
           ['split.json', 'case_777', 'remake the split']

@case('split-overlapping-parts')
def _(tmp):
    return ['--data', str(msd(tmp)), '--split', str(split_file(tmp, test=['case_004', 'case_000']))], \
           ['split.json', 'overlap', 'case_000']

@case('split-empty-labelled')
def _(tmp):
    return ['--data', str(msd(tmp)), '--split', str(split_file(tmp, labelled=[], unlabelled=['case_000', 'case_001', 'case_002']))], \
           ['split.json', "'labelled' is empty"]

@case('out-is-a-file')
def _(tmp):
    (tmp/'out').write_text('not a folder')
    return ['--data', str(msd(tmp))], ['--out', "out'", 'folder']

@case('unknown-method', method='nosuchmethod')
def _(tmp): return ['--data', str(msd(tmp))], ['nosuchmethod', 'supervised']


# one line, except: the layout list of detect_format, and argparse's own refusals (a usage line, then the error)
MULTI_LINE = {'empty-folder': 'semicontrast: error: Cannot tell the layout'}

def run_cli(method, args, out, capsys):
    "main(['run', ...]) in this process: (exit status, stderr). argparse's own refusals raise SystemExit(2)."
    argv = ['run', method, *args, '--smoke', '--quiet', '--device', 'cpu', '--out', str(out)]
    try: rc = main(argv)
    except SystemExit as e: rc = e.code
    return rc, capsys.readouterr().err


@pytest.mark.parametrize('cid', list(CASES))
def test_bad_input_exits_2_names_the_culprit_and_writes_nothing(cid, tmp_path, capsys):
    method, build = CASES[cid]
    args, needles = build(tmp_path)
    out = tmp_path/'out'
    before = out.read_bytes() if out.is_file() else None
    rc, err = run_cli(method, args, out, capsys)
    assert rc == 2, (rc, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert lines and 'Traceback' not in err, err
    if cid in MULTI_LINE: assert lines[0].startswith(MULTI_LINE[cid]), err
    else: assert len(lines) == 1 and lines[0].startswith('semicontrast: error:'), err
    for n in needles: assert n in err, f'{n!r} not in: {err}'
    # nothing written: no result card, no report, no output folder, no staging folder left behind
    assert not (out/'result.json').exists() and not (out/'report.html').exists()
    assert out.read_bytes() == before if before is not None else not out.exists()
    assert not [p.name for p in tmp_path.iterdir() if '.partial' in p.name]


# ---------------------------------------------------------------- a failed run never replaces a complete result
OLD = {'result.json': '{"semicontrast_result": 1, "old": true}', 'report.html': '<html>old</html>',
       'split.json': '{"old": true}', 'model.pth': 'old weights', 'notes.txt': 'my own file'}

def old_result(out:Path) -> dict:
    out.mkdir(parents=True)
    for k, v in OLD.items(): (out/k).write_text(v)
    return {p.name: p.read_bytes() for p in out.iterdir()}

def test_failed_overwrite_keeps_the_previous_result(tmp_path, capsys):
    out = tmp_path/'out'; before = old_result(out)
    r = msd(tmp_path)
    rc, err = run_cli('cps', ['--data', str(r), '--overwrite', '--labeled', '3', '--test', '1', '--valid', '2'], out, capsys)
    assert rc == 2 and 'cps' in err and 'unlabelled' in err      # found after the split is drawn, before anything is written
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    truncate(r/'imagesTr'/'case_003.nii.gz')
    rc, err = run_cli('supervised', ['--data', str(r), '--overwrite'], out, capsys)
    assert rc == 2 and 'case_003.nii.gz' in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    rc, err = run_cli('supervised', ['--data', str(r.parent/'missing')], out, capsys)   # no --overwrite: refused first
    assert rc == 2 and 'already holds a result' in err and {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize('exc, rc_expected', [(KeyboardInterrupt, 130), (RuntimeError, None)], ids=['interrupt', 'crash'])
def test_interrupted_training_keeps_the_previous_result(exc, rc_expected, tmp_path, capsys, monkeypatch):
    "IDEAL's fine-tuning stops (Ctrl-C, or a crash) after pre-training wrote encoder.pth: out keeps the old result."
    calls = []
    def fit(self, learn, stage, epochs, lr):
        calls.append(epochs)
        if len(calls) == 2: raise exc('stopped in training')
    monkeypatch.setattr(RunContext, 'fit', fit)
    out = tmp_path/'out'; before = old_result(out)
    args = ['--data', str(msd(tmp_path)), '--overwrite']
    if rc_expected is None:
        with pytest.raises(exc): run_cli('ideal', args, out, capsys)
    else:
        rc, err = run_cli('ideal', args, out, capsys)
        assert rc == rc_expected and 'interrupted' in err and str(out) in err
    assert len(calls) == 2
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before    # no encoder.pth, no new split.json
    assert not [p.name for p in tmp_path.iterdir() if '.partial' in p.name]


def test_successful_overwrite_replaces_the_whole_result(tmp_path, capsys):
    "A complete run over an old result: new card, report, split and weights; stale outputs (encoder.pth) gone; own files kept."
    out = tmp_path/'out'; old_result(out); (out/'encoder.pth').write_text('stale encoder of an earlier ideal run')
    rc, err = run_cli('supervised', ['--data', str(msd(tmp_path)), '--overwrite'], out, capsys)
    assert rc == 0, err
    res = json.loads((out/'result.json').read_text())
    assert res['method'] == 'supervised' and 'old' not in res
    assert (out/'report.html').read_text() != OLD['report.html'] and json.loads((out/'split.json').read_text())['test']
    assert not (out/'encoder.pth').exists() and (out/'notes.txt').read_text() == OLD['notes.txt']
    assert not [p.name for p in tmp_path.iterdir() if '.partial' in p.name]


# ---------------------------------------------------------------- the table in the docs and these tests stay in step
def doc_table() -> list:
    "Rows of the table 'Bad input → what you get' in nbs/00a_data.ipynb, as lists of cells."
    nb = json.loads((ROOT/'nbs'/'00a_data.ipynb').read_text())
    md = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
    sec = md.split('## Bad input → what you get', 1)
    assert len(sec) == 2, "nbs/00a_data.ipynb lost its section '## Bad input → what you get'"
    rows = [l for l in sec[1].splitlines() if l.startswith('|')]
    return [[c.strip() for c in l.strip('|').split('|')] for l in rows[2:]]

def test_docs_table_and_tests_in_step():
    rows = doc_table()
    assert rows and all(len(r) == 4 for r in rows), rows
    named = [re.findall(r'`([\w-]+)`', r[3]) for r in rows]
    assert all(named), [r for r, n in zip(rows, named) if not n]       # every row names the test that checks it
    ids = [i for n in named for i in n]
    tests = {k for k, v in globals().items() if k.startswith('test_') and callable(v)}
    unknown = [i for i in ids if i not in CASES and i not in tests]
    assert not unknown, f'the table names tests that do not exist in tests/test_bad_input.py: {unknown}'
    untabled = [c for c in CASES if c not in ids]
    assert not untabled, f'bad inputs tested here but missing from the table in nbs/00a_data.ipynb: {untabled}'
    for r, n in zip(rows, named):   # the exit status column matches what the case checks
        if all(i in CASES for i in n): assert r[2] == '2', r
