"""Two things a protocol on SSL4MIS-layout data needs. Distances are in millimetres only when the voxel size is
physical: data without one (the SSL4MIS h5 files) is scored in voxels and every place that shows a distance says so;
`--spacing` states a voxel size in mm for such data (the distances scale with it) and is refused for data whose files
carry their own. `--split lists` uses the split the dataset ships (its train / val / test lists)."""
import json
import h5py
import numpy as np
import pytest

from semicontrast.cli import main, summary_table
from semicontrast.data import synthetic_phantoms, read_acdc_h5, distance_unit


def _ssl4mis(root, n=8):
    "An SSL4MIS-layout ACDC folder of n phantom volumes (no spacing in the files, as in the real ones)."
    (root/'data').mkdir(parents=True)
    names = []
    for i, c in enumerate(synthetic_phantoms(n=n, shape=(6, 32, 32), seed=4)):
        name = f'patient{i + 1:03d}_frame01'
        with h5py.File(root/'data'/f'{name}.h5', 'w') as f:
            f['image'] = c.image; f['label'] = c.label
        names.append(name)
    (root/'train.list').write_text('\n'.join(names[:5]) + '\n')
    (root/'val.list').write_text(names[5] + '\n')
    (root/'test.list').write_text('\n'.join(names[6:]) + '\n')
    return root


def _run(tmp_path, root, out, *more):
    return main(['run', 'supervised', '--data', str(root), '--format', 'acdc_h5', '--smoke', '--quiet', '--labeled', '2',
                 '--valid', '1', '--test', '2', '--out', str(tmp_path/out)] + list(more))


def test_h5_distances_are_in_voxels_and_labelled_so(tmp_path, capsys):
    root = _ssl4mis(tmp_path/'acdc')
    assert {distance_unit(c) for c in read_acdc_h5(root)} == {'voxel'}
    assert _run(tmp_path, root, 'vox') == 0
    printed = capsys.readouterr().out
    card = json.loads((tmp_path/'vox'/'result.json').read_text())
    assert card['distance_unit'] == 'voxel' and 'HD95 voxel' in printed and 'HD95 mm' not in printed
    page = (tmp_path/'vox'/'report.html').read_text()
    assert 'HD95 (voxel)' in page and 'HD95 (mm)' not in page and 'give --spacing' in page
    # the same run with a stated voxel size: in mm, and every distance scaled by it (isotropic 2 mm: twice the voxels)
    assert _run(tmp_path, root, 'mm', '--spacing', '2,2,2') == 0
    mm = json.loads((tmp_path/'mm'/'result.json').read_text())
    assert mm['distance_unit'] == 'mm' and mm['config']['spacing'] == [2.0, 2.0, 2.0]
    assert mm['mean']['dice'] == pytest.approx(card['mean']['dice'])
    for m in ('hd95', 'asd'): assert mm['mean'][m] == pytest.approx(2 * card['mean'][m], rel=1e-6)
    assert 'HD95 mm' in summary_table(mm)


def test_spacing_is_refused_for_files_with_their_own(tmp_path, capsys):
    rc = main(['run', 'supervised', '--data', 'hippocampus', '--smoke', '--quiet', '--spacing', '1,1,1', '--out', str(tmp_path/'r')])
    err = capsys.readouterr().err
    assert rc == 2 and 'carries its own voxel size' in err and len(err.strip().splitlines()) == 1
    rc = main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--spacing', '1,0,1', '--out', str(tmp_path/'s')])
    assert rc == 2 and 'three positive voxel sizes' in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ --split lists
def test_split_lists_uses_the_datasets_own_parts(tmp_path):
    "SSL4MIS layout: test and val from their lists, the first --labeled training patients (in file order) labelled."
    root = _ssl4mis(tmp_path/'acdc')
    assert main(['run', 'supervised', '--data', str(root), '--format', 'acdc_h5', '--smoke', '--quiet', '--split', 'lists',
                 '--labeled', '2', '--out', str(tmp_path/'r')]) == 0
    card = json.loads((tmp_path/'r'/'result.json').read_text())
    lists = {p: (root/f'{p}.list').read_text().split() for p in ('train', 'val', 'test')}
    assert card['split']['labelled'] == lists['train'][:2] and card['split']['unlabelled'] == lists['train'][2:]
    assert card['split']['valid'] == lists['val'] and card['split']['test'] == lists['test']
    assert 'first --labeled patients in file order' in card['config']['split_convention']


def _la(root, n_train=6, n_test=2):
    "A UA-MT left-atrium folder: <case>/mri_norm2.h5 (image, label as (X,Y,Z)), train.list and test.list, no val.list."
    names = [f'LA{i:03d}' for i in range(n_train + n_test)]
    for i, (name, c) in enumerate(zip(names, synthetic_phantoms(n=len(names), shape=(6, 24, 24), n_classes=2, seed=5))):
        (root/name).mkdir(parents=True)
        with h5py.File(root/name/'mri_norm2.h5', 'w') as f:
            f['image'] = c.image.transpose(2, 1, 0); f['label'] = c.label.transpose(2, 1, 0)
    (root/'train.list').write_text('\n'.join(names[:n_train]) + '\n')
    (root/'test.list').write_text('\n'.join(names[n_train:]) + '\n')
    return root, names


def test_split_lists_without_a_val_list_holds_out_the_last_training_patients(tmp_path):
    root, names = _la(tmp_path/'la')
    assert main(['run', 'supervised', '--data', str(root), '--format', 'la_h5', '--smoke', '--quiet', '--split', 'lists',
                 '--labeled', '2', '--valid', '1', '--out', str(tmp_path/'r')]) == 0
    s = json.loads((tmp_path/'r'/'result.json').read_text())['split']
    assert (s['labelled'], s['unlabelled'], s['valid'], s['test']) == (names[:2], names[2:5], names[5:6], names[6:])


def test_split_lists_refuses_data_without_lists(tmp_path, capsys):
    rc = main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--split', 'lists', '--out', str(tmp_path/'r')])
    err = capsys.readouterr().err
    assert rc == 2 and "in none of the dataset's lists" in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------------------------------------------ --size
def test_size_trains_at_that_size_and_scores_in_each_volumes_geometry(tmp_path, capsys):
    "SSL4MIS's policy: slices zoomed to H x W (here not the data's 32 x 32), predictions zoomed back before scoring."
    assert main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--size', '48', '16', '--out', str(tmp_path/'r')]) == 0
    card = json.loads((tmp_path/'r'/'result.json').read_text())
    assert card['preprocessing']['size'] == [48, 16] and card['preprocessing']['spatial'] == 'resize'
    assert card['config']['input_size'] == [48, 16] and 0 <= card['mean']['dice'] <= 1
    from semicontrast.loaders import Preprocess
    from semicontrast.metrics import predict_volume
    from semicontrast.models import UNet
    import torch
    case = synthetic_phantoms(n=1, shape=(5, 40, 24), seed=0)[0]
    net = UNet(in_ch=1, n_classes=card['dataset']['n_classes'], base=card['config']['base'], depth=card['config']['depth'])
    net.load_state_dict(torch.load(tmp_path/'r'/'model.pth', weights_only=True)['state_dict'])
    pred = predict_volume(net, case, Preprocess(size=(48, 16), spatial='resize'))
    assert pred.shape == case.label.shape                   # mapped back to the volume's own (Z, H, W)
    rc = main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--size', '50', '48', '--out', str(tmp_path/'s')])
    assert rc == 2 and 'multiples of 16' in capsys.readouterr().err
