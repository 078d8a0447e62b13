"""Bad input through the command line: every row of the table "Bad input -> what you get" (nbs/02j_data_load.ipynb).

Each case writes a tiny broken dataset (or split file, or argument) in `tmp_path`, calls `semicontrast.cli.main` in
this process and checks the three promises: exit status 2, a one-line message on stderr that names the offending file
(or argument) and says what to do, and no result in `--out` (no result.json, no report.html, not even the folder).
The tests after the table check that a failed or interrupted run never replaces a previous complete result, and that
the table in the docs and the cases here stay in step.
"""
import errno, gzip, json, os, platform, re, shutil, signal, subprocess, sys
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

def leftovers(root:Path) -> list:
    "What a run must never leave behind anywhere under `root`: staging folders, set-aside results, its lock."
    return sorted(str(p) for pat in ('.partial-*', '.previous-*', '.semicontrast.lock', '*.partial*') for p in root.rglob(pat))

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

@case('huge-declared-shape')
def _(tmp):
    r = msd(tmp)
    hdr = nib.Nifti1Header(); hdr.set_data_shape((4096, 4096, 1024)); hdr.set_data_dtype(np.float32); hdr['vox_offset'] = 352
    with gzip.open(r/'imagesTr'/'case_002.nii.gz', 'wb') as f: f.write(hdr.binaryblock + b'\0' * 1004)   # 64 GiB declared, 1 kB stored
    return ['--data', str(r)], ['imagesTr/case_002.nii.gz', '(4096, 4096, 1024)', 'SEMICONTRAST_MAX_IMAGE_GB']

@case('nan-voxel-size')
def _(tmp):
    r = msd(tmp); f = r/'imagesTr'/'case_002.nii.gz'
    raw = bytearray(gzip.decompress(f.read_bytes())); raw[80:84] = np.float32(np.nan).tobytes()   # pixdim[1] = NaN
    f.write_bytes(gzip.compress(bytes(raw)))
    return ['--data', str(r)], ['imagesTr/case_002.nii.gz', 'voxel sizes', 'Fix the header']

def _json_with(tmp, **changes):
    r = msd(tmp); d = json.loads((r/'dataset.json').read_text()); d.update(changes)
    (r/'dataset.json').write_text(json.dumps(d)); return r

@case('labels-region-style')
def _(tmp): return ['--data', str(_json_with(tmp, labels={'background': 0, 'a': 1, 'whole': [1, 2]}))], ['dataset.json', 'Region-based']

@case('labels-empty')
def _(tmp): return ['--data', str(_json_with(tmp, labels={}))], ['dataset.json', "'labels' is {}"]

@case('labels-mixed-types')
def _(tmp): return ['--data', str(_json_with(tmp, labels={'0': 'background', 'a': 1, '2': 'b'}))], ['dataset.json', 'neither id -> name']

@case('training-image-null')
def _(tmp):
    r = msd(tmp); d = json.loads((r/'dataset.json').read_text()); d['training'][2]['image'] = None
    (r/'dataset.json').write_text(json.dumps(d)); return ['--data', str(r)], ['dataset.json', '"image": null', 'pair of strings']

@case('seed-negative')
def _(tmp): return ['--data', str(msd(tmp)), '--seed', '-1'], ['--seed -1', '0 or more']

@case('base-negative')
def _(tmp): return ['--data', str(msd(tmp)), '--base', '-4'], ['--base -4', '1 or more']

@case('bs-zero')
def _(tmp): return ['--data', str(msd(tmp)), '--bs', '0'], ['--bs 0', '1 or more']

@case('lr-negative')
def _(tmp): return ['--data', str(msd(tmp)), '--lr', '-0.003'], ['--lr -0.003', 'positive learning rate']

@case('device-not-on-this-machine')
def _(tmp): return ['--data', str(msd(tmp)), '--device', 'cuda:99'], ['--device cuda:99', 'CUDA GPU']

@case('data-not-a-regular-file')
def _(tmp): return ['--data', '/dev/null'], ["'/dev/null'", 'neither a folder nor a regular file']

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
    argv = ['run', method, *args, '--smoke', '--quiet', *([] if '--device' in args else ['--device', 'cpu']), '--out', str(out)]
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
    assert not leftovers(tmp_path)


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
    assert not leftovers(tmp_path)


def test_successful_overwrite_replaces_the_whole_result(tmp_path, capsys):
    "A complete run over an old result: new card, report, split and weights; stale outputs (encoder.pth) gone; own files kept."
    out = tmp_path/'out'; old_result(out); (out/'encoder.pth').write_text('stale encoder of an earlier ideal run')
    rc, err = run_cli('supervised', ['--data', str(msd(tmp_path)), '--overwrite'], out, capsys)
    assert rc == 0, err
    res = json.loads((out/'result.json').read_text())
    assert res['method'] == 'supervised' and 'old' not in res
    assert (out/'report.html').read_text() != OLD['report.html'] and json.loads((out/'split.json').read_text())['test']
    assert not (out/'encoder.pth').exists() and (out/'notes.txt').read_text() == OLD['notes.txt']
    assert not leftovers(tmp_path)


# ---------------------------------------------------------------- publishing, locks, signals, resume identity
def snapshot(out:Path) -> dict:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob('*')) if p.is_file()}

def test_users_files_are_not_replaced_without_overwrite(tmp_path, capsys):
    "Files named like a run's outputs (no result.json) are the user's: refused, named, untouched."
    out = tmp_path/'out'; out.mkdir(); (out/'model.pth').write_text('my own weights'); (out/'split.json').write_text('{"mine": 1}')
    before = snapshot(out)
    rc, err = run_cli('supervised', ['--data', str(msd(tmp_path))], out, capsys)
    assert rc == 2 and 'split.json, model.pth' in err and '--overwrite' in err and len(err.strip().splitlines()) == 1
    assert snapshot(out) == before and not leftovers(tmp_path)


def test_a_second_run_into_the_same_out_is_refused_while_the_first_runs(tmp_path, capsys):
    "A live run's lock (this very process holds it here) refuses a second run naming the first; a dead run's lock is taken over."
    out = tmp_path/'out'; out.mkdir()
    lock = out/'.semicontrast.lock'
    lock.write_text(json.dumps(dict(pid=os.getpid(), host=platform.node(), started='2026-12-04T02:00:00', command='semicontrast run ideal ...')))
    rc, err = run_cli('supervised', ['--data', str(msd(tmp_path))], out, capsys)
    assert rc == 2 and 'in use by another run' in err and f'process {os.getpid()}' in err and 'run ideal' in err
    assert lock.exists() and not (out/'result.json').exists()          # the first run's lock is left to it
    dead = subprocess.Popen([sys.executable, '-c', 'pass']); dead.wait()  # a process id that no longer runs
    lock.write_text(json.dumps(dict(pid=dead.pid, host=platform.node(), started='2026-12-04T02:00:00', command='killed')))
    rc, err = run_cli('supervised', ['--data', str(tmp_path/'Task99_Tiny')], out, capsys)
    assert rc == 0, err
    assert (out/'result.json').exists() and not leftovers(tmp_path)


def test_publishing_that_fails_half_way_keeps_the_earlier_result(tmp_path, capsys, monkeypatch):
    "--out on another file system: os.replace raises EXDEV for the second new file; the earlier result comes back whole."
    out = tmp_path/'out'; old_result(out); before = snapshot(out)
    real, moved = os.replace, []
    def replace(src, dst):
        if Path(src).parent.name.startswith('.partial-') and Path(dst).parent == out:   # publishing a new output into out
            moved.append(src)
            if len(moved) == 2: raise OSError(errno.EXDEV, 'Invalid cross-device link', str(src))
        return real(src, dst)
    monkeypatch.setattr(cli.os, 'replace', replace)
    rc, err = run_cli('supervised', ['--data', str(msd(tmp_path)), '--overwrite'], out, capsys)
    assert rc == 2 and 'cannot publish the run into' in err and str(out) in err, err
    after = snapshot(out)
    assert [k for k in after if k.startswith('checkpoints/')]             # the trained state stays: --resume publishes again
    assert len(moved) == 2 and {k: v for k, v in after.items() if not k.startswith('checkpoints/')} == before
    assert not leftovers(tmp_path)


KILL_IN_PUBLISH = """
import os, signal, sys
import semicontrast.cli as cli
real, n = os.replace, [0]
def replace(src, dst):
    if os.path.basename(os.path.dirname(str(src))).startswith('.partial-') and os.path.dirname(str(dst)) == sys.argv[-1]:
        n[0] += 1
        if n[0] == 3: os.kill(os.getpid(), signal.SIGKILL)   # dies with three new files moved in, the new card not yet
    return real(src, dst)
cli.os.replace = replace
sys.exit(cli.main(sys.argv[1:]))
"""

def test_kill_9_while_publishing_then_the_next_run_puts_the_earlier_result_back(tmp_path, capsys):
    out = tmp_path/'out'; before = old_result(out)
    data = msd(tmp_path)
    r = subprocess.run([sys.executable, '-c', KILL_IN_PUBLISH, 'run', 'supervised', '--data', str(data), '--smoke', '--quiet',
                        '--device', 'cpu', '--overwrite', '--out', str(out)], capture_output=True, text=True, timeout=600)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert not (out/'result.json').exists() and list(out.glob('.previous-*'))   # the earlier result waits aside, whole
    rc, err = run_cli('supervised', ['--data', str(tmp_path/'missing')], out, capsys)   # any next run into out, even a failing one
    assert rc == 2 and 'put back the earlier result' in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name != 'checkpoints'} == before and not leftovers(tmp_path)
    assert (out/'checkpoints').is_dir()   # the killed run's trained state stays: --resume would publish it


def test_sigterm_is_handled_like_ctrl_c(tmp_path, capsys, monkeypatch):
    handler0 = signal.getsignal(signal.SIGTERM)
    def fit(self, learn, stage, epochs, lr): os.kill(os.getpid(), signal.SIGTERM)
    monkeypatch.setattr(RunContext, 'fit', fit)
    out = tmp_path/'out'; before = old_result(out)
    rc, err = run_cli('supervised', ['--data', str(msd(tmp_path)), '--overwrite'], out, capsys)
    assert rc == 143 and 'terminated (SIGTERM)' in err and 'Traceback' not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and not leftovers(tmp_path)
    assert signal.getsignal(signal.SIGTERM) is handler0   # the caller's handler is restored


def test_resume_with_other_data_is_refused_naming_the_difference(tmp_path, capsys, monkeypatch):
    "Checkpoints record the data (content) and the split: --resume on a changed dataset is refused, and the checkpoints stay."
    import semicontrast.checkpoint as ck
    real = ck.Checkpoint.after_epoch
    def after_epoch(self):
        real(self)
        raise KeyboardInterrupt   # stop after the first checkpoint
    monkeypatch.setattr(ck.Checkpoint, 'after_epoch', after_epoch)
    data, out = msd(tmp_path), tmp_path/'out'
    rc, err = run_cli('supervised', ['--data', str(data)], out, capsys)
    assert rc == 130 and (out/'checkpoints'/'train.pth').exists()
    monkeypatch.setattr(ck.Checkpoint, 'after_epoch', real)
    img = nib.load(str(data/'imagesTr'/'case_002.nii.gz'))   # same ids, same shapes: one image changed
    nii(data/'imagesTr'/'case_002.nii.gz', np.asarray(img.dataobj) + 1.0)
    rc, err = run_cli('supervised', ['--data', str(data), '--resume'], out, capsys)
    assert rc == 2 and 'data_content' in err and 'other settings' in err and len(err.strip().splitlines()) == 1, err
    assert (out/'checkpoints'/'train.pth').exists() and not (out/'result.json').exists() and not leftovers(tmp_path)


@pytest.mark.parametrize('code, needle', [(errno.EROFS, 'read-only'), (errno.ENOSPC, 'disk is full'), (errno.EACCES, 'can write to')])
def test_os_errors_while_writing_are_one_line(code, needle, tmp_path, capsys, monkeypatch):
    "A read-only or full disk, or no permission, where the run writes: one line naming the place and the fix, the earlier result kept."
    real = cli.tempfile.mkdtemp
    def mkdtemp(*a, **k):
        if k.get('prefix') == '.partial-': raise OSError(code, os.strerror(code))
        return real(*a, **k)
    monkeypatch.setattr(cli.tempfile, 'mkdtemp', mkdtemp)
    out = tmp_path/'out'; before = old_result(out)
    rc, err = run_cli('supervised', ['--data', str(msd(tmp_path)), '--overwrite'], out, capsys)
    assert rc == 2 and needle in err and str(out) in err and len(err.strip().splitlines()) == 1, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before and not leftovers(tmp_path)


def test_declared_but_absent_class_is_warned_and_left_out_of_the_mean(tmp_path, capsys):
    "dataset.json declares a class 'c' that no label holds: a warning at load, 'c' shown apart, the mean over a and b only."
    r = msd(tmp_path)
    d = json.loads((r/'dataset.json').read_text()); d['labels']['3'] = 'c'; (r/'dataset.json').write_text(json.dumps(d))
    out = tmp_path/'out'
    with pytest.warns(UserWarning, match=r"declares the class\(es\) 3 \(c\), but no label"):
        rc, err = run_cli('supervised', ['--data', str(r)], out, capsys)
    assert rc == 0, err
    res = json.loads((out/'result.json').read_text())
    assert res['absent_classes'] == ['c'] and res['per_class']['c']['absent'] is True
    per_case = [np.mean([v[k]['dice'] for k in ('a', 'b')]) for v in res['per_case'].values()]
    assert res['mean']['dice'] == pytest.approx(float(np.mean(per_case)))   # the headline is over the classes present
    assert 'c (absent: not in the mean)' in cli.summary_table(res)


def test_orientation_is_one_for_every_case_and_oblique_is_warned(tmp_path):
    "The same volume stored RAS and LPS (flipped arrays, flipped affine) loads as the same array; an oblique affine warns."
    from semicontrast.data import read_nifti
    img, lbl = arrays(0)
    ras = np.diag([1.5, 1.5, 3.0, 1.0])
    lps = ras.copy(); lps[0, 0] = lps[1, 1] = -1.5; lps[0, 3], lps[1, 3] = 1.5 * (SHAPE[0] - 1), 1.5 * (SHAPE[1] - 1)  # same world grid
    a = read_nifti(nii(tmp_path/'ras.nii.gz', img, ras), nii(tmp_path/'ras_seg.nii.gz', lbl, ras))
    b = read_nifti(nii(tmp_path/'lps.nii.gz', img[::-1, ::-1], lps), nii(tmp_path/'lps_seg.nii.gz', lbl[::-1, ::-1], lps))
    assert (a.meta['orientation'], b.meta['orientation']) == ('RAS', 'LPS')
    assert np.array_equal(a.image, b.image) and np.array_equal(a.label, b.label) and a.spacing == b.spacing
    assert np.allclose(a.meta['affine'], b.meta['affine'])
    obl = ras.copy(); c, s_ = np.cos(np.radians(10)), np.sin(np.radians(10)); obl[:2, :2] = 1.5 * np.array([[c, -s_], [s_, c]])
    with pytest.warns(UserWarning, match='oblique affine'):
        read_nifti(nii(tmp_path/'obl.nii.gz', img, obl))


def test_monuseg_vertex_that_is_not_finite_is_refused(tmp_path):
    "A NaN vertex would make skimage drop the whole polygon (a nucleus trained as background): refused, naming the region."
    from semicontrast.data import parse_monuseg_xml
    xml = ('<Annotations MicronsPerPixel="0.25"><Annotation><Regions><Region Id="7"><Vertices><Vertex X="1" Y="1"/>'
           '<Vertex X="nan" Y="4"/><Vertex X="5" Y="5"/></Vertices></Region></Regions></Annotation></Annotations>')
    (tmp_path/'a.xml').write_text(xml)
    with pytest.raises(cli.DataError, match=r"Region 7 has a vertex at X/Y \[nan, 4.0\]"): parse_monuseg_xml(tmp_path/'a.xml')


def test_imports_under_python_w_error():
    "Warnings that third-party packages give at import time must not stop `python -W error` from importing the library."
    r = subprocess.run([sys.executable, '-W', 'error', '-c', 'import semicontrast.cli, semicontrast.learner, semicontrast.inference'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]


def test_pool_guard_compares_content_not_paths(tmp_path, capsys):
    "MixCL's --pool: a copy of the evaluated dataset under another name would put its test patients into pre-training."
    data = msd(tmp_path)
    shutil.copytree(data, tmp_path/'copy_of_it')
    rc, err = run_cli('mixcl', ['--data', str(data), '--pool', str(tmp_path/'copy_of_it')], tmp_path/'out', capsys)
    assert rc == 2 and 'copy_of_it' in err and 'test patients would be pre-trained on' in err and ' = case_' in err, err
    assert not (tmp_path/'out').exists() and not leftovers(tmp_path)


# ---------------------------------------------------------------- the table in the docs and these tests stay in step
def doc_table() -> list:
    "Rows of the table 'Bad input → what you get' in nbs/02j_data_load.ipynb, as lists of cells."
    nb = json.loads((ROOT/'nbs'/'02j_data_load.ipynb').read_text())
    md = '\n'.join(''.join(c['source']) for c in nb['cells'] if c['cell_type'] == 'markdown')
    sec = md.split('## Bad input → what you get', 1)
    assert len(sec) == 2, "nbs/02j_data_load.ipynb lost its section '## Bad input → what you get'"
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
    assert not untabled, f'bad inputs tested here but missing from the table in nbs/02j_data_load.ipynb: {untabled}'
    for r, n in zip(rows, named):   # the exit status column matches what the case checks
        if all(i in CASES for i in n): assert r[2] == '2', r
