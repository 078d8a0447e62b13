"""nnU-Net v2's `ignore` label (sparse annotation): its voxels are left out of the loss and the metrics, and it is not a
class of the run (dataset.json `labels`: {..., "ignore": K}, K the largest id)."""
import json
from pathlib import Path
import nibabel as nib
import numpy as np
import pytest
from semicontrast.cli import main
from semicontrast.core import DataError, IGNORE_INDEX
from semicontrast.data import load_dataset, synthetic_phantoms
from semicontrast.metrics import volume_metrics


def _nnunet(root:Path, labels:dict, n=8) -> Path:
    "An nnU-Net raw folder of phantoms (classes 0-2) in which a band of rows of every label is marked with the id of 'ignore'."
    (root/'imagesTr').mkdir(parents=True); (root/'labelsTr').mkdir()
    for i, c in enumerate(synthetic_phantoms(n=n, shape=(6, 32, 32), n_classes=3, seed=2)):
        lab = c.label.copy()
        if 'ignore' in labels: lab[:, 10:14, :] = labels['ignore']
        nib.save(nib.Nifti1Image(c.image.transpose(2, 1, 0).astype(np.float32), np.eye(4)), str(root/'imagesTr'/f'ph_{i:03d}_0000.nii.gz'))
        nib.save(nib.Nifti1Image(lab.transpose(2, 1, 0).astype(np.uint8), np.eye(4)), str(root/'labelsTr'/f'ph_{i:03d}.nii.gz'))
    (root/'dataset.json').write_text(json.dumps({'channel_names': {'0': 'MRI'}, 'labels': labels, 'numTraining': n, 'file_ending': '.nii.gz'}))
    return root


def test_ignore_voxels_are_read_as_no_label(tmp_path):
    root = _nnunet(tmp_path/'d', {'background': 0, 'a': 1, 'b': 2, 'ignore': 3})
    cases, info = load_dataset(root)
    assert info.class_names == ['background', 'a', 'b'] and info.n_classes == 3
    assert all((c.label[:, 10:14, :] == IGNORE_INDEX).all() and c.label[:, :10].max() < 3 for c in cases)
    bad = _nnunet(tmp_path/'bad', {'background': 0, 'ignore': 1, 'a': 2})   # nnU-Net v2 wants 'ignore' last
    with pytest.raises(DataError, match="largest label id"): load_dataset(bad)


def test_metrics_leave_ignore_voxels_out():
    "Dice with ignore voxels equals Dice computed by hand on the labelled voxels only, whatever is predicted there."
    rng = np.random.default_rng(0)
    target = rng.integers(0, 3, (4, 12, 12)).astype(np.uint8)
    pred = np.where(rng.random(target.shape) < 0.7, target, rng.integers(0, 3, target.shape)).astype(np.uint8)
    known = rng.random(target.shape) < 0.6
    t = np.where(known, target, IGNORE_INDEX).astype(np.uint8)
    got = volume_metrics(pred, t, (1.0, 1.0, 1.0), 3)
    for c in (1, 2):
        p, g = (pred == c) & known, (target == c) & known
        assert got[c]['dice'] == pytest.approx(2 * (p & g).sum() / (p.sum() + g.sum()))
    other = pred.copy(); other[~known] = (other[~known] + 1) % 3   # change every prediction on the ignored voxels
    assert volume_metrics(other, t, (1.0, 1.0, 1.0), 3)[1]['dice'] == pytest.approx(got[1]['dice'])


def test_a_run_trains_with_no_ignore_class(tmp_path, capsys):
    root = _nnunet(tmp_path/'d', {'background': 0, 'a': 1, 'b': 2, 'ignore': 3})
    assert main(['run', 'supervised', '--data', str(root), '--smoke', '--quiet', '--out', str(tmp_path/'run')]) == 0
    card = json.loads((tmp_path/'run'/'result.json').read_text())
    assert card['dataset']['class_names'] == ['background', 'a', 'b']
    assert set(card['per_class']) == {'a', 'b'} and all(np.isfinite(card['per_class'][k]['dice']['mean']) for k in ('a', 'b'))
