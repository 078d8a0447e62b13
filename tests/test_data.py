"Contracts of semicontrast.data: readers, Case validation, embedded data, phantoms, format detection."
import os
import re, gzip, json
from pathlib import Path
import numpy as np
import pytest
import nibabel as nib
import h5py
from PIL import Image

from semicontrast.core import DataError
from semicontrast.data import (Case, read_nifti, read_msd, msd_info, read_acdc, read_acdc_h5, read_monuseg, hippocampus_path,
                               load_hippocampus, synthetic_phantoms, DatasetInfo, detect_format, load_dataset)

def _find_monuseg():
    "The project's shared MoNuSeg sample: $SEMICONTRAST_SHARED/data/..., else ../shared next to the clone, else /work/shared."
    rel = Path('data')/'monuseg2018_sample'
    cands = [Path(os.environ['SEMICONTRAST_SHARED'])/rel] if os.environ.get('SEMICONTRAST_SHARED') else []
    cands += [Path(__file__).resolve().parents[1].parent/'shared'/rel, Path('/work/shared')/rel]
    return next((c for c in cands if c.is_dir()), cands[0])

MONUSEG = _find_monuseg()


# ---------------------------------------------------------------- helpers that write tiny datasets
def save_nii(path, arr, zooms=(1.0, 1.0, 1.0), affine=None):
    aff = np.diag(list(zooms) + [1.0]) if affine is None else affine
    nib.save(nib.Nifti1Image(np.asarray(arr), aff), str(path))
    return path

def write_msd(root, n=3, with_json=True, shape=(6, 5, 4)):
    rng = np.random.default_rng(0)
    (root/'imagesTr').mkdir(parents=True); (root/'labelsTr').mkdir()
    for i in range(n):
        save_nii(root/'imagesTr'/f'case_{i:03d}.nii.gz', rng.random(shape).astype(np.float32))
        save_nii(root/'labelsTr'/f'case_{i:03d}.nii.gz', rng.integers(0, 3, shape).astype(np.uint8))
    (root/'imagesTr'/'._case_000.nii.gz').write_bytes(b'\x00\x05\x16\x07 macOS resource fork')
    if with_json:
        (root/'dataset.json').write_text(json.dumps({
            'name': 'Toy', 'modality': {'0': 'MRI'}, 'labels': {'0': 'background', '1': 'a', '2': 'b'},
            'training': [{'image': f'./imagesTr/case_{i:03d}.nii.gz', 'label': f'./labelsTr/case_{i:03d}.nii.gz'} for i in range(n)],
            'test': []}))
    return root

def write_acdc(root, n=2):
    rng = np.random.default_rng(1)
    for i in range(1, n + 1):
        d = root/'training'/f'patient{i:03d}'; d.mkdir(parents=True)
        es = 10 + i
        (d/'Info.cfg').write_text(f"ED: 1\nES: {es}\nGroup: {'DCM' if i == 1 else 'NOR'}\nHeight: 184.0\nNbFrame: 30\nWeight: 95.0\n")
        for fr in (1, es):
            save_nii(d/f'patient{i:03d}_frame{fr:02d}.nii.gz', rng.random((7, 6, 3)).astype(np.float32), (1.5, 1.5, 10.0))
            save_nii(d/f'patient{i:03d}_frame{fr:02d}_gt.nii.gz', rng.integers(0, 4, (7, 6, 3)).astype(np.uint8), (1.5, 1.5, 10.0))
        save_nii(d/f'patient{i:03d}_4d.nii.gz', rng.random((7, 6, 3, 30)).astype(np.float32), (1.5, 1.5, 10.0))
    return root

def write_h5(p, image, label=None):
    with h5py.File(p, 'w') as f:
        f['image'] = image
        if label is not None: f['label'] = label

def write_ssl4mis(root, slices_in_subfolder=True):
    rng = np.random.default_rng(2)
    data = root/'data'; data.mkdir(parents=True)
    sdir = data/'slices' if slices_in_subfolder else data
    sdir.mkdir(exist_ok=True)
    vols = ['patient001_frame01', 'patient001_frame12', 'patient002_frame01', 'patient002_frame14', 'patient003_frame01']
    for v in vols:
        write_h5(data/f'{v}.h5', rng.random((4, 8, 8)).astype(np.float32), rng.integers(0, 4, (4, 8, 8)).astype(np.uint8))
    # patient004 exists only as slices (K = 0, 1, 2, 10: numerical order)
    for k in (10, 0, 2, 1):
        write_h5(sdir/f'patient004_frame01_slice_{k}.h5', np.full((8, 8), k, np.float32), np.full((8, 8), k % 4, np.uint8))
    # slices of a case that also has a volume: the volume wins
    write_h5(sdir/'patient001_frame01_slice_0.h5', np.zeros((8, 8), np.float32), np.zeros((8, 8), np.uint8))
    (root/'train.list').write_text('patient001_frame01\npatient001_frame12\npatient004_frame01\n')
    (root/'val.list').write_text('patient002_frame01\npatient002_frame14\n')
    (root/'test.list').write_text('patient003_frame01\n')
    return root

def write_monuseg(root):
    (root/'images').mkdir(parents=True); (root/'annotations_xml').mkdir()
    Image.fromarray(np.full((16, 16, 3), 128, np.uint8)).save(root/'images'/'tile.tif')
    (root/'annotations_xml'/'tile.xml').write_text(
        '<Annotations><Annotation><Regions><Region Id="1"><Vertices><Vertex X="2" Y="2"/><Vertex X="8" Y="2"/>'
        '<Vertex X="8" Y="8"/></Vertices></Region></Regions></Annotation></Annotations>')
    return root

def truncate(p):
    b = Path(p).read_bytes(); Path(p).write_bytes(b[:len(b) // 2])


# ---------------------------------------------------------------- Case
def test_case_validation_and_casts():
    c = Case('a', np.zeros((3, 4, 5), np.int16), np.ones((3, 4, 5), np.int64), (2, 1, 1))
    assert c.image.dtype == np.float32 and c.label.dtype == np.uint8
    assert (c.n_channels, c.spatial_shape, c.n_slices, c.has_label, c.patient) == (1, (3, 4, 5), 3, True, 'a')
    img, lbl = c.slice(1)
    assert img.shape == (1, 4, 5) and img.dtype == np.float32 and lbl.shape == (4, 5)
    m = Case('m', np.zeros((2, 3, 4, 5)), None, (1, 1, 1))
    assert m.n_channels == 2 and m.slice(0)[0].shape == (2, 4, 5) and m.slice(0)[1] is None
    assert 'Case(' in repr(c) and len(repr(c)) < 200
    bad = np.zeros((3, 4, 5)); bad[0, 0, :2] = np.inf
    with pytest.raises(DataError, match=r"src\.nii\.gz.*2 non-finite"): Case('a', bad, source='src.nii.gz')
    with pytest.raises(DataError): Case('a', np.zeros((4, 5)))
    with pytest.raises(DataError): Case('a', np.zeros((1, 1, 2, 3, 4)))
    with pytest.raises(DataError, match='spatial shape'): Case('a', np.zeros((3, 4, 5)), np.zeros((3, 4, 4)))
    with pytest.raises(DataError): Case('a', np.zeros((3, 4, 5)), spacing=(1, -1, 1))
    with pytest.raises(DataError): Case('a', np.zeros((3, 4, 5)), spacing=(1, 1))
    with pytest.raises(DataError): Case('a', np.zeros((3, 4, 5)), np.full((3, 4, 5), 255))
    with pytest.raises(DataError): Case('a', np.zeros((3, 4, 5)), np.full((3, 4, 5), -1))
    with pytest.raises(DataError): Case('a', np.zeros((3, 4, 5)), np.full((3, 4, 5), 1.5))


# ---------------------------------------------------------------- NIfTI
def test_read_nifti_axes_and_spacing(tmp_path):
    vol = np.arange(5 * 4 * 3, dtype=np.float32).reshape(5, 4, 3)      # (X,Y,Z)
    save_nii(tmp_path/'img.nii.gz', vol, (0.7, 0.9, 5.0))
    save_nii(tmp_path/'lbl.nii.gz', (vol % 3).astype(np.uint8), (0.7, 0.9, 5.0))
    c = read_nifti(tmp_path/'img.nii.gz', tmp_path/'lbl.nii.gz', patient='p1')
    assert c.image.shape == (3, 4, 5) and c.spacing == (5.0, 0.9, 0.7)
    assert c.image[2, 3, 1] == vol[1, 3, 2] and c.label[2, 3, 1] == vol[1, 3, 2] % 3
    assert c.id == 'img' and c.patient == 'p1' and c.source.endswith('img.nii.gz')
    # scaled (slope/intercept) image data are applied
    n = nib.Nifti1Image(np.ones((2, 2, 2), np.int16), np.eye(4)); n.header.set_slope_inter(2.0, 10.0)
    nib.save(n, str(tmp_path/'scaled.nii.gz'))
    assert np.all(read_nifti(tmp_path/'scaled.nii.gz').image == 12.0)

def test_read_nifti_4d(tmp_path):
    save_nii(tmp_path/'four.nii.gz', np.zeros((5, 4, 3, 2), np.float32))
    with pytest.raises(DataError, match=r'four\.nii\.gz.*channels=True'): read_nifti(tmp_path/'four.nii.gz')
    assert read_nifti(tmp_path/'four.nii.gz', channels=True).image.shape == (2, 3, 4, 5)

def test_read_nifti_errors_name_the_file(tmp_path):
    img = save_nii(tmp_path/'image_a.nii.gz', np.zeros((5, 4, 3), np.float32))
    save_nii(tmp_path/'short_lbl.nii.gz', np.zeros((5, 4, 2), np.uint8))
    with pytest.raises(DataError, match=r'short_lbl\.nii\.gz'): read_nifti(img, tmp_path/'short_lbl.nii.gz')
    moved = np.eye(4); moved[0, 3] = 12.0
    save_nii(tmp_path/'moved_lbl.nii.gz', np.zeros((5, 4, 3), np.uint8), affine=moved)
    with pytest.raises(DataError, match=r'moved_lbl\.nii\.gz.*affine'): read_nifti(img, tmp_path/'moved_lbl.nii.gz')
    save_nii(tmp_path/'frac_lbl.nii.gz', np.full((5, 4, 3), 0.4, np.float32))
    with pytest.raises(DataError, match=r'frac_lbl\.nii\.gz.*non-integer'): read_nifti(img, tmp_path/'frac_lbl.nii.gz')
    save_nii(tmp_path/'neg_lbl.nii.gz', np.full((5, 4, 3), -1, np.int16))
    with pytest.raises(DataError, match=r'neg_lbl\.nii\.gz.*negative'): read_nifti(img, tmp_path/'neg_lbl.nii.gz')
    nan = np.zeros((5, 4, 3), np.float32); nan[1, 1, 1] = np.nan
    save_nii(tmp_path/'nan_img.nii.gz', nan)
    with pytest.raises(DataError, match=r'nan_img\.nii\.gz.*1 non-finite'): read_nifti(tmp_path/'nan_img.nii.gz')
    with pytest.raises(DataError, match=r'missing_img\.nii\.gz'): read_nifti(tmp_path/'missing_img.nii.gz')
    with pytest.raises(DataError, match=r'missing_lbl\.nii\.gz'): read_nifti(img, tmp_path/'missing_lbl.nii.gz')
    big = save_nii(tmp_path/'cut_img.nii.gz', np.random.default_rng(0).random((20, 20, 20)).astype(np.float32))
    truncate(big)
    with pytest.raises(DataError, match=r'cut_img\.nii\.gz'): read_nifti(big)
    (tmp_path/'text.nii.gz').write_text('not a nifti')
    with pytest.raises(DataError, match=r'text\.nii\.gz'): read_nifti(tmp_path/'text.nii.gz')


# ---------------------------------------------------------------- MSD
@pytest.mark.parametrize('with_json', [True, False])
def test_read_msd(tmp_path, with_json):
    root = write_msd(tmp_path/'Task99_Toy', with_json=with_json)
    cases = read_msd(root)
    assert [c.id for c in cases] == ['case_000', 'case_001', 'case_002']          # '._' file skipped
    assert all(c.image.shape == (4, 5, 6) and c.has_label for c in cases)
    info = msd_info(root)
    if with_json: assert info['n_classes'] == 3 and info['class_names'] == ['background', 'a', 'b'] and info['modality'] == {0: 'MRI'}
    else: assert info['n_classes'] is None

def test_read_msd_missing_label_and_unlabelled(tmp_path):
    root = write_msd(tmp_path/'Task99_Toy', with_json=False)
    (root/'labelsTr'/'case_001.nii.gz').unlink()
    with pytest.raises(DataError, match=r'case_001\.nii\.gz'): read_msd(root)
    (root/'imagesTs').mkdir()
    save_nii(root/'imagesTs'/'case_100.nii.gz', np.zeros((6, 5, 4), np.float32))
    cases = read_msd(root, include_unlabelled=True)
    assert {c.id: c.has_label for c in cases} == {'case_000': True, 'case_001': False, 'case_002': True, 'case_100': False}
    root2 = write_msd(tmp_path/'Task98_Toy', with_json=True)
    (root2/'labelsTr'/'case_002.nii.gz').unlink()
    with pytest.raises(DataError, match=r'case_002\.nii\.gz'): read_msd(root2)
    with pytest.raises(DataError): read_msd(tmp_path/'no_such_task')


# ---------------------------------------------------------------- ACDC
def test_read_acdc(tmp_path):
    root = write_acdc(tmp_path/'ACDC')
    cases = read_acdc(root)
    assert [c.id for c in cases] == ['patient001_ED', 'patient001_ES', 'patient002_ED', 'patient002_ES']
    assert [c.patient for c in cases] == ['patient001', 'patient001', 'patient002', 'patient002']
    assert [(c.meta['phase'], c.meta['frame'], c.meta['group']) for c in cases] == [
        ('ED', 1, 'DCM'), ('ES', 11, 'DCM'), ('ED', 1, 'NOR'), ('ES', 12, 'NOR')]
    assert all(c.image.shape == (3, 6, 7) and c.spacing == (10.0, 1.5, 1.5) and c.has_label for c in cases)
    assert [c.id for c in read_acdc(root/'training', phases=('ES',))] == ['patient001_ES', 'patient002_ES']
    # missing ground truth -> unlabelled; missing frame / Info.cfg -> DataError naming the file
    (root/'training'/'patient002'/'patient002_frame12_gt.nii.gz').unlink()
    assert [c.has_label for c in read_acdc(root)] == [True, True, True, False]
    (root/'training'/'patient002'/'patient002_frame01.nii.gz').unlink()
    with pytest.raises(DataError, match=r'patient002_frame01\.nii\.gz'): read_acdc(root)
    (root/'training'/'patient001'/'Info.cfg').unlink()
    with pytest.raises(DataError, match=r'Info\.cfg'): read_acdc(root)
    with pytest.raises(DataError): read_acdc(tmp_path)


# ---------------------------------------------------------------- SSL4MIS h5
@pytest.mark.parametrize('slices_in_subfolder', [True, False])
def test_read_acdc_h5(tmp_path, slices_in_subfolder):
    root = write_ssl4mis(tmp_path/'ACDC', slices_in_subfolder)
    cases = read_acdc_h5(root, spacing=(5.0, 1.5, 1.5))
    assert [(c.id, c.patient, c.meta['list']) for c in cases] == [
        ('patient001_frame01', 'patient001', 'train'), ('patient001_frame12', 'patient001', 'train'),
        ('patient002_frame01', 'patient002', 'val'), ('patient002_frame14', 'patient002', 'val'),
        ('patient003_frame01', 'patient003', 'test'), ('patient004_frame01', 'patient004', 'train')]
    assert all(c.spacing == (5.0, 1.5, 1.5) and c.meta['spacing_known'] is False for c in cases)
    stacked = cases[-1]
    assert stacked.image.shape == (4, 8, 8) and list(stacked.image[:, 0, 0]) == [0, 1, 2, 10]
    assert list(stacked.label[:, 0, 0]) == [0, 1, 2, 2]
    assert cases[0].image.shape == (4, 8, 8) and cases[0].image.max() > 0   # the volume, not the stray slice
    assert read_acdc_h5(root)[0].spacing == (1.0, 1.0, 1.0)

def test_read_acdc_h5_errors(tmp_path):
    root = write_ssl4mis(tmp_path/'ACDC')
    truncate(root/'data'/'patient002_frame01.h5')
    with pytest.raises(DataError, match=r'patient002_frame01\.h5'): read_acdc_h5(root)
    root2 = write_ssl4mis(tmp_path/'ACDC2')
    (root2/'test.list').write_text('patient003_frame01\npatient009_frame01\n')
    with pytest.raises(DataError, match='patient009_frame01'): read_acdc_h5(root2)
    with pytest.raises(DataError, match='data'): read_acdc_h5(tmp_path)


# ---------------------------------------------------------------- MoNuSeg (real sample)
def _dice(a, b):
    return 2 * np.logical_and(a, b).sum() / (a.sum() + b.sum())

@pytest.mark.parametrize('subset', ['train', 'test'])
def test_read_monuseg_real_sample(subset):
    folder = MONUSEG/subset
    assert folder.is_dir(), (f"The MoNuSeg sample is missing: expected '{folder}' (the shared data folder next to the repository, "
                             "../shared/data/monuseg2018_sample, or set SEMICONTRAST_SHARED). Restore it; this test must not be skipped.")
    cases = read_monuseg(folder)
    tiles = sorted(p.stem for p in (folder/'images').glob('*.tif'))
    assert [c.id for c in cases] == tiles and len(tiles) >= 2
    for c in cases:
        H, W = c.image.shape[-2:]
        assert c.image.shape == (3, 1, H, W) and c.image.dtype == np.float32 and c.image.max() > 1
        assert c.label.shape == (1, H, W) and set(np.unique(c.label)) <= {0, 1}
        assert c.spacing == (1.0, 1.0, 1.0) and c.meta['spacing_unit'] == 'pixel'
        inst = c.meta['instances']
        assert inst.shape == (1, H, W) and inst.dtype == np.int32
        mask = np.asarray(Image.open(folder/'masks'/f'{c.id}.png')) > 0
        assert _dice(c.label[0] > 0, mask) >= 0.98, c.id
        n_regions = len(re.findall(r'<Region\s', (folder/'annotations_xml'/f'{c.id}.xml').read_text()))
        assert c.meta['n_regions'] == n_regions and inst.max() == n_regions
        assert len(np.unique(inst)) - 1 >= 0.99 * n_regions    # a nucleus fully covered by a later one may vanish

def test_read_monuseg_errors(tmp_path):
    root = write_monuseg(tmp_path/'mn')
    c, = read_monuseg(root)
    assert c.label.sum() > 0 and c.meta['n_regions'] == 1
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root/'images'/'orphan.tif')
    with pytest.raises(DataError, match=r'orphan'): read_monuseg(root)
    (root/'images'/'orphan.tif').unlink()
    (root/'annotations_xml'/'tile.xml').write_text('<Annotations><Annotation>')
    with pytest.raises(DataError, match=r'tile\.xml'): read_monuseg(root)


# ---------------------------------------------------------------- embedded hippocampus and load_dataset
def test_load_hippocampus():
    cases = load_hippocampus()
    assert len(cases) == 65 and len({c.id for c in cases}) == 65
    assert [c.id for c in cases] == sorted(c.id for c in cases)
    for c in cases:
        assert c.image.dtype == np.float32 and c.image.ndim == 3 and np.isfinite(c.image).all()
        assert set(np.unique(c.label)) <= {0, 1, 2} and c.spacing == (1.0, 1.0, 1.0)
    assert set(np.unique(np.concatenate([c.label.ravel() for c in cases]))) == {0, 1, 2}
    assert [c.id for c in load_hippocampus(3)] == [c.id for c in cases[:3]]
    assert (hippocampus_path()/'LICENSE.md').exists()
    cs, info = load_dataset('hippocampus')
    assert isinstance(info, DatasetInfo) and info.n_classes == 3 and len(cs) == 65 and info.intensity == 'zscore'
    assert info.to_dict()['class_names'] == ['background', 'anterior', 'posterior']

def test_load_dataset_names_and_paths(tmp_path):
    cs, info = load_dataset('phantom', n=3)
    assert len(cs) == 3 and info.n_classes == 3
    with pytest.raises(DataError, match='hippocampus'): load_dataset('no_such_dataset_name')
    cs, info = load_dataset(write_msd(tmp_path/'Task99_Toy'))
    assert info.format == 'msd' and info.n_classes == 3 and info.modality == 'MRI'
    cs, info = load_dataset(write_acdc(tmp_path/'ACDC'))
    assert info.format == 'acdc' and info.class_names == ['background', 'RV', 'MYO', 'LV'] and len(cs) == 4


# ---------------------------------------------------------------- phantoms
def test_synthetic_phantoms():
    a, b = synthetic_phantoms(4, seed=3), synthetic_phantoms(4, seed=3)
    assert [c.id for c in a] == ['phantom_000', 'phantom_001', 'phantom_002', 'phantom_003']
    for x, y in zip(a, b):
        assert np.array_equal(x.image, y.image) and np.array_equal(x.label, y.label)
        assert x.image.shape == (12, 48, 48) and x.image.dtype == np.float32 and x.spacing == (2.0, 1.0, 1.0)
        assert set(np.unique(x.label)) == {0, 1, 2}
    c = synthetic_phantoms(4, seed=4)
    assert not any(np.array_equal(x.image, y.image) for x, y in zip(a, c))
    assert not np.array_equal(a[0].label, a[1].label)                  # cases differ from each other
    for x in synthetic_phantoms(3, shape=(8, 32, 32), n_classes=5, seed=1):
        assert set(np.unique(x.label)) == set(range(5))
    # classes have distinct intensities, but noise makes a single threshold imperfect
    x = a[0]; means = [x.image[x.label == k].mean() for k in range(3)]
    assert means[0] < means[1] < means[2]
    assert not synthetic_phantoms(1, labelled=False)[0].has_label


# ---------------------------------------------------------------- format detection
def test_detect_format(tmp_path):
    assert detect_format(write_msd(tmp_path/'msd')) == 'msd'
    assert detect_format(write_acdc(tmp_path/'acdc')) == 'acdc'
    assert detect_format(tmp_path/'acdc'/'training') == 'acdc'
    assert detect_format(write_ssl4mis(tmp_path/'h5')) == 'acdc_h5'
    assert detect_format(write_monuseg(tmp_path/'mn')) == 'monuseg'
    assert detect_format(save_nii(tmp_path/'one.nii.gz', np.zeros((3, 3, 3), np.float32))) == 'nifti'
    assert detect_format(hippocampus_path()) == 'msd'
    (tmp_path/'other').mkdir(); (tmp_path/'other'/'readme.txt').write_text('x')
    with pytest.raises(DataError, match='--format'): detect_format(tmp_path/'other')
    with pytest.raises(DataError): detect_format(tmp_path/'nope')
