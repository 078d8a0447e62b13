"BTCV (Synapse multi-organ CT) reader, its format detection and dataset info, CT windowing (BTCV and MSD CT), and a CLI smoke run."
import json, re
from pathlib import Path
import numpy as np
import pytest
import nibabel as nib

from semicontrast.core import DataError
from semicontrast.data import BTCV_CLASSES, read_btcv, detect_format, load_dataset, DatasetInfo

ZOOMS = (0.7, 0.75, 2.5)  # (sx, sy, sz) in the NIfTI header -> spacing (sz, sy, sx) = (2.5, 0.75, 0.7)


def save_nii(path, arr, zooms=ZOOMS):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(arr), np.diag(list(zooms) + [1.0])), str(path))
    return path


def ct_pair(num, shape=(16, 12, 4), seed=0):
    "An HU-like image (int16, -1000..1000) and a label (uint8) in NIfTI (X,Y,Z) order, with two organ blobs."
    rng = np.random.default_rng([seed, int(num)])
    X, Y, Z = shape
    lbl = np.zeros(shape, np.uint8)
    lbl[X // 8:X // 2, Y // 4:3 * Y // 4, 1:Z - 1] = 6                 # 'liver'
    lbl[5 * X // 8:7 * X // 8, Y // 4:Y // 2, :] = 1                   # 'spleen'
    img = np.full(shape, -1000.0) + rng.normal(0, 30, shape)           # air
    img[:, 1:Y - 1, :] = rng.normal(-100, 20, (X, Y - 2, Z))           # 'fat' body
    img[lbl == 6] = rng.normal(60, 15, int((lbl == 6).sum()))
    img[lbl == 1] = rng.normal(45, 15, int((lbl == 1).sum()))
    img[0, 0, 0] = 1000                                                # a 'bone' voxel
    return np.clip(np.round(img), -1024, 3071).astype(np.int16), lbl


def write_btcv(root, train=('0001', '0002', '0003'), test=('0061',), nested=True, unlabelled=(), shape=(16, 12, 4)):
    "A BTCV folder: [Training/]img/imgNNNN.nii.gz + label/labelNNNN.nii.gz (+ Testing/img). Returns {num: (img, lbl)}."
    tr = root/'Training' if nested else root
    arrays = {}
    for n in train:
        img, lbl = ct_pair(n, shape); arrays[n] = (img, lbl)
        save_nii(tr/'img'/f'img{n}.nii.gz', img)
        if n not in unlabelled: save_nii(tr/'label'/f'label{n}.nii.gz', lbl)
    for n in (test if nested else ()):
        img, _ = ct_pair(n, shape); arrays[n] = (img, None)
        save_nii(root/'Testing'/'img'/f'img{n}.nii.gz', img)
    return arrays


# ---------------------------------------------------------------- reading
def test_round_trip_values_orientation_spacing(tmp_path):
    arrays = write_btcv(tmp_path, nested=False)
    cases = read_btcv(tmp_path)
    assert [c.id for c in cases] == ['btcv_0001', 'btcv_0002', 'btcv_0003']
    for c in cases:
        img, lbl = arrays[c.id.split('_')[1]]
        assert c.patient == c.id and c.meta['modality'] == 'CT' and c.meta['format'] == 'btcv'
        assert c.spatial_shape == (4, 12, 16) and c.n_channels == 1            # (X,Y,Z) -> (Z,H,W)
        assert c.spacing == pytest.approx((2.5, 0.75, 0.7))
        np.testing.assert_array_equal(c.image, img.transpose(2, 1, 0).astype(np.float32))  # HU kept, not rescaled
        np.testing.assert_array_equal(c.label, lbl.transpose(2, 1, 0))
        assert c.image[0, 0, 0] == 1000 and c.image.min() < -900
        assert c.source.endswith(f"img{c.id[5:]}.nii.gz") and c.meta['label_source'].endswith(f"label{c.id[5:]}.nii.gz")


def test_training_testing_nesting_and_include_unlabelled(tmp_path):
    write_btcv(tmp_path/'RawData', train=('0001', '0002', '0010'), test=('0061', '0062'), unlabelled=('0002',))
    for root in (tmp_path, tmp_path/'RawData'):
        with pytest.warns(UserWarning, match=r"3 image\(s\) without a label left out .*include_unlabelled=True"):
            lab = read_btcv(root)
        assert [c.id for c in lab] == ['btcv_0001', 'btcv_0010']                # test scans and unlabelled images left out, with a warning
        assert all(c.has_label and c.meta['subset'] == 'Training' for c in lab)
    allc = read_btcv(tmp_path/'RawData', include_unlabelled=True)
    assert [(c.id, c.has_label, c.meta['subset']) for c in allc] == [
        ('btcv_0001', True, 'Training'), ('btcv_0002', False, 'Training'), ('btcv_0010', True, 'Training'),
        ('btcv_0061', False, 'Testing'), ('btcv_0062', False, 'Testing')]
    # the Training/ folder itself is a BTCV folder too
    with pytest.warns(UserWarning, match=r"1 image\(s\) without a label"):
        assert [c.id for c in read_btcv(tmp_path/'RawData'/'Training')] == ['btcv_0001', 'btcv_0010']


def test_macos_resource_files_are_skipped(tmp_path):
    write_btcv(tmp_path, train=('0001',), nested=False)
    (tmp_path/'img'/'._img0001.nii.gz').write_bytes(b'\x00\x05\x16\x07 resource fork')
    (tmp_path/'label'/'._label0001.nii.gz').write_bytes(b'\x00\x05\x16\x07 resource fork')
    assert [c.id for c in read_btcv(tmp_path)] == ['btcv_0001']


# ---------------------------------------------------------------- detection and dataset info
@pytest.mark.filterwarnings('ignore:read_btcv')   # the fixture's Testing/ scans are left out with a warning
def test_detect_format_and_load_dataset(tmp_path):
    write_btcv(tmp_path/'flat', nested=False)
    write_btcv(tmp_path/'nested')
    write_btcv(tmp_path/'raw'/'RawData')
    for d in ('flat', 'nested', 'raw'): assert detect_format(tmp_path/d) == 'btcv'
    (tmp_path/'other'/'img').mkdir(parents=True)                                # an img/ folder alone is not BTCV
    with pytest.raises(DataError, match='Cannot tell the layout'): detect_format(tmp_path/'other')
    for fmt in (None, 'btcv'):
        cases, info = load_dataset(tmp_path/'nested', fmt=fmt)
        assert isinstance(info, DatasetInfo) and len(cases) == 3
        assert (info.format, info.name, info.n_classes, info.modality, info.intensity) == ('btcv', 'btcv', 14, 'CT', 'window')
        assert info.class_names == BTCV_CLASSES
    assert BTCV_CLASSES[:4] == ['background', 'spleen', 'right kidney', 'left kidney']
    assert BTCV_CLASSES[10:] == ['portal and splenic veins', 'pancreas', 'right adrenal gland', 'left adrenal gland']
    d = info.to_dict(); assert d['format'] == 'btcv' and d['intensity'] == 'window' and len(d['class_names']) == 14
    cases, _ = load_dataset(tmp_path/'nested', include_unlabelled=True)
    assert len(cases) == 4 and not cases[-1].has_label


def test_msd_ct_task_is_windowed(tmp_path):
    task = tmp_path/'Task09_Spleen'
    for i in range(2):
        img, lbl = ct_pair(i + 1)
        save_nii(task/'imagesTr'/f'spleen_{i}.nii.gz', img)
        save_nii(task/'labelsTr'/f'spleen_{i}.nii.gz', (lbl == 1).astype(np.uint8))
    (task/'dataset.json').write_text(json.dumps({
        'name': 'Spleen', 'modality': {'0': 'CT'}, 'labels': {'0': 'background', '1': 'spleen'},
        'training': [{'image': f'./imagesTr/spleen_{i}.nii.gz', 'label': f'./labelsTr/spleen_{i}.nii.gz'} for i in range(2)],
        'test': []}))
    assert detect_format(task) == 'msd'
    cases, info = load_dataset(task)
    assert (info.format, info.modality, info.intensity, info.n_classes) == ('msd', 'CT', 'window', 2)
    assert len(cases) == 2


# ---------------------------------------------------------------- user errors name the file and the fix
def test_label_value_outside_btcv_range(tmp_path):
    write_btcv(tmp_path, nested=False)
    lbl = ct_pair('0002')[1]; lbl[0, 0, 0] = 14
    save_nii(tmp_path/'label'/'label0002.nii.gz', lbl)
    with pytest.raises(DataError, match=r"label0002\.nii\.gz' holds the value\(s\) \[14\]; BTCV labels are 0\.\.13"):
        read_btcv(tmp_path)


def test_label_without_image(tmp_path):
    write_btcv(tmp_path, nested=False)
    save_nii(tmp_path/'label'/'label0007.nii.gz', ct_pair('0007')[1])
    with pytest.raises(DataError, match=r"label0007\.nii\.gz' has no image .*img0007\.nii\.gz.*Restore the image"):
        read_btcv(tmp_path)


def test_image_label_shape_mismatch(tmp_path):
    write_btcv(tmp_path, nested=False)
    save_nii(tmp_path/'label'/'label0003.nii.gz', np.zeros((16, 12, 3), np.uint8))
    with pytest.raises(DataError, match=r"label0003\.nii\.gz' has shape \(16, 12, 3\) but image file .*img0003\.nii\.gz"):
        read_btcv(tmp_path)


def test_empty_and_unlabelled_only_folders(tmp_path):
    empty = tmp_path/'empty'; empty.mkdir()
    with pytest.raises(DataError, match=re.escape(f"No BTCV img/ folder in '{empty}'")): read_btcv(empty)
    (empty/'img').mkdir()
    with pytest.raises(DataError, match=r"No imgNNNN\.nii\.gz files in the BTCV img/ folder"): read_btcv(empty)
    with pytest.raises(DataError, match='Known layouts'): detect_format(empty)
    write_btcv(tmp_path/'nolabels', nested=False, unlabelled=('0001', '0002', '0003'))
    with pytest.raises(DataError, match=r"No labelled BTCV cases .*3 image\(s\) without labels.*include_unlabelled=True"):
        read_btcv(tmp_path/'nolabels')
    assert len(read_btcv(tmp_path/'nolabels', include_unlabelled=True)) == 3
    with pytest.raises(DataError, match='BTCV folder'): read_btcv(tmp_path/'missing')


def test_misnamed_file(tmp_path):
    write_btcv(tmp_path, nested=False)
    save_nii(tmp_path/'img'/'scan_7.nii.gz', ct_pair('0007')[0])
    with pytest.raises(DataError, match=r"scan_7\.nii\.gz' is not named imgNNNN\.nii\.gz"): read_btcv(tmp_path)


# ---------------------------------------------------------------- end to end through the CLI
def test_cli_smoke_run_on_btcv_is_windowed(tmp_path):
    from semicontrast.cli import run_experiment
    data = tmp_path/'btcv'
    write_btcv(data, train=('0001', '0002', '0003', '0004', '0005'), test=(), shape=(32, 32, 6))
    res = run_experiment('supervised', data=str(data), smoke=True, out=tmp_path/'r', quiet=True, labeled=1, valid=1, test=1)
    assert res['dataset']['format'] == 'btcv' and res['dataset']['n_classes'] == 14 and res['dataset']['n_cases'] == 5
    pp = res['preprocessing']
    assert pp['intensity'] == 'window' and pp['window'] == [-160, 240]
    saved = json.loads((tmp_path/'r'/'result.json').read_text())
    assert saved['preprocessing']['window'] == [-160, 240] and saved['dataset']['modality'] == 'CT'
    assert len(saved['split']['test']) == 1 and all(k.startswith('btcv_') for k in saved['per_case'])


def write_msd_spleen(task, n=6, shape=(32, 32, 6)):
    "An MSD Task09_Spleen-like folder (CT, labels 0/1) with `n` training cases."
    for i in range(n):
        img, lbl = ct_pair(i + 1, shape, seed=1)   # not the BTCV fixture's arrays: a pool must not hold the test images
        save_nii(task/'imagesTr'/f'spleen_{i}.nii.gz', img)
        save_nii(task/'labelsTr'/f'spleen_{i}.nii.gz', (lbl == 1).astype(np.uint8))
    (task/'dataset.json').write_text(json.dumps({
        'name': 'Spleen', 'modality': {'0': 'CT'}, 'labels': {'0': 'background', '1': 'spleen'},
        'training': [{'image': f'./imagesTr/spleen_{i}.nii.gz', 'label': f'./labelsTr/spleen_{i}.nii.gz'} for i in range(n)],
        'test': []}))
    return task


def test_cli_mixcl_on_msd_spleen_pooled_with_btcv_records_each_window(tmp_path):
    "MixCL's CT setting: evaluate on Spleen, pre-train on Spleen's training patients plus BTCV; every source is HU-windowed and keeps its label space."
    from semicontrast.cli import run_experiment
    spleen = write_msd_spleen(tmp_path/'Task09_Spleen')
    btcv = tmp_path/'btcv'
    write_btcv(btcv, train=('0001', '0002', '0003'), test=(), shape=(32, 32, 6))
    res = run_experiment('mixcl', data=str(spleen), pool=[str(btcv)], smoke=True, out=tmp_path/'r', quiet=True,
                         labeled=2, valid=1, test=1)
    assert res['dataset']['modality'] == 'CT' and res['preprocessing']['window'] == [-160, 240]
    pool = res['stages']['pretrain']['pool']
    assert [p['class_names'][-1] for p in pool] == ['spleen', BTCV_CLASSES[-1]] and len(pool[1]['class_names']) == 14
    assert [p['cases'] for p in pool] == [4, 3] and [p['labelled_cases'] for p in pool] == [2, 3]   # 6 - valid - test; labels of the unlabelled dropped
    for p in pool: assert p['preprocessing']['intensity'] == 'window' and p['preprocessing']['window'] == [-160, 240]
    saved = json.loads((tmp_path/'r'/'result.json').read_text())
    assert saved['stages']['pretrain']['pool'] == pool and saved['stages']['pretrain']['terms'][0]['label'] > 0
    assert all(k.startswith('spleen') for k in saved['per_case'])
