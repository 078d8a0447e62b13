"Contract tests for semicontrast.metrics: known answers, a brute-force surface-distance reference, empty rules, evaluation loop."
import math
import numpy as np
import pytest, torch
from torch import nn
from scipy.ndimage import gaussian_filter
from semicontrast.core import DataError
from semicontrast.data import Case
from semicontrast.metrics import volume_metrics, summarize, predict_volume, evaluate

torch.set_num_threads(1)


# ---------------- brute-force reference (independent of MONAI) ----------------
def surface(mask):
    "Foreground voxels with at least one face neighbour (2*ndim of them) outside the mask; outside the array counts as background."
    m = np.pad(mask.astype(bool), 1)
    inner = m.copy()
    for ax in range(mask.ndim):
        inner &= np.roll(m, 1, ax) & np.roll(m, -1, ax)
    core = tuple(slice(1, -1) for _ in range(mask.ndim))
    return mask.astype(bool) & ~inner[core]

def ref_metrics(p, g, spacing):
    p, g = p.astype(bool), g.astype(bool)
    dice = 2 * (p & g).sum() / (p.sum() + g.sum())
    sp = np.asarray(spacing, float)
    A, B = np.argwhere(surface(p)) * sp, np.argwhere(surface(g)) * sp
    D = np.sqrt(((A[:, None, :] - B[None, :, :]) ** 2).sum(-1))        # all pairs, mm
    d_ab, d_ba = D.min(1), D.min(0)
    hd95 = max(np.percentile(d_ab, 95), np.percentile(d_ba, 95))      # MONAI: max of the directed 95th percentiles
    asd = np.concatenate([d_ab, d_ba]).mean()                          # symmetric: mean of the pooled set
    return dict(dice=dice, hd95=hd95, asd=asd)

def blobs(shape, seed, n_classes=3, sigma=1.5, thr=0.6):
    rng = np.random.default_rng(seed)
    lab = np.zeros(shape, np.uint8)
    for c in range(1, n_classes):
        f = gaussian_filter(rng.standard_normal(shape), sigma)
        f /= f.std()
        lab[(f > thr) & (lab == 0)] = c
    return lab


# ---------------- known answers ----------------
def test_surface_reference_on_cube():
    m = np.zeros((6, 6, 6), bool); m[1:5, 1:5, 1:5] = True
    assert surface(m).sum() == 64 - 8


def test_shifted_cubes_by_hand():
    A = np.zeros((12, 8, 8), np.uint8); A[2:6, 2:6, 2:6] = 1
    B = np.zeros((12, 8, 8), np.uint8); B[4:8, 2:6, 2:6] = 1
    m = volume_metrics(B, A, (3.0, 1.0, 1.0), 2)
    assert set(m) == {1} and set(m[1]) == {'dice', 'hd95', 'asd'}
    assert all(type(v) is float for v in m[1].values())
    # overlap 2 slices of 16 voxels: 2*32/(64+64)
    assert m[1]['dice'] == pytest.approx(0.5)
    # each surface (56 voxels) -> distances {0 x24, 1 x4, 3 x12, 6 x16} mm in both directions
    assert m[1]['hd95'] == pytest.approx(6.0, abs=1e-5)
    assert m[1]['asd'] == pytest.approx((16 * 6 + 12 * 3 + 4 * 1) / 56, rel=1e-6)
    # isotropic 1 mm: distances {0 x24, 1 x16, 2 x16} -> hd95 2, asd (16+32)/56
    m = volume_metrics(B, A, (1.0, 1.0, 1.0), 2)
    assert m[1]['hd95'] == pytest.approx(2.0, abs=1e-5)
    assert m[1]['asd'] == pytest.approx(48 / 56, rel=1e-6)
    # symmetric in its arguments
    assert volume_metrics(A, B, (3, 1, 1), 2)[1] == pytest.approx(volume_metrics(B, A, (3, 1, 1), 2)[1])


def test_shift_in_plane_uses_in_plane_spacing():
    A = np.zeros((6, 10, 10), np.uint8); A[1:5, 2:6, 2:6] = 1
    B = np.roll(A, 3, axis=2)                      # 3 voxels along x at 0.5 mm
    m = volume_metrics(B, A, (4.0, 1.0, 0.5), 2)
    r = ref_metrics(B == 1, A == 1, (4.0, 1.0, 0.5))
    assert m[1]['dice'] == pytest.approx(2 * 4 * 4 * 1 / 128)
    assert m[1]['hd95'] == pytest.approx(r['hd95'], rel=1e-5)
    assert m[1]['hd95'] <= 1.5 + 1e-6             # never more than the 3 x 0.5 mm shift


def test_identical_volumes():
    lab = blobs((8, 16, 16), seed=1, n_classes=4)
    m = volume_metrics(lab, lab.copy(), (2.5, 0.8, 0.8), 4)
    for c in (1, 2, 3):
        if (lab == c).any(): assert m[c] == {'dice': 1.0, 'hd95': 0.0, 'asd': 0.0}


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (3.0, 1.0, 1.0), (1.5, 0.7, 0.9)])
def test_random_blobs_against_brute_force(seed, spacing):
    shape = (8, 14, 12)
    g = blobs(shape, seed)
    p = g.copy()
    rng = np.random.default_rng(100 + seed)
    p = np.where(rng.random(shape) < 0.08, rng.integers(0, 3, shape), p).astype(np.uint8)   # salt noise
    p = np.roll(p, int(rng.integers(-1, 2)), axis=int(rng.integers(0, 3)))
    m = volume_metrics(p, g, spacing, 3)
    for c in (1, 2):
        assert (p == c).any() and (g == c).any()
        r = ref_metrics(p == c, g == c, spacing)
        for k in ('dice', 'hd95', 'asd'):
            assert m[c][k] == pytest.approx(r[k], rel=1e-5, abs=1e-6), (c, k)


def test_single_slice_is_scored_in_2d():
    g = blobs((1, 20, 20), seed=4, n_classes=2, sigma=2.0, thr=0.3)
    p = np.roll(g, 2, axis=1)
    m = volume_metrics(p, g, (5.0, 0.5, 0.5), 2)
    r = ref_metrics(p[0] == 1, g[0] == 1, (0.5, 0.5))
    for k in ('dice', 'hd95', 'asd'):
        assert m[1][k] == pytest.approx(r[k], rel=1e-5, abs=1e-6)
    e = volume_metrics(np.zeros_like(g), g, (5.0, 0.5, 0.5), 2)
    assert e[1]['hd95'] == pytest.approx(math.hypot(10, 10))


# ---------------- empty structures ----------------
def test_empty_rules():
    shape, sp = (10, 8, 6), (3.0, 1.0, 2.0)
    diag = math.sqrt(30 ** 2 + 8 ** 2 + 12 ** 2)
    g = np.zeros(shape, np.uint8); g[2:5, 2:5, 1:4] = 1
    z = np.zeros(shape, np.uint8)
    both = volume_metrics(z, z, sp, 2)[1]
    assert both == {'dice': 1.0, 'hd95': 0.0, 'asd': 0.0}
    for p, t in ((z, g), (g, z)):
        one = volume_metrics(p, t, sp, 2)[1]
        assert one['dice'] == 0.0
        assert one['hd95'] == pytest.approx(diag) and one['asd'] == pytest.approx(diag)
        assert all(math.isfinite(v) for v in one.values())
    # mixed classes in one call: class 2 only in target, class 3 in neither
    t = g.copy(); t[7:9, 5:7, 4:6] = 2
    m = volume_metrics(g, t, sp, 4)
    assert m[1]['dice'] == 1.0 and m[2]['dice'] == 0.0 and m[2]['hd95'] == pytest.approx(diag)
    assert m[3] == {'dice': 1.0, 'hd95': 0.0, 'asd': 0.0}


# ---------------- validation ----------------
def test_validation_errors():
    g = np.zeros((4, 8, 8), np.uint8); g[1:3, 2:5, 2:5] = 1
    with pytest.raises(ValueError, match='shape'): volume_metrics(g[:3], g, (1, 1, 1), 2)
    with pytest.raises(ValueError, match='integer'): volume_metrics(g.astype(np.float32), g, (1, 1, 1), 2)
    with pytest.raises(ValueError, match='integer'): volume_metrics(g.astype(bool), g, (1, 1, 1), 2)
    bad = g.astype(np.int16); bad[0, 0, 0] = 5; bad[0, 0, 1] = -1
    with pytest.raises(ValueError, match=r'pred has values \[-1, 5\]'): volume_metrics(bad, g, (1, 1, 1), 2)
    with pytest.raises(ValueError, match=r'target has values \[2\]'): volume_metrics(g, g * 2, (1, 1, 1), 2)
    with pytest.raises(ValueError, match='spacing'): volume_metrics(g, g, (1, 1), 2)
    with pytest.raises(ValueError, match='spacing'): volume_metrics(g, g, (1, 0, 1), 2)
    with pytest.raises(ValueError): volume_metrics(g[0], g[0], (1, 1, 1), 2)        # 2D array
    with pytest.raises(ValueError): volume_metrics(g, g, (1, 1, 1), 1)
    # torch tensors are accepted
    assert volume_metrics(torch.from_numpy(g), torch.from_numpy(g).long(), (1, 1, 1), 2)[1]['dice'] == 1.0


# ---------------- summarize ----------------
PC = {'a': {1: dict(dice=0.9, hd95=2., asd=1.), 2: dict(dice=0.5, hd95=10., asd=3.)},
      'b': {1: dict(dice=0.7, hd95=4., asd=1.), 2: dict(dice=0.3, hd95=6., asd=1.)},
      'c': {1: dict(dice=0.8, hd95=0., asd=4.), 2: dict(dice=1.0, hd95=2., asd=2.)}}

def test_summarize_by_hand():
    s = summarize(PC, ['bg', 'LV', 'RV'])
    assert set(s) == {'per_class', 'mean', 'std', 'absent_classes'} and s['absent_classes'] == []
    assert set(s['per_class']) == {'LV', 'RV'}
    lv = [0.9, 0.7, 0.8]
    assert s['per_class']['LV']['dice']['mean'] == pytest.approx(sum(lv) / 3)
    assert s['per_class']['LV']['dice']['std'] == pytest.approx(math.sqrt(sum((v - 0.8) ** 2 for v in lv) / 3))
    case_dice = [0.7, 0.5, 0.9]            # class-averaged per case
    mu = sum(case_dice) / 3
    assert s['mean']['dice'] == pytest.approx(mu)
    assert s['std']['dice'] == pytest.approx(math.sqrt(sum((v - mu) ** 2 for v in case_dice) / 3))
    case_hd = [6., 5., 1.]
    assert s['mean']['hd95'] == pytest.approx(4.0)
    assert s['std']['hd95'] == pytest.approx(math.sqrt(((6 - 4) ** 2 + 1 + 9) / 3))
    assert all(type(v) is float for v in s['mean'].values())


def test_summarize_names_and_errors():
    assert set(summarize(PC)['per_class']) == {'class_1', 'class_2'}
    assert set(summarize(PC, {1: 'x', 2: 'y'})['per_class']) == {'x', 'y'}
    with pytest.raises(ValueError, match='no name'): summarize(PC, ['bg', 'LV'])
    with pytest.raises(ValueError): summarize({})
    bad = dict(PC); bad['d'] = {1: dict(dice=1., hd95=0., asd=0.)}
    with pytest.raises(ValueError, match="'d'"): summarize(bad)
    one = summarize({'a': PC['a']})
    assert one['std'] == {'dice': 0.0, 'hd95': 0.0, 'asd': 0.0}


# ---------------- predict_volume / evaluate ----------------
class StubPrep:
    "Minimal object with the three Preprocess methods predict_volume may use; records calls."
    def __init__(self, offset=0.0): self.offset, self.n_slices, self.normalised = offset, 0, 0
    def normalise(self, image):
        self.normalised += 1
        return np.asarray(image, np.float32) + self.offset
    def slice_to_model(self, img, lbl=None):
        assert lbl is None and img.ndim == 3
        self.n_slices += 1
        return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32)), None
    def logits_to_volume(self, logits, spatial_shape):
        assert tuple(logits.shape[:1]) == tuple(spatial_shape[:1]) and tuple(logits.shape[2:]) == tuple(spatial_shape[1:])
        return logits.argmax(1).numpy().astype(np.uint8)

class NearestClass(nn.Module):
    "Predicts the class whose id is nearest to channel 0's intensity; has one (unused) parameter."
    def __init__(self, K):
        super().__init__(); self.K = K; self.dummy = nn.Parameter(torch.zeros(1)); self.drop = nn.Dropout(0.5)
    def forward(self, x):
        c = torch.arange(self.K, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        return -(x[:, :1] - c) ** 2 + 0 * self.dummy

def label_case(cid, lab, spacing=(2.0, 1.0, 1.0), channels=False):
    img = lab.astype(np.float32)
    if channels: img = np.stack([img, np.random.default_rng(0).random(lab.shape).astype(np.float32)])
    return Case(cid, img, lab, spacing)


@pytest.mark.parametrize("bs", [1, 2, 32])
def test_predict_volume_stub(bs):
    lab = blobs((5, 8, 8), seed=2)
    prep = StubPrep()
    m = NearestClass(3).train()
    out = predict_volume(m, label_case('x', lab), prep, bs=bs)
    assert out.dtype == np.uint8 and out.shape == lab.shape
    assert np.array_equal(out, lab)
    assert prep.normalised == 1 and prep.n_slices == 5
    assert m.training                       # mode restored
    # normalise is really used: +1 shifts every prediction up by one class (clipped at K-1)
    out = predict_volume(m, label_case('x', lab), StubPrep(offset=1.0), bs=bs)
    assert np.array_equal(out, np.minimum(lab + 1, 2))


def test_predict_volume_multichannel_and_device():
    lab = blobs((4, 8, 8), seed=3)
    out = predict_volume(NearestClass(3), label_case('x', lab, channels=True), StubPrep(), device='cpu')
    assert np.array_equal(out, lab)


def test_predict_volume_real_preprocess():
    from semicontrast.loaders import Preprocess
    lab = blobs((3, 20, 12), seed=5)
    prep = Preprocess(size=(32, 32), spatial='pad', intensity='none')
    out = predict_volume(NearestClass(3), label_case('x', lab), prep, bs=2)
    assert out.shape == lab.shape and np.array_equal(out, lab)


def test_evaluate_stub():
    labs = [blobs((6, 10, 10), seed=s) for s in (10, 11)]
    cases = [label_case(f'c{i}', l, spacing=(3.0, 1.0, 1.0)) for i, l in enumerate(labs)]
    r = evaluate(NearestClass(3), cases, StubPrep(), n_classes=3, class_names=['bg', 'a', 'b'])
    assert set(r) == {'per_case', 'per_class', 'mean', 'std', 'absent_classes'}
    assert set(r['per_case']) == {'c0', 'c1'} and set(r['per_class']) == {'a', 'b'}
    assert set(r['per_case']['c0']) == {'a', 'b'}   # per-case scores are keyed by class name, like per_class
    assert r['mean'] == {'dice': 1.0, 'hd95': 0.0, 'asd': 0.0}
    # a model that always predicts background: Dice 0 and the worst-case distance for every present class
    class Bg(nn.Module):
        def forward(self, x): return torch.cat([torch.ones_like(x[:, :1]), torch.zeros_like(x[:, :1]).repeat(1, 2, 1, 1)], 1)
    r = evaluate(Bg(), cases, StubPrep(), n_classes=3)
    diag = math.sqrt(18 ** 2 + 10 ** 2 + 10 ** 2)
    assert r['mean']['dice'] == 0.0 and r['mean']['hd95'] == pytest.approx(diag)
    assert r['per_class']['class_1']['asd']['mean'] == pytest.approx(diag)


def test_evaluate_errors():
    lab = blobs((4, 8, 8), seed=2)
    c = label_case('x', lab)
    with pytest.raises(ValueError, match="'u'"):
        evaluate(NearestClass(3), [c, Case('u', lab.astype(np.float32), None, (1., 1., 1.))], StubPrep(), 3)
    with pytest.raises(ValueError, match='twice'): evaluate(NearestClass(3), [c, c], StubPrep(), 3)
    with pytest.raises(ValueError): evaluate(NearestClass(3), [], StubPrep(), 3)
