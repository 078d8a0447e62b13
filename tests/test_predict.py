"""`semicontrast predict`: a model trained with the CLI segments a held-back NIfTI volume; the label map written has the
input's shape and affine, and its Dice against the label is the Dice the run's card gives for that case."""
import json, subprocess, sys
from pathlib import Path
import nibabel as nib
import numpy as np
import pytest
import torch

from semicontrast.data import synthetic_phantoms
from semicontrast.metrics import volume_metrics
from semicontrast.inference import load_model
from semicontrast.models import save_model, MODEL_FORMAT
from semicontrast.loaders import Preprocess
from semicontrast.models import UNet

CLI = [sys.executable, '-m', 'semicontrast.cli']
AFFINE = np.array([[0., 0., -1.2, 40.], [0., 0.9, 0., -12.], [0.7, 0., 0., 3.], [0., 0., 0., 1.]])


def _write_msd(root:Path, n=8):
    "An MSD task folder of phantoms (Z,Y,X arrays stored as X,Y,Z) with an oblique-free but permuted affine."
    (root/'imagesTr').mkdir(parents=True); (root/'labelsTr').mkdir()
    entries = []
    for i, c in enumerate(synthetic_phantoms(n=n, shape=(6, 36, 32), n_classes=3, seed=3)):
        name = f'case_{i:03d}.nii.gz'
        nib.save(nib.Nifti1Image(c.image.transpose(2, 1, 0).astype(np.float32), AFFINE), str(root/'imagesTr'/name))
        nib.save(nib.Nifti1Image(c.label.transpose(2, 1, 0).astype(np.uint8), AFFINE), str(root/'labelsTr'/name))
        entries.append({'image': f'./imagesTr/{name}', 'label': f'./labelsTr/{name}'})
    (root/'dataset.json').write_text(json.dumps({'name': 'phantoms', 'modality': {'0': 'MRI'},
                                                 'labels': {'0': 'background', '1': 'inner', '2': 'outer'}, 'training': entries}))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp('predict')
    _write_msd(root/'data')
    r = subprocess.run(CLI + ['run', 'supervised', '--data', str(root/'data'), '--smoke', '--quiet', '--out', str(root/'run')],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return root, json.loads((root/'run'/'result.json').read_text())


def test_predict_a_held_back_volume_matches_the_card(trained):
    root, card = trained
    cid = card['split']['test'][0]
    img = root/'data'/'imagesTr'/f'{cid}.nii.gz'
    r = subprocess.run(CLI + ['predict', '--model', str(root/'run'), '--input', str(img), '--out', str(root/'pred'), '--quiet'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    out = nib.load(str(root/'pred'/f'{cid}.nii.gz'))
    src = nib.load(str(img))
    assert out.shape == src.shape and np.allclose(out.affine, src.affine) and out.get_data_dtype() == np.uint8
    pred = np.asarray(out.dataobj).transpose(2, 1, 0)
    label = np.asarray(nib.load(str(root/'data'/'labelsTr'/f'{cid}.nii.gz')).dataobj).transpose(2, 1, 0)
    got = volume_metrics(pred, label, (1.0, 1.0, 1.0), 3)
    for c, name in ((1, 'inner'), (2, 'outer')):
        assert got[c]['dice'] == pytest.approx(card['per_case'][cid][name]['dice'], abs=1e-9)
    assert 'predicted 1 image(s)' in r.stdout


def test_predict_a_folder_and_refusals(trained):
    root, card = trained
    imgs = root/'data'/'imagesTr'
    r = subprocess.run(CLI + ['predict', '--model', str(root/'run'/'model.pth'), '--input', str(imgs), '--out', str(root/'all'), '--quiet'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(p.name for p in (root/'all').iterdir()) == sorted(p.name for p in imgs.iterdir())   # one label map per image, nothing else
    again = subprocess.run(CLI + ['predict', '--model', str(root/'run'), '--input', str(imgs), '--out', str(root/'all')],
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 2 and 'already exists' in again.stderr and 'Traceback' not in again.stderr
    bare = root/'bare.pth'
    torch.save(torch.load(root/'run'/'model.pth', weights_only=True)['state_dict'], bare)
    r2 = subprocess.run(CLI + ['predict', '--model', str(bare), '--input', str(imgs), '--out', str(root/'x')], capture_output=True, text=True)
    assert r2.returncode == 2 and 'bare state_dict' in r2.stderr and 'Traceback' not in r2.stderr


def test_run_writes_a_self_describing_model(trained):
    root, card = trained
    d = torch.load(root/'run'/'model.pth', weights_only=True)
    assert d['format'] == MODEL_FORMAT and d['method'] == 'supervised' and d['class_names'] == ['background', 'inner', 'outer']
    assert d['preprocess'] == card['preprocessing']
    net, info = load_model(root/'run')
    assert isinstance(net, UNet) and not net.training and info['seed'] == card['seed']


def test_predict_writes_class_probabilities(trained):
    "--probabilities: a float32 (X, Y, Z, K) NIfTI with the input's affine, summing to 1 over classes, whose argmax is the label map."
    root, card = trained
    cid = card['split']['test'][0]
    img = root/'data'/'imagesTr'/f'{cid}.nii.gz'
    r = subprocess.run(CLI + ['predict', '--model', str(root/'run'), '--input', str(img), '--out', str(root/'probs'), '--quiet',
                              '--probabilities'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    lab, pr = nib.load(str(root/'probs'/f'{cid}.nii.gz')), nib.load(str(root/'probs'/f'{cid}_probs.nii.gz'))
    assert pr.shape == lab.shape + (3,) and pr.get_data_dtype() == np.float32 and np.allclose(pr.affine, nib.load(str(img)).affine)
    p = np.asarray(pr.dataobj)
    assert np.allclose(p.sum(-1), 1, atol=1e-5) and (p >= 0).all()
    assert (p.argmax(-1) == np.asarray(lab.dataobj)).mean() > 0.999   # ties aside, the same decision as the label map
    r2 = subprocess.run(CLI + ['predict', '--model', str(root/'run'), '--input', str(img), '--out', str(root/'probs'), '--quiet',
                               '--probabilities'], capture_output=True, text=True, timeout=300)
    assert r2.returncode == 2 and 'already exists' in r2.stderr and '--overwrite' in r2.stderr
