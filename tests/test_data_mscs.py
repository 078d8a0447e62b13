"Left atrium (UA-MT h5) and BraTS readers, their format detection and dataset info (the MSCS / UA-MT 3D benchmarks)."
import warnings
from pathlib import Path
import numpy as np
import pytest
import h5py
import nibabel as nib

from semicontrast.core import DataError
from semicontrast.data import (Case, tile_cases, read_la_h5, LA_CLASSES, read_brats, BRATS_TARGETS, BRATS_MODALITIES, detect_format,
                               load_dataset, FORMATS)

LA_SHAPE = (7, 6, 5)        # (X, Y, Z) in the h5 file: all different, so a wrong transpose cannot pass
LA_SET = '2018LA_Seg_Training Set'


# ---------------------------------------------------------------- left atrium fixtures
def la_arrays(name, shape=LA_SHAPE):
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    img = rng.normal(size=shape).astype(np.float32)
    lbl = np.zeros(shape, np.uint8); lbl[1:4, 2:5, 1:3] = 1; lbl[6, 0, 4] = 1     # an asymmetric mask
    return img, lbl


def write_la_case(d, name, image=True, label=True, shape=LA_SHAPE, **override):
    (d/name).mkdir(parents=True, exist_ok=True)
    img, lbl = la_arrays(name, shape)
    img, lbl = override.get('img', img), override.get('lbl', lbl)
    with h5py.File(d/name/'mri_norm2.h5', 'w') as f:
        if image: f['image'] = img
        if label: f['label'] = lbl
    return img, lbl


def write_la(root, train=('AAA1', 'BBB2', 'CCC3'), test=('DDD4',), extra=(), unlabelled=(), lists_in='parent'):
    "UA-MT layout: root/train.list, root/test.list and root/'2018LA_Seg_Training Set'/<case>/mri_norm2.h5."
    cases = root/LA_SET
    arrays = {n: write_la_case(cases, n, label=n not in unlabelled) for n in (*train, *test, *extra, *unlabelled)}
    ld = {'parent': root, 'cases': cases, None: None}[lists_in]
    if ld is not None:
        (ld/'train.list').write_text(''.join(f'{n}\n' for n in train))
        (ld/'test.list').write_text(''.join(f'{n}\n' for n in test))
    return arrays


def read_quiet(fn, *a, **k):
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        out = fn(*a, **k)
    return out, [str(x.message) for x in w]


# ---------------------------------------------------------------- left atrium: reading
def test_la_parent_folder_values_axes_lists(tmp_path):
    arrays = write_la(tmp_path)
    cases, warns = read_quiet(read_la_h5, tmp_path)
    assert warns == []
    assert [c.id for c in cases] == ['AAA1', 'BBB2', 'CCC3', 'DDD4']
    assert [c.meta['list'] for c in cases] == ['train', 'train', 'train', 'test']
    for c in cases:
        img, lbl = arrays[c.id]
        assert c.spatial_shape == (5, 6, 7) and c.n_channels == 1                        # (X,Y,Z) -> (Z,Y,X)
        np.testing.assert_array_equal(c.image, img.transpose(2, 1, 0))
        np.testing.assert_array_equal(c.label, lbl.transpose(2, 1, 0))
        assert c.label[4, 0, 6] == 1 and c.label[0, 0, 6] == 0                          # file voxel [x=6,y=0,z=4]
        assert c.image[3, 2, 1] == img[1, 2, 3]
        assert c.spacing == (0.625, 0.625, 0.625) and c.patient == c.id
        assert c.meta['format'] == 'la_h5' and c.meta['spacing_known'] is False
        assert c.source == str(tmp_path/LA_SET/c.id/'mri_norm2.h5')
        assert c.image.dtype == np.float32 and c.label.dtype == np.uint8


@pytest.mark.parametrize('lists_in', ['parent', 'cases'])
def test_la_case_folder_itself(tmp_path, lists_in):
    write_la(tmp_path, lists_in=lists_in)
    for folder in (tmp_path, tmp_path/LA_SET):
        cases = read_la_h5(folder)
        assert [(c.id, c.meta['list']) for c in cases] == [('AAA1', 'train'), ('BBB2', 'train'), ('CCC3', 'train'), ('DDD4', 'test')]


def test_la_without_lists_and_unlisted_case(tmp_path):
    write_la(tmp_path, extra=('EEE5',))
    cases = read_la_h5(tmp_path)
    assert [(c.id, c.meta['list']) for c in cases][-1] == ('EEE5', None)
    write_la(tmp_path/'nolists', lists_in=None)
    assert {c.meta['list'] for c in read_la_h5(tmp_path/'nolists')} == {None}


def test_la_spacing_is_reordered(tmp_path):
    write_la(tmp_path)
    c = read_la_h5(tmp_path, spacing=(0.5, 0.6, 2.0))[0]                                 # (sx, sy, sz)
    assert c.spacing == (2.0, 0.6, 0.5)
    with pytest.raises(DataError, match='3 voxel sizes'):
        read_la_h5(tmp_path, spacing=(1, 1))


def test_la_list_names_with_h5_suffix_and_blank_lines(tmp_path):
    write_la(tmp_path)
    (tmp_path/'train.list').write_text('AAA1\n\n  BBB2.h5  \nCCC3/mri_norm2.h5\n')
    assert [c.meta['list'] for c in read_la_h5(tmp_path)] == ['train', 'train', 'train', 'test']


# ---------------------------------------------------------------- left atrium: unlabelled
def test_la_unlabelled_left_out_with_warning(tmp_path):
    write_la(tmp_path, unlabelled=('ZZZ9',))
    cases, warns = read_quiet(read_la_h5, tmp_path)
    assert [c.id for c in cases] == ['AAA1', 'BBB2', 'CCC3', 'DDD4']
    assert len(warns) == 1 and str(tmp_path/LA_SET/'ZZZ9'/'mri_norm2.h5') in warns[0] and 'include_unlabelled=True' in warns[0]
    cases, warns = read_quiet(read_la_h5, tmp_path, include_unlabelled=True)
    assert warns == [] and [(c.id, c.has_label) for c in cases][-1] == ('ZZZ9', False)
    assert cases[-1].spatial_shape == (5, 6, 7)


def test_la_all_unlabelled_is_an_error(tmp_path):
    write_la_case(tmp_path/'set', 'U1', label=False)
    with pytest.warns(UserWarning, match='without a .label. dataset'), pytest.raises(DataError, match='include_unlabelled=True'):
        read_la_h5(tmp_path)


def test_la_folder_without_h5_warns(tmp_path):
    write_la(tmp_path)
    (tmp_path/LA_SET/'notes').mkdir()
    cases, warns = read_quiet(read_la_h5, tmp_path)
    assert len(cases) == 4 and len(warns) == 1 and "'notes'" in warns[0]


# ---------------------------------------------------------------- left atrium: errors name the file
def test_la_listed_case_without_h5(tmp_path):
    write_la(tmp_path)
    (tmp_path/'test.list').write_text('DDD4\nMISSING7\n')
    with pytest.raises(DataError) as e: read_la_h5(tmp_path)
    assert str(tmp_path/LA_SET/'MISSING7'/'mri_norm2.h5') in str(e.value) and str(tmp_path/'test.list') in str(e.value)
    (tmp_path/LA_SET/'MISSING7').mkdir()                                               # folder there, file not
    with pytest.raises(DataError, match='MISSING7/mri_norm2.h5'): read_la_h5(tmp_path)


def test_la_case_in_both_lists(tmp_path):
    write_la(tmp_path)
    (tmp_path/'test.list').write_text('DDD4\nAAA1\n')
    with pytest.raises(DataError, match="'AAA1' is in both"): read_la_h5(tmp_path)


def test_la_missing_image(tmp_path):
    write_la(tmp_path)
    write_la_case(tmp_path/LA_SET, 'BBB2', image=False)
    with pytest.raises(DataError) as e: read_la_h5(tmp_path)
    assert str(tmp_path/LA_SET/'BBB2'/'mri_norm2.h5') in str(e.value) and "no 'image'" in str(e.value)


def test_la_label_shape_mismatch(tmp_path):
    write_la(tmp_path)
    write_la_case(tmp_path/LA_SET, 'CCC3', lbl=np.zeros((7, 6, 4), np.uint8))
    with pytest.raises(DataError) as e: read_la_h5(tmp_path)
    assert 'CCC3/mri_norm2.h5' in str(e.value) and 'label shape (7, 6, 4)' in str(e.value)


@pytest.mark.parametrize('value,hint', [(255, 'label == 255'), (2, 'another dataset'), (0.5, 'another dataset')])
def test_la_bad_label_values(tmp_path, value, hint):
    write_la(tmp_path)
    lbl = np.zeros(LA_SHAPE, np.float32 if value == 0.5 else np.uint8); lbl[0, 0, 0] = value
    write_la_case(tmp_path/LA_SET, 'AAA1', lbl=lbl)
    with pytest.raises(DataError) as e: read_la_h5(tmp_path)
    msg = str(e.value)
    assert 'AAA1/mri_norm2.h5' in msg and f'[{value}]' in msg and hint in msg


def test_la_image_not_3d_and_corrupt_file(tmp_path):
    write_la(tmp_path)
    write_la_case(tmp_path/LA_SET, 'AAA1', img=np.zeros((7, 6), np.float32), label=False)
    with pytest.raises(DataError, match=r"AAA1/mri_norm2.h5': 'image' has shape \(7, 6\)"):
        read_la_h5(tmp_path, include_unlabelled=True)
    write_la_case(tmp_path/LA_SET, 'AAA1')
    (tmp_path/LA_SET/'BBB2'/'mri_norm2.h5').write_bytes(b'not an hdf5 file')
    with pytest.raises(DataError, match=r"BBB2/mri_norm2.h5'.*truncated or not HDF5"): read_la_h5(tmp_path)


def test_la_no_cases_or_ambiguous_folder(tmp_path):
    (tmp_path/'empty').mkdir()
    with pytest.raises(DataError, match='No <case>/mri_norm2.h5'): read_la_h5(tmp_path/'empty')
    write_la_case(tmp_path/'two'/'setA', 'A1'); write_la_case(tmp_path/'two'/'setB', 'B1')
    with pytest.raises(DataError, match="several sub-folders.*'setA', 'setB'"): read_la_h5(tmp_path/'two')
    with pytest.raises(DataError, match='nofolder'): read_la_h5(tmp_path/'nofolder')


# ---------------------------------------------------------------- BraTS fixtures
BR_SHAPE = (9, 8, 6)                       # (X, Y, Z)
BR_ZOOMS = (1.0, 1.2, 2.0)                 # (sx, sy, sz) -> spacing (2.0, 1.2, 1.0)


def save_nii(path, arr, zooms=BR_ZOOMS):
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.asarray(arr), np.diag(list(zooms) + [1.0])), str(path))


def brats_arrays(cid, shape=BR_SHAPE, et=4):
    "Four distinct sequences (offset 1000*k + noise) and a segmentation with every label, in (X,Y,Z) order."
    rng = np.random.default_rng(abs(hash(cid)) % 2**32)
    mods = {m: (1000.0 * (k + 1) + rng.normal(0, 50, shape)).astype(np.float32) for k, m in enumerate(BRATS_MODALITIES)}
    seg = rng.choice(np.array([0, 1, 2, et], np.uint8), size=shape, p=[0.4, 0.2, 0.2, 0.2])
    seg[0, 0, 0], seg[1, 0, 0], seg[2, 0, 0], seg[3, 0, 0] = 0, 1, 2, et
    return mods, seg


def write_brats_case(parent, cid, seg=True, et=4, ext='.nii.gz', skip=(), shape=BR_SHAPE, seg_name=None):
    mods, s = brats_arrays(cid, shape, et)
    d = parent/cid
    for m, a in mods.items():
        if m not in skip: save_nii(d/f'{cid}_{m}{ext}', a)
    if seg: save_nii(d/(seg_name or f'{cid}_seg{ext}'), s)
    return mods, s


def write_brats(root, nested=True):
    "BraTS 2019 (HGG/, LGG/) or 2021 (flat) layout with one validation case without seg. Returns {id: (mods, seg)}."
    out = {}
    if nested:
        out['BraTS19_H_1'] = write_brats_case(root/'HGG', 'BraTS19_H_1')
        out['BraTS19_H_2'] = write_brats_case(root/'HGG', 'BraTS19_H_2')
        out['BraTS19_L_1'] = write_brats_case(root/'LGG', 'BraTS19_L_1')
    else:
        for i in range(3): out[f'BraTS2021_{i:05d}'] = write_brats_case(root, f'BraTS2021_{i:05d}')
    write_brats_case(root, 'BraTS_Val_1', seg=False)
    (root/'name_mapping.csv').write_text('a,b\n')                                      # stray files are fine
    return out


def expected(seg, target):
    ncr, ed, et = seg == 1, seg == 2, (seg == 4) | (seg == 3)
    return {'wt': ncr | ed | et, 'tc': ncr | et, 'et': et}.get(target, ncr * 1 + ed * 2 + et * 3).astype(np.uint8)


# ---------------------------------------------------------------- BraTS: reading
def test_brats_nested_grades_values_axes_channels(tmp_path):
    arrays = write_brats(tmp_path)
    cases, warns = read_quiet(read_brats, tmp_path)
    assert [(c.id, c.meta['grade']) for c in cases] == [('BraTS19_H_1', 'HGG'), ('BraTS19_H_2', 'HGG'), ('BraTS19_L_1', 'LGG')]
    assert len(warns) == 1 and 'BraTS_Val_1' in warns[0]
    for c in cases:
        mods, seg = arrays[c.id]
        assert c.image.shape == (4, 6, 8, 9) and c.n_channels == 4 and c.image.dtype == np.float32
        for k, m in enumerate(BRATS_MODALITIES):
            np.testing.assert_array_equal(c.image[k], mods[m].transpose(2, 1, 0))
        np.testing.assert_array_equal(c.label, (seg > 0).transpose(2, 1, 0))
        assert c.spacing == pytest.approx((2.0, 1.2, 1.0)) and c.patient == c.id
        assert c.meta['format'] == 'brats' and c.meta['target'] == 'wt' and c.meta['modalities'] == list(BRATS_MODALITIES)
        assert c.source.endswith(f'{c.id}_flair.nii.gz') and c.meta['label_source'].endswith(f'{c.id}_seg.nii.gz')
        assert c.meta['sources']['t1ce'].endswith(f'{c.id}_t1ce.nii.gz')


def test_brats_flat_layout_and_uncompressed(tmp_path):
    write_brats(tmp_path, nested=False)
    write_brats_case(tmp_path, 'BraTS2021_00009', ext='.nii')
    cases, _ = read_quiet(read_brats, tmp_path)
    assert [c.id for c in cases] == ['BraTS2021_00000', 'BraTS2021_00001', 'BraTS2021_00002', 'BraTS2021_00009']
    assert {c.meta['grade'] for c in cases} == {None}
    assert cases[-1].source.endswith('BraTS2021_00009_flair.nii')


def test_brats_channel_order_follows_modalities(tmp_path):
    arrays = write_brats(tmp_path)
    c = read_quiet(read_brats, tmp_path, modalities=('t2', 't1ce', 'flair'))[0][0]
    mods = arrays[c.id][0]
    assert c.image.shape == (3, 6, 8, 9) and c.meta['modalities'] == ['t2', 't1ce', 'flair']
    for k, m in enumerate(('t2', 't1ce', 'flair')): np.testing.assert_array_equal(c.image[k], mods[m].transpose(2, 1, 0))
    c1 = read_quiet(read_brats, tmp_path, modalities='t1')[0][0]
    assert c1.image.shape == (1, 6, 8, 9) and c1.image[0, 0, 0, 0] == mods['t1'][0, 0, 0]


@pytest.mark.parametrize('et', [4, 3])
@pytest.mark.parametrize('target', ['wt', 'tc', 'et', 'all'])
def test_brats_targets(tmp_path, target, et):
    _, seg = write_brats_case(tmp_path, 'BraTS_X_1', et=et)
    c, = read_brats(tmp_path, target=target)
    want = expected(seg, target).transpose(2, 1, 0)
    np.testing.assert_array_equal(c.label, want)
    assert c.meta['target'] == target
    assert int(c.label.max()) == len(BRATS_TARGETS[target]) - 1
    hand = {'wt': [0, 1, 1, 1], 'tc': [0, 1, 0, 1], 'et': [0, 0, 0, 1], 'all': [0, 1, 2, 3]}[target]
    assert [int(c.label[0, 0, x]) for x in range(4)] == hand                         # file voxels x=0..3 hold 0, 1, 2, ET


def test_brats_targets_constant():
    assert set(BRATS_TARGETS) == {'wt', 'tc', 'et', 'all'}
    assert all(v[0] == 'background' for v in BRATS_TARGETS.values())
    assert [len(v) for v in BRATS_TARGETS.values()] == [2, 2, 2, 4]


# ---------------------------------------------------------------- BraTS: unlabelled
def test_brats_unlabelled(tmp_path):
    write_brats(tmp_path)
    cases, warns = read_quiet(read_brats, tmp_path, include_unlabelled=True)
    assert warns == [] and len(cases) == 4
    v = [c for c in cases if c.id == 'BraTS_Val_1'][0]
    assert not v.has_label and v.image.shape == (4, 6, 8, 9) and 'label_source' not in v.meta
    cases, warns = read_quiet(read_brats, tmp_path)
    assert len(cases) == 3 and len(warns) == 1
    assert str(tmp_path/'BraTS_Val_1') in warns[0] and 'include_unlabelled=True' in warns[0]


def test_brats_misnamed_seg_hint_and_only_unlabelled(tmp_path):
    write_brats_case(tmp_path, 'BraTS20_Training_355', seg_name='W39_1998.09.19_Segm.nii')
    with pytest.warns(UserWarning, match=r"W39_1998.09.19_Segm.nii.*rename it to 'BraTS20_Training_355_seg.nii.gz'"), \
            pytest.raises(DataError, match='No labelled BraTS cases.*include_unlabelled=True'):
        read_brats(tmp_path)


def test_brats_empty_folder_warns(tmp_path):
    write_brats(tmp_path)
    (tmp_path/'HGG'/'docs').mkdir()
    cases, warns = read_quiet(read_brats, tmp_path)
    assert len(cases) == 3 and any("docs'" in w and 'without NIfTI' in w for w in warns)


# ---------------------------------------------------------------- BraTS: errors name the file
def test_brats_missing_modality_names_expected_file(tmp_path):
    write_brats(tmp_path)
    write_brats_case(tmp_path/'LGG', 'BraTS19_L_2', skip=('t2',))
    with pytest.raises(DataError) as e: read_brats(tmp_path)
    assert str(tmp_path/'LGG'/'BraTS19_L_2'/'BraTS19_L_2_t2.nii.gz') in str(e.value) and 'is missing' in str(e.value)
    assert [c.id for c in read_quiet(read_brats, tmp_path, modalities=('flair', 't1'))[0]][-1] == 'BraTS19_L_2'


def test_brats_modality_shape_mismatch(tmp_path):
    write_brats_case(tmp_path, 'BraTS_X_1')
    save_nii(tmp_path/'BraTS_X_1'/'BraTS_X_1_t1ce.nii.gz', np.zeros((9, 8, 5), np.float32))
    with pytest.raises(DataError) as e: read_brats(tmp_path)
    assert 'BraTS_X_1_t1ce.nii.gz' in str(e.value) and '(9, 8, 5)' in str(e.value) and 'BraTS_X_1_flair.nii.gz' in str(e.value)


def test_brats_seg_shape_and_grid_mismatch(tmp_path):
    write_brats_case(tmp_path, 'BraTS_X_1')
    save_nii(tmp_path/'BraTS_X_1'/'BraTS_X_1_seg.nii.gz', np.zeros((9, 8, 5), np.uint8))
    with pytest.raises(DataError, match=r"BraTS_X_1_seg.nii.gz' has shape \(9, 8, 5\)"): read_brats(tmp_path)
    save_nii(tmp_path/'BraTS_X_1'/'BraTS_X_1_seg.nii.gz', np.zeros(BR_SHAPE, np.uint8), zooms=(1, 1, 1))
    with pytest.raises(DataError, match="BraTS_X_1_seg.nii.gz' and image file .*different affines"): read_brats(tmp_path)


@pytest.mark.parametrize('value', [5, 7])
def test_brats_unknown_label_value(tmp_path, value):
    _, seg = write_brats_case(tmp_path, 'BraTS_X_1')
    seg = seg.copy(); seg[4, 4, 4] = value
    save_nii(tmp_path/'BraTS_X_1'/'BraTS_X_1_seg.nii.gz', seg)
    for target in ('wt', 'all'):
        with pytest.raises(DataError) as e: read_brats(tmp_path, target=target)
        assert 'BraTS_X_1_seg.nii.gz' in str(e.value) and f'[{value}]' in str(e.value) and '4 enhancing' in str(e.value)


def test_brats_bad_arguments_and_duplicates(tmp_path):
    write_brats_case(tmp_path, 'BraTS_X_1')
    with pytest.raises(DataError, match="target='ncr'.*'wt', 'tc', 'et', 'all'"): read_brats(tmp_path, target='ncr')
    for mods in ((), ('t1', 't1'), ('flair', 'seg')):
        with pytest.raises(DataError, match='modalities='): read_brats(tmp_path, modalities=mods)
    write_brats_case(tmp_path/'HGG', 'BraTS_D_1'); write_brats_case(tmp_path/'LGG', 'BraTS_D_1')
    with pytest.raises(DataError, match="'BraTS_D_1' appears twice"): read_brats(tmp_path)
    (tmp_path/'none').mkdir()
    with pytest.raises(DataError, match='No BraTS case folders'): read_brats(tmp_path/'none')


def test_brats_corrupt_file(tmp_path):
    write_brats_case(tmp_path, 'BraTS_X_1')
    (tmp_path/'BraTS_X_1'/'BraTS_X_1_t2.nii.gz').write_bytes(b'garbage')
    with pytest.raises(DataError, match="BraTS_X_1_t2.nii.gz'.*corrupt"): read_brats(tmp_path)


# ---------------------------------------------------------------- detection and load_dataset
def test_detect_format_both(tmp_path):
    assert {'la_h5', 'brats'} <= set(FORMATS)
    write_la(tmp_path/'la')
    assert detect_format(tmp_path/'la') == 'la_h5'                       # lists + one sub-folder of case folders
    assert detect_format(tmp_path/'la'/LA_SET) == 'la_h5'                # the case folders' folder
    write_brats(tmp_path/'b19'); write_brats(tmp_path/'b21', nested=False)
    assert detect_format(tmp_path/'b19') == 'brats' and detect_format(tmp_path/'b21') == 'brats'
    only_hgg = tmp_path/'hgg_only'; write_brats_case(only_hgg/'HGG', 'BraTS19_H_9')
    assert detect_format(only_hgg) == 'brats'
    (tmp_path/'other'/'x').mkdir(parents=True)
    with pytest.raises(DataError) as e: detect_format(tmp_path/'other')
    assert 'la_h5' in str(e.value) and 'brats' in str(e.value)


def test_load_dataset_la(tmp_path):
    write_la(tmp_path, unlabelled=('ZZZ9',))
    cases, info = read_quiet(load_dataset, tmp_path)[0]
    assert len(cases) == 4 and (info.name, info.format, info.n_classes, info.class_names, info.modality, info.intensity) == \
        ('la', 'la_h5', 2, LA_CLASSES, 'MRI', 'zscore')
    cases, info = load_dataset(tmp_path/LA_SET, fmt='la_h5', include_unlabelled=True, spacing=(1, 1, 2))
    assert len(cases) == 5 and cases[0].spacing == (2.0, 1.0, 1.0)


@pytest.mark.parametrize('target', ['wt', 'tc', 'et', 'all', None])
def test_load_dataset_brats(tmp_path, target):
    write_brats(tmp_path)
    kw = {} if target is None else {'target': target}
    (cases, info), _ = read_quiet(load_dataset, tmp_path, **kw)
    t = target or 'wt'
    assert len(cases) == 3 and {c.meta['target'] for c in cases} == {t}
    assert (info.name, info.format, info.class_names, info.n_classes, info.modality, info.intensity) == \
        ('brats', 'brats', BRATS_TARGETS[t], len(BRATS_TARGETS[t]), 'MRI (FLAIR, T1, T1ce, T2)', 'zscore')
    (cases, info), _ = read_quiet(load_dataset, tmp_path, fmt='brats', modalities=('t1ce', 'flair'), include_unlabelled=True)
    assert len(cases) == 4 and info.modality == 'MRI (T1ce, FLAIR)' and cases[0].n_channels == 2


def test_zscore_is_per_channel_on_brats(tmp_path):
    "Preprocess z-scores each sequence on its own: the four channels (offsets 1000..4000) all come out mean 0, std 1."
    from semicontrast.loaders import Preprocess
    write_brats_case(tmp_path, 'BraTS_X_1')
    c, = read_brats(tmp_path)
    x = Preprocess(intensity='zscore').normalise(c.image)
    np.testing.assert_allclose(x.mean((1, 2, 3)), 0, atol=1e-4)
    np.testing.assert_allclose(x.std((1, 2, 3)), 1, atol=1e-4)


# ---------------------------------------------------------------- tiles of large 2D images (MoNuSeg protocol)
@pytest.mark.parametrize('H,W,t,stride', [(10, 13, 4, None), (8, 8, 4, None), (9, 9, 4, 2), (3, 20, 8, None)])
def test_tile_cases_cover_every_pixel_and_keep_the_patient(H, W, t, stride):
    rng = np.random.default_rng(H * W)
    img = rng.normal(size=(3, 1, H, W)).astype(np.float32)
    lbl = rng.integers(0, 2, size=(1, H, W)).astype(np.uint8)
    inst = np.arange(H * W, dtype=np.int32).reshape(1, H, W)
    c = Case('tile', img, lbl, (1.0, 1.0, 1.0), patient='slide7', meta={'instances': inst, 'subset': 'train'})
    tiles = tile_cases([c], tile=t, stride=stride)
    seen = np.zeros((H, W), int)
    for p in tiles:
        y, x = p.meta['tile_origin']
        h, w = p.spatial_shape[1:]
        assert (h, w) == (min(t, H), min(t, W)) and p.patient == 'slide7' and p.meta['tile_of'] == 'tile'
        assert np.array_equal(p.image, img[..., y:y + h, x:x + w]) and np.array_equal(p.label, lbl[..., y:y + h, x:x + w])
        assert np.array_equal(p.meta['instances'], inst[..., y:y + h, x:x + w]) and p.meta['subset'] == 'train'
        seen[y:y + h, x:x + w] += 1
    assert seen.min() >= 1                                    # nothing dropped
    assert len({p.id for p in tiles}) == len(tiles)


def test_tile_cases_refuses_a_bad_tile():
    c = Case('a', np.zeros((1, 4, 4), np.float32), None, (1.0, 1.0, 1.0))
    with pytest.raises(DataError, match='tile'): tile_cases([c], tile=0)
