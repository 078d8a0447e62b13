"""Bring your own data: an nnU-Net v2 raw folder, a flat folder of image / label pairs and a list of path dicts all train
through `semicontrast run` like the built-in layouts, and give one-line errors for the layout's typical mistakes."""
import json, subprocess, sys
from pathlib import Path
import nibabel as nib
import numpy as np
import pytest

from semicontrast.cli import run_experiment
from semicontrast.data import synthetic_phantoms, load_dataset, detect_format

N = 8


def _phantoms():
    return synthetic_phantoms(n=N, shape=(6, 32, 32), n_classes=3, seed=1)


def _save(p, a): nib.save(nib.Nifti1Image(np.asarray(a), np.diag([1.0, 1.0, 2.5, 1.0])), str(p))


def write_nnunet(root:Path):
    (root/'imagesTr').mkdir(parents=True); (root/'labelsTr').mkdir()
    for i, c in enumerate(_phantoms()):
        _save(root/'imagesTr'/f'pt_{i:03d}_0000.nii.gz', c.image.transpose(2, 1, 0).astype(np.float32))
        _save(root/'imagesTr'/f'pt_{i:03d}_0001.nii.gz', (2 * c.image).transpose(2, 1, 0).astype(np.float32))
        _save(root/'labelsTr'/f'pt_{i:03d}.nii.gz', c.label.transpose(2, 1, 0).astype(np.uint8))
    (root/'dataset.json').write_text(json.dumps({'name': 'toy', 'channel_names': {'0': 'T1', '1': 'T1x2'},
                                                 'labels': {'background': 0, 'inner': 1, 'outer': 2}, 'numTraining': N,
                                                 'file_ending': '.nii.gz'}))
    return root


def write_pairs(root:Path):
    root.mkdir(parents=True)
    for i, c in enumerate(_phantoms()):
        _save(root/f'pt_{i:03d}.nii.gz', c.image.transpose(2, 1, 0).astype(np.float32))
        _save(root/f'pt_{i:03d}_seg.nii.gz', c.label.transpose(2, 1, 0).astype(np.uint8))
    return root


def write_datalist(root:Path):
    pairs = write_pairs(root/'files')
    (root/'list.json').write_text(json.dumps([{'image': f'files/pt_{i:03d}.nii.gz', 'label': f'files/pt_{i:03d}_seg.nii.gz'}
                                              for i in range(N)]))
    return root/'list.json'


@pytest.mark.parametrize('fmt, write', [('nnunet', write_nnunet), ('pairs', write_pairs), ('datalist', write_datalist)])
def test_own_data_trains_end_to_end(tmp_path, fmt, write):
    data = write(tmp_path/fmt)
    assert detect_format(data) == fmt
    res = run_experiment('supervised', data=str(data), smoke=True, quiet=True, out=tmp_path/'run')
    assert res['dataset']['format'] == fmt and res['dataset']['n_classes'] == 3
    assert len(res['split']['test']) >= 1 and 0 <= res['mean']['dice'] <= 1
    if fmt == 'nnunet':
        assert res['dataset']['class_names'] == ['background', 'inner', 'outer'] and res['dataset']['modality'] == 'T1, T1x2'
        cases, _ = load_dataset(data)
        assert cases[0].image.shape == (2, 6, 32, 32)                                      # both channels, in id order
        np.testing.assert_allclose(cases[0].image[1], 2 * cases[0].image[0], rtol=1e-6)


@pytest.mark.parametrize('mutate, says', [
    (lambda r: (r/'dataset.json').write_text(json.dumps({'channel_names': {'0': 'T1', '1': 'T1x2'}, 'file_ending': '.nii.gz',
                                                          'labels': {'background': 0, 'whole': [1, 2]}})), 'region-based'),
    (lambda r: (r/'dataset.json').write_text(json.dumps({'channel_names': {'0': 'T1', '1': 'T1x2'}, 'file_ending': '.png',
                                                          'labels': {'background': 0, 'a': 1}})), "file_ending '.png'"),
    (lambda r: (r/'imagesTr'/'pt_003_0001.nii.gz').unlink(), "pt_003_0001.nii.gz' is missing"),
    (lambda r: (r/'labelsTr'/'pt_002.nii.gz').unlink(), "pt_002_0000.nii.gz' has no label"),
])
def test_nnunet_mistakes_are_one_line(tmp_path, mutate, says):
    data = write_nnunet(tmp_path/'nn')
    mutate(data)
    r = subprocess.run([sys.executable, '-m', 'semicontrast.cli', 'run', 'supervised', '--data', str(data), '--smoke', '--out',
                        str(tmp_path/'run')], capture_output=True, text=True)
    assert r.returncode == 2 and 'Traceback' not in r.stderr and says in r.stderr, r.stderr[-2000:]
