"Contract tests for semicontrast.superpixels: Felzenszwalb wrapper, disk cache, slice geometry, region warping."
import warnings
import numpy as np
import pytest, torch
import torch.nn.functional as F
from skimage.segmentation import felzenszwalb
from semicontrast.core import DataError
from semicontrast.data import load_dataset, synthetic_phantoms
from semicontrast.loaders import Preprocess, SliceDataset
from semicontrast.augment import random_affine, warp, TwoViews, correspondence, align
from semicontrast.superpixels import (felzenszwalb_slice, felzenszwalb_volume, SuperpixelCache, superpixels_for,
                                      warp_regions, same_partition, partition_agreement)

torch.set_num_threads(1)


def blocks(n=4, size=12, seed=0, lo=0.2, hi=1.0):
    vals = np.random.default_rng(seed).permutation(np.linspace(lo, hi, n * n)).reshape(n, n)
    return np.kron(vals, np.ones((size, size))).astype(np.float32)


def unit(x):
    x = np.asarray(x, np.float64)
    return (x - x.min()) / (x.max() - x.min())


def bijection(a, b):
    "Independent check: a label map a->b and b->a, both functions."
    a, b = np.asarray(a).ravel(), np.asarray(b).ravel()
    ab, ba = {}, {}
    for x, y in zip(a.tolist(), b.tolist()):
        if ab.setdefault(x, y) != y or ba.setdefault(y, x) != x: return False
    return True


@pytest.fixture(scope='module')
def hippo():
    return load_dataset('hippocampus')[0][0]


# ---------------------------------------------------------------- wrapper
@pytest.mark.parametrize('params', [dict(), dict(scale=300, sigma=0.8, min_size=10), dict(scale=20, sigma=0.0, min_size=1)])
def test_wrapper_matches_skimage_on_hippocampus(hippo, params):
    for z in (hippo.n_slices // 3, hippo.n_slices // 2):
        sl = hippo.image[z]
        ours = felzenszwalb_slice(sl, **params)
        kw = dict(scale=100, sigma=0.5, min_size=20) | params
        ref = felzenszwalb(unit(sl), channel_axis=None, **kw)
        assert ours.dtype == np.int32 and ours.shape == sl.shape
        assert np.array_equal(np.unique(ours), np.arange(ours.max() + 1))
        assert ours.max() >= 1
        assert bijection(ours, ref) and same_partition(ours, ref)


def test_wrapper_matches_skimage_on_synthetic():
    rng = np.random.default_rng(0)
    img = blocks() + 0.02 * rng.standard_normal((48, 48)).astype(np.float32)
    ours = felzenszwalb_slice(img, scale=50, sigma=0.5, min_size=10)
    ref = felzenszwalb(unit(img), scale=50, sigma=0.5, min_size=10, channel_axis=None)
    assert bijection(ours, ref)
    assert not bijection(ours, np.where(ours == 1, 0, ours))  # the check can fail


def test_wrapper_blocks_range_and_constant():
    img = blocks()
    r = felzenszwalb_slice(img, sigma=0, min_size=5)
    assert r.max() + 1 == 16
    for i in range(4):
        for j in range(4): assert len(np.unique(r[12*i:12*i+12, 12*j:12*j+12])) == 1
    assert np.array_equal(felzenszwalb_slice(img * 3000 - 1000, sigma=0, min_size=5), r)   # any float range
    assert np.array_equal(felzenszwalb_slice((img * 255).astype(np.uint8), sigma=0, min_size=5), r)
    assert np.array_equal(felzenszwalb_slice(torch.from_numpy(img), sigma=0, min_size=5), r)
    assert np.array_equal(felzenszwalb_slice(np.full((9, 7), -4.5)), np.zeros((9, 7), np.int32))


def test_volume_is_per_slice(hippo):
    vol = hippo.image[10:13]
    v = felzenszwalb_volume(vol)
    assert v.shape == vol.shape and v.dtype == np.int32
    for z in range(3): assert np.array_equal(v[z], felzenszwalb_slice(vol[z]))


@pytest.mark.parametrize('call,name', [
    (lambda: felzenszwalb_slice(np.zeros((2, 8, 8))), 'img2d'),
    (lambda: felzenszwalb_slice(np.zeros(8)), 'img2d'),
    (lambda: felzenszwalb_slice(np.zeros((8, 8)), scale=0), 'scale'),
    (lambda: felzenszwalb_slice(np.zeros((8, 8)), scale=-1), 'scale'),
    (lambda: felzenszwalb_slice(np.zeros((8, 8)), scale=float('nan')), 'scale'),
    (lambda: felzenszwalb_slice(np.zeros((8, 8)), min_size=0), 'min_size'),
    (lambda: felzenszwalb_slice(np.zeros((8, 8)), min_size=2.5), 'min_size'),
    (lambda: felzenszwalb_slice(np.zeros((8, 8)), sigma=-1), 'sigma'),
    (lambda: felzenszwalb_slice(np.array([[0, np.nan], [1, 2]])), 'img2d'),
    (lambda: felzenszwalb_volume(np.zeros((8, 8))), 'vol'),
    (lambda: felzenszwalb_volume(np.zeros((2, 8, 8)), scale=0), 'scale'),
])
def test_clear_errors(call, name):
    with pytest.raises(DataError, match=name): call()


# ---------------------------------------------------------------- cache
def test_cache_hit_miss_repair(tmp_path, hippo):
    vol = hippo.image[5:9]
    c = SuperpixelCache(tmp_path / 'sp')
    a = c.get(hippo.id, vol)
    assert (c.hits, c.misses, c.repairs) == (0, 1, 0)
    assert np.array_equal(a, felzenszwalb_volume(vol)) and a.dtype == np.int32
    b = c.get(hippo.id, vol)
    assert (c.hits, c.misses, c.repairs) == (1, 1, 0) and np.array_equal(a, b)
    # a fresh cache object on the same folder reads the entry from disk
    c2 = SuperpixelCache(tmp_path / 'sp')
    assert np.array_equal(c2.get(hippo.id, vol), a) and (c2.hits, c2.misses) == (1, 0)
    # parameter change: miss, different result
    d = c.get(hippo.id, vol, scale=400)
    assert (c.hits, c.misses) == (1, 2) and not np.array_equal(d, a)
    c.get(hippo.id, vol, min_size=21); c.get(hippo.id, vol, sigma=0.6)
    assert c.misses == 4
    c.get(hippo.id, vol, scale=400.0)  # same value, float spelling: a hit
    assert c.hits == 2
    # changed image: miss (also a changed dtype with equal values)
    v2 = vol.copy(); v2[1, 3, 3] += 5
    c.get(hippo.id, v2); assert c.misses == 5
    c.get(hippo.id, vol.astype(np.float64)); assert c.misses == 6
    assert len(c) == 6 and not [q for q in (tmp_path / 'sp').iterdir() if q.name.startswith('.')]   # no temporary file left
    # truncated entry: warning naming the file, recomputed, rewritten
    p = c.path(hippo.id, vol)
    p.write_bytes(p.read_bytes()[:50])
    with pytest.warns(UserWarning, match=p.name):
        r = c.get(hippo.id, vol)
    assert np.array_equal(r, a) and c.repairs == 1
    assert np.array_equal(c.get(hippo.id, vol), a) and c.repairs == 1 and c.hits == 3
    # garbage entry
    p.write_bytes(b'not a zip file at all')
    with pytest.warns(UserWarning, match=p.name): c.get(hippo.id, vol)
    assert c.repairs == 2


def test_cache_rejects_wrong_shape_and_key(tmp_path):
    img = np.stack([blocks(seed=s) for s in range(2)])
    c = SuperpixelCache(tmp_path)
    good = c.get('x', img)
    p = c.path('x', img)
    with np.load(p) as z: key = str(z['key'])
    np.savez_compressed(p, regions=np.zeros((2, 10, 10), np.int32), key=np.array(key))   # shape disagrees
    with pytest.warns(UserWarning, match='shape'): assert np.array_equal(c.get('x', img), good)
    np.savez_compressed(p, regions=good, key=np.array('0' * 64))                           # wrong key
    with pytest.warns(UserWarning, match='key'): assert np.array_equal(c.get('x', img), good)
    assert c.repairs == 2
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        assert np.array_equal(c.get('x', img), good)    # repaired for good: a silent hit
    assert c.hits == 1


def test_cache_errors(tmp_path):
    f = tmp_path / 'file'; f.write_text('x')
    with pytest.raises(DataError, match='root'): SuperpixelCache(f)
    c = SuperpixelCache(tmp_path / 'c')
    with pytest.raises(DataError, match='image'): c.get('x', np.zeros((8, 8)))
    with pytest.raises(DataError, match='scale'): c.get('x', np.zeros((1, 8, 8)), scale=0)
    with pytest.raises(DataError, match='min_size'): c.get('x', np.zeros((1, 8, 8)), min_size=0)
    assert (c.hits, c.misses, c.repairs) == (0, 0, 0)


# ---------------------------------------------------------------- slice geometry
@pytest.mark.parametrize('spatial', ['pad', 'resize'])
def test_superpixels_for_aligned_with_slice_dataset(tmp_path, spatial):
    cases = synthetic_phantoms(n=2, shape=(4, 40, 28))
    prep = Preprocess(size=(32, 32), spatial=spatial)
    ds = SliceDataset(cases, prep, labelled=False)
    cache = SuperpixelCache(tmp_path)
    R = superpixels_for(cases, prep, cache=cache, scale=50)
    assert R.shape == (len(ds), 32, 32) and R.dtype == torch.int32
    assert cache.misses == 2
    assert torch.equal(superpixels_for(cases, prep, cache=cache, scale=50), R) and cache.hits == 2
    assert torch.equal(superpixels_for(cases, prep, scale=50), R)          # no cache: the same
    i = 0
    for c in cases:
        native = felzenszwalb_volume(prep.normalise(c.image), scale=50)
        for z in range(c.n_slices):
            if spatial == 'pad':   # H 40 -> crop 4..36, W 28 -> pad 2..30
                assert (R[i, :, :2] == -1).all() and (R[i, :, 30:] == -1).all()
                assert torch.equal(R[i, :, 2:30], torch.from_numpy(native[z, 4:36]))
                assert torch.equal(ds.x[i, 0, :, 2:30], torch.from_numpy(prep.normalise(c.image)[z, 4:36]))
            else:
                assert (R[i] >= 0).all()
                ref = F.interpolate(torch.from_numpy(native[z])[None, None].double(), size=(32, 32), mode='nearest-exact')
                assert torch.equal(R[i], ref[0, 0].to(torch.int32))
            i += 1


def test_superpixels_for_errors():
    cases = synthetic_phantoms(n=1, shape=(4, 16, 16))
    with pytest.raises(DataError, match='prep'): superpixels_for(cases, None)
    with pytest.raises(DataError, match='scale'): superpixels_for(cases, Preprocess(size=(16, 16)), scale=-1)
    with pytest.raises(DataError, match='bogus'): superpixels_for(cases, Preprocess(size=(16, 16)), bogus=1)
    assert superpixels_for([], Preprocess(size=(16, 16))).shape == (0, 16, 16)


# ---------------------------------------------------------------- transforms
def interior(reg):
    p = F.pad(reg[:, None].double(), (1, 1, 1, 1), mode='replicate')
    mx = F.max_pool2d(p, 3, 1)[:, 0]; mn = -F.max_pool2d(-p, 3, 1)[:, 0]
    return (mx == mn) & (reg >= 0)


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_regions_of_warped_image_match_warped_regions(seed):
    imgs = torch.from_numpy(np.stack([blocks(seed=10 * seed + s) for s in range(3)]))
    regs = torch.from_numpy(np.stack([felzenszwalb_slice(i, sigma=0) for i in imgs]))
    theta = random_affine(3, scale=(0.7, 1.0), rotate=25, generator=torch.Generator().manual_seed(seed))
    wimg = warp(imgs[:, None], theta, mode='bilinear')[:, 0]
    wreg = warp_regions(regs, theta)
    assert wreg.dtype == torch.int32 and wreg.shape == regs.shape
    assert set(wreg.unique().tolist()) <= set(range(-1, 16))    # no invented ids
    m = interior(wreg)
    for b in range(3):
        assert m[b].float().mean() > 0.4
        seg = felzenszwalb_slice(wimg[b].numpy(), sigma=0)
        assert partition_agreement(seg, wreg[b].numpy(), m[b].numpy()) >= 0.95


def test_warp_regions_identity_outside_and_sizes():
    regs = torch.from_numpy(np.stack([felzenszwalb_slice(blocks(seed=s), sigma=0) for s in range(2)]))
    eye = torch.tensor([[1., 0, 0], [0, 1, 0]])
    assert torch.equal(warp_regions(regs, eye), regs)
    assert torch.equal(warp_regions(regs.numpy(), eye[None].repeat(2, 1, 1)), regs)   # numpy input, (B,2,3)
    shift = torch.tensor([[1., 0, 1.0], [0, 1, 0]])       # view looks half an image to the right
    w = warp_regions(regs.long(), shift)
    assert w.dtype == torch.int64 and (w[:, :, 25:] == -1).all() and torch.equal(w[:, :, :23], regs[:, :, 24:47])
    assert warp_regions(regs, eye, size=(24, 24)).shape == (2, 24, 24)


def test_two_views_regions_correspond():
    imgs = torch.from_numpy(np.stack([blocks(seed=s) for s in range(4)]))
    regs = torch.from_numpy(np.stack([felzenszwalb_slice(i, sigma=0) for i in imgs]))
    v = TwoViews(photometric=False, seed=3)(imgs[:, None], extra=regs)
    assert torch.equal(v['extra1'], warp_regions(regs, v['theta1']))
    assert torch.equal(v['extra2'], warp_regions(regs, v['theta2']))
    grid, valid = correspondence(v['theta1'], v['theta2'], (48, 48), (48, 48))
    back = align(v['extra2'], grid, mode='nearest')
    ok = valid & interior(v['extra1']) & interior(back)
    assert ok.sum() > 0.3 * ok.numel()
    assert (back[ok] == v['extra1'][ok]).float().mean() >= 0.99


@pytest.mark.parametrize('call,name', [
    (lambda: warp_regions(torch.zeros(8, 8, dtype=torch.int32), torch.eye(2, 3)), 'regions'),
    (lambda: warp_regions(torch.zeros(1, 8, 8), torch.eye(2, 3)), 'regions'),
    (lambda: warp_regions(torch.zeros(1, 8, 8, dtype=torch.uint8), torch.eye(2, 3)), 'regions'),
    (lambda: warp_regions(torch.zeros(2, 8, 8, dtype=torch.int32), torch.zeros(3, 2, 3)), 'theta'),
    (lambda: warp_regions(torch.zeros(2, 8, 8, dtype=torch.int32), torch.zeros(2, 3, 3)), 'theta'),
])
def test_warp_regions_errors(call, name):
    with pytest.raises(DataError, match=name): call()


def test_partition_helpers():
    r = felzenszwalb_slice(blocks(), sigma=0)
    perm = np.random.default_rng(0).permutation(16)
    assert same_partition(r, perm[r]) and partition_agreement(r, perm[r]) == 1.0
    merged = np.where(r == 1, 0, r)
    assert not same_partition(r, merged) and not same_partition(merged, r)
    assert partition_agreement(r, merged) == pytest.approx(1 - 144 / 48 ** 2)
    assert same_partition(r, merged, mask=merged != 0)
    with pytest.raises(DataError): same_partition(r, r[:10])


def test_superpixels_for_multichannel():
    from semicontrast.data import Case
    rng = np.random.default_rng(0)
    img = np.stack([np.stack([blocks(size=4)] * 3), np.stack([blocks(size=4, seed=1)] * 3)]).astype(np.float32)  # (2,3,16,16)
    img += 0.01 * rng.standard_normal(img.shape).astype(np.float32)
    case = Case('mc', img, None, (1.0, 1.0, 1.0))
    prep = Preprocess(size=(16, 16))
    R = superpixels_for([case], prep, sigma=0, min_size=2)
    assert R.shape == (3, 16, 16) and len(SliceDataset([case], prep, labelled=False)) == 3
    assert torch.equal(R[0], torch.from_numpy(felzenszwalb_slice(prep.normalise(img).mean(0)[0], sigma=0, min_size=2)))
