"Contracts of semicontrast.loaders: recorded preprocessing, slice datasets, supervised and two-stream DataLoaders."
import json, math
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semicontrast.core import IGNORE_INDEX, DataError, set_seed
from semicontrast.data import Case, synthetic_phantoms
from semicontrast.loaders import (Preprocess, SliceDataset, flip_rot90, supervised_dls, two_stream_dls)


def onehot_model_logits(prep, lbl_vol, K, pad_class=None):
    "One-hot logits (Z,K,h,w) in model space of a label volume; ignore pixels get class `pad_class` (default 0)."
    img = np.zeros((1,) + lbl_vol.shape[1:], np.float32)
    y = torch.stack([prep.slice_to_model(img, l)[1] for l in lbl_vol])
    y = torch.where(y == IGNORE_INDEX, pad_class or 0, y)
    return F.one_hot(y, K).permute(0, 3, 1, 2).float()


# ---------------------------------------------------------------- Preprocess: geometry

@pytest.mark.parametrize('shape', [(3, 20, 27), (2, 31, 16), (2, 32, 32)])
def test_pad_round_trip_smaller_exact(shape):
    "Slices smaller than (or equal to) the window: random labels come back exactly, whatever is predicted in the padding."
    lbl = np.random.default_rng(0).integers(0, 4, shape).astype(np.uint8)
    prep = Preprocess(size=(32, 32), spatial='pad')
    logits = onehot_model_logits(prep, lbl, 4, pad_class=3)   # padding predicts class 3: must be cut away
    back = prep.logits_to_volume(logits, shape)
    assert back.dtype == np.uint8 and back.shape == shape
    np.testing.assert_array_equal(back, lbl)


@pytest.mark.parametrize('H, W', [(40, 52), (41, 50), (35, 20)])
def test_pad_round_trip_larger_crops_centre(H, W):
    lbl = np.random.default_rng(1).integers(1, 3, (2, H, W)).astype(np.uint8)  # no background inside
    h, w = 32, 24
    prep = Preprocess(size=(h, w), spatial='pad')
    back = prep.logits_to_volume(onehot_model_logits(prep, lbl, 3), (2, H, W))
    inside = back > 0
    ys, xs = np.nonzero(inside.any(0).any(1))[0], np.nonzero(inside.any(0).any(0))[0]
    hh, ww = min(h, H), min(w, W)
    assert (len(ys), len(xs)) == (hh, ww)                       # exactly a window of the model size survives ...
    y0, x0 = ys[0], xs[0]
    assert abs(y0 - (H - hh - y0)) <= 1 and abs(x0 - (W - ww - x0)) <= 1   # ... centred ...
    np.testing.assert_array_equal(back[:, y0:y0+hh, x0:x0+ww], lbl[:, y0:y0+hh, x0:x0+ww])  # ... and exact
    assert back.sum() == back[:, y0:y0+hh, x0:x0+ww].sum()       # outside: background


def test_pad_labels_background_and_image_fill():
    "A labelled slice's padding is background (supervised), an unlabelled slice's stays ignored; the image is filled with its minimum."
    prep = Preprocess(size=(16, 20), spatial='pad', intensity='none')
    img = np.arange(10 * 12, dtype=np.float32).reshape(1, 10, 12) + 5
    lbl = np.ones((10, 12), np.uint8)
    x, y = prep.slice_to_model(img, lbl)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert tuple(x.shape) == (1, 16, 20) and tuple(y.shape) == (16, 20)
    assert (y == IGNORE_INDEX).sum().item() == 0
    assert (y == 0).sum().item() == 16 * 20 - 10 * 12               # padding: background
    rows, cols = np.nonzero((y == 1).any(1).numpy())[0], np.nonzero((y == 1).any(0).numpy())[0]
    assert (rows[0], 16 - 1 - rows[-1]) == (3, 3) and (cols[0], 20 - 1 - cols[-1]) == (4, 4)   # centred
    assert (y == 1).sum().item() == 10 * 12
    assert (x[0][y == 0] == 5).all()                                # slice minimum
    assert sorted(x[0][y == 1].tolist()) == sorted(img.ravel().tolist())
    x2, y2 = prep.slice_to_model(img, None)
    assert y2 is None and torch.equal(x2, x)
    # a stack of one labelled and one unlabelled slice: the flag is per slice
    from semicontrast.loaders import _label_to_model
    stack = torch.stack([torch.from_numpy(lbl).long(), torch.full((10, 12), IGNORE_INDEX)])
    ys = _label_to_model(prep, stack)
    assert torch.equal(ys[0], y) and (ys[1] == IGNORE_INDEX).all()
    # a partly labelled slice (some pixels ignored) is labelled: its padding is background, its ignored pixels stay
    part = lbl.astype(np.int64); part[:2] = IGNORE_INDEX
    _, yp = prep.slice_to_model(img, part)
    assert (yp == IGNORE_INDEX).sum().item() == 2 * 12 and (yp == 0).sum().item() == 16 * 20 - 10 * 12


def test_resize_round_trip_approximate_on_smooth_shapes():
    case = synthetic_phantoms(1, shape=(6, 40, 52))[0]
    for size in [(32, 32), (64, 64)]:
        prep = Preprocess(size=size, spatial='resize')
        back = prep.logits_to_volume(onehot_model_logits(prep, case.label, 3), case.spatial_shape)
        assert back.shape == case.spatial_shape
        assert (back == case.label).mean() > 0.97


def test_resize_shapes_and_label_values():
    prep = Preprocess(size=(24, 24), spatial='resize')
    img = np.random.default_rng(0).normal(size=(2, 40, 30)).astype(np.float32)
    lbl = np.zeros((40, 30), np.uint8); lbl[11:29, 5:20] = 2; lbl[0:4] = 3  # borders between sample points
    x, y = prep.slice_to_model(img, lbl)
    assert tuple(x.shape) == (2, 24, 24) and tuple(y.shape) == (24, 24)
    assert set(y.unique().tolist()) == {0, 2, 3}                    # nearest: no invented classes, no ignore
    assert abs((y == 2).float().mean().item() - (lbl == 2).mean()) < 0.05


def test_logits_to_volume_accepts_extra_logit_dtypes_and_refuses_bad_shape():
    prep = Preprocess(size=(16, 16))
    with pytest.raises(DataError, match='logits'):
        prep.logits_to_volume(torch.zeros(3, 2, 8, 8), (3, 10, 10))
    with pytest.raises(DataError, match='logits'):
        prep.logits_to_volume(torch.zeros(4, 2, 16, 16), (3, 10, 10))
    out = prep.logits_to_volume(torch.zeros(3, 2, 16, 16, dtype=torch.float16), (3, 10, 10))
    assert out.dtype == np.uint8 and out.shape == (3, 10, 10)


# ---------------------------------------------------------------- Preprocess: intensities, record, errors

def test_normalisation_values():
    rng = np.random.default_rng(0)
    vol = rng.normal(7, 3, (5, 9, 11)).astype(np.float32)
    z = Preprocess(intensity='zscore').normalise(vol)
    assert z.dtype == np.float32 and z.shape == vol.shape
    np.testing.assert_allclose(z, (vol - vol.mean()) / vol.std(), atol=1e-4)
    m = Preprocess(intensity='minmax').normalise(vol)
    np.testing.assert_allclose(m, (vol - vol.min()) / (vol.max() - vol.min()), atol=1e-6)
    w = Preprocess(intensity='window', window=(-100, 300)).normalise(np.array([[[-1000, -100, 100, 300, 2000]]], np.float32))
    np.testing.assert_allclose(w.ravel(), [0, 0, 0.5, 1, 1], atol=1e-6)
    np.testing.assert_array_equal(Preprocess(intensity='none').normalise(vol), vol)
    # per channel for (C,Z,H,W)
    two = np.stack([vol, 1000 + 50 * vol])
    z2 = Preprocess().normalise(two)
    for c in range(2):
        assert abs(z2[c].mean()) < 1e-4 and abs(z2[c].std() - 1) < 1e-3
    # a constant volume gives finite values
    assert np.isfinite(Preprocess().normalise(np.full((2, 3, 3), 4, np.float32))).all()
    assert np.isfinite(Preprocess(intensity='minmax').normalise(np.full((2, 3, 3), 4, np.float32))).all()


def test_zscore_is_per_volume_not_per_slice():
    vol = np.stack([np.full((4, 4), v, np.float32) for v in (0, 1, 2, 3)])
    z = Preprocess().normalise(vol)
    assert len(np.unique(z.round(5))) == 4                           # slices keep their relative brightness


def test_to_dict_round_trip_through_json():
    for p in [Preprocess(), Preprocess(size=(96, 128), spatial='resize', intensity='window', window=(-160, 240))]:
        d = json.loads(json.dumps(p.to_dict()))
        assert Preprocess.from_dict(d) == p
        assert set(d) >= {'size', 'spatial', 'intensity', 'window'}
    with pytest.raises(DataError, match='colour'):
        Preprocess.from_dict({'size': [8, 8], 'colour': 'red'})


@pytest.mark.parametrize('kw, word', [
    (dict(spatial='crop'), 'spatial'), (dict(intensity='hist'), 'intensity'), (dict(intensity='window'), 'window'),
    (dict(intensity='window', window=(5, 1)), 'window'), (dict(window=(0, 1)), 'window'),
    (dict(size=(0, 64)), 'size'), (dict(size=(64, -8)), 'size'), (dict(size=(64,)), 'size'), (dict(size=(32.5, 32)), 'size'),
])
def test_preprocess_refusals(kw, word):
    with pytest.raises(DataError, match=word):
        Preprocess(**kw)


# ---------------------------------------------------------------- SliceDataset, augmentation

def test_slice_dataset_lengths_and_index():
    cases = synthetic_phantoms(2, shape=(5, 20, 20)) + synthetic_phantoms(1, shape=(4, 30, 10), seed=1)
    cases[2].id = 'other'
    ds = SliceDataset(cases, Preprocess(size=(32, 32)))
    assert len(ds) == 14
    assert ds.index[:6] == [('phantom_000', z) for z in range(5)] + [('phantom_001', 0)]
    assert ds.index[-1] == ('other', 3)
    x, y = ds[13]
    assert x.dtype == torch.float32 and y.dtype == torch.int64 and tuple(x.shape) == (1, 32, 32) and tuple(y.shape) == (32, 32)
    # item = the case's own slice, normalised per volume and padded
    prep = ds.prep
    xe, ye = prep.slice_to_model(prep.normalise(cases[2].image)[None, 3], cases[2].label[3])
    assert torch.allclose(x, xe) and torch.equal(y, ye)


def test_slice_dataset_unlabelled_and_errors():
    lab = synthetic_phantoms(2, shape=(4, 16, 16))
    ds = SliceDataset(lab, Preprocess(size=(16, 16)), labelled=False)   # labels present but unused
    assert all((ds[i][1] == IGNORE_INDEX).all() for i in range(len(ds)))
    unl = synthetic_phantoms(2, shape=(4, 16, 16), labelled=False)
    assert len(SliceDataset(unl, Preprocess(size=(16, 16)), labelled=False)) == 8
    with pytest.raises(DataError, match='phantom_001'):
        SliceDataset(lab[:1] + unl[1:], Preprocess(size=(16, 16)), labelled=True)
    mc = Case('mc', np.zeros((2, 4, 16, 16), np.float32), None)
    with pytest.raises(DataError, match='channel'):
        SliceDataset(unl + [mc], Preprocess(size=(16, 16)), labelled=False)
    assert tuple(SliceDataset([mc], Preprocess(size=(16, 16)), labelled=False)[0][0].shape) == (2, 16, 16)
    assert len(SliceDataset([], Preprocess())) == 0


def test_slice_dataset_augment_is_applied():
    calls = []
    def aug(x, y): calls.append(1); return x + 100, y
    ds = SliceDataset(synthetic_phantoms(1, shape=(4, 16, 16)), Preprocess(size=(16, 16)), augment=aug)
    x, _ = ds[0]
    assert calls and x.min() > 50


@pytest.mark.parametrize('hw', [(8, 8), (8, 12)])
def test_flip_rot90_synchronised(hw):
    set_seed(0)
    y = torch.randint(0, 5, hw)
    seen = set()
    for _ in range(64):
        xa, ya = flip_rot90(y[None].float() * 10, y)
        assert torch.equal(xa[0], ya.float() * 10)
        assert xa.shape[-2:] == y.shape
        seen.add(tuple(ya.flatten().tolist()))
    assert len(seen) == (8 if hw[0] == hw[1] else 4)
    set_seed(5); a = flip_rot90(y[None].float(), y)
    set_seed(5); b = flip_rot90(y[None].float(), y)
    assert torch.equal(a[1], b[1])


# ---------------------------------------------------------------- DataLoaders

def test_supervised_dls_shapes_and_lengths():
    cases = synthetic_phantoms(4, shape=(5, 20, 20))
    dls = supervised_dls(cases[:3], cases[3:], Preprocess(size=(24, 24)), bs=4)
    xb, yb = dls.one_batch()
    assert tuple(xb.shape) == (4, 1, 24, 24) and tuple(yb.shape) == (4, 24, 24)
    assert xb.dtype == torch.float32 and yb.dtype == torch.int64
    assert len(dls.train) == 15 // 4 and len(dls.valid) == 2            # drop_last on train only
    assert dls.prep == Preprocess(size=(24, 24))
    # valid: not shuffled, not augmented: batches follow the dataset order
    vx = torch.cat([b[0] for b in dls.valid])
    assert torch.equal(vx, torch.stack([dls.valid_ds[i][0] for i in range(len(dls.valid_ds))]))
    # a training set no larger than bs still gives one batch
    small = supervised_dls(cases[:1], [], Preprocess(size=(24, 24)), bs=8)
    assert len(small.train) == 1 and small.one_batch()[0].shape[0] == 5


def test_supervised_dls_seeded_shuffle():
    cases = synthetic_phantoms(3, shape=(6, 16, 16))
    def order(seed):
        dls = supervised_dls(cases, [], Preprocess(size=(16, 16)), bs=4, augment=False, seed=seed)
        return torch.cat([b[0] for b in dls.train])
    assert torch.equal(order(1), order(1))
    assert not torch.equal(order(1), order(2))


def test_supervised_dls_errors():
    cases = synthetic_phantoms(2, shape=(4, 16, 16))
    with pytest.raises(DataError, match='train_cases'):
        supervised_dls([], cases, Preprocess())
    with pytest.raises(DataError, match='bs'):
        supervised_dls(cases, [], Preprocess(), bs=0)
    with pytest.raises(DataError, match='phantom_000'):
        supervised_dls(synthetic_phantoms(1, shape=(4, 16, 16), labelled=False), [], Preprocess())


@pytest.fixture(scope='module')
def two_stream_cases():
    lab = synthetic_phantoms(2, shape=(4, 20, 20), seed=0)                    # 8 labelled slices
    unl = synthetic_phantoms(4, shape=(5, 20, 20), seed=1, labelled=False)   # 20 unlabelled slices
    val = synthetic_phantoms(1, shape=(4, 20, 20), seed=2)
    return lab, unl, val


def test_two_stream_batches(two_stream_cases):
    lab, unl, val = two_stream_cases
    bl, bu = 3, 6
    dls = two_stream_dls(lab, unl, val, Preprocess(size=(24, 24)), bs_labelled=bl, bs_unlabelled=bu, seed=0)
    dl = dls.train
    assert dl.n_labelled_per_batch == bl
    batches = list(dl)
    assert len(batches) == len(dl) == math.ceil(20 / bu)
    for xb, yb in batches:
        assert tuple(xb.shape) == (bl + bu, 1, 24, 24) and yb.dtype == torch.int64
        for i in range(bl):                                  # real labels (not only ignore) in the first bl ...
            assert (yb[i] != IGNORE_INDEX).sum() == 24 * 24  # 20 x 20 slice + its padding as background
        assert (yb[bl:] == IGNORE_INDEX).all()              # ... only ignore in the rest
    assert tuple(dls.valid.one_batch()[1].shape) == (4, 24, 24)


def test_two_stream_indices_cover_unlabelled_and_recycle_labelled(two_stream_cases):
    lab, unl, val = two_stream_cases
    bl, bu = 3, 6
    dl = two_stream_dls(lab, unl, val, Preprocess(size=(24, 24)), bl, bu, augment=False, seed=4).train
    idxs = np.array(dl.get_idxs()).reshape(-1, bl + bu)
    assert idxs.shape[0] == math.ceil(20 / bu)
    assert (idxs[:, :bl] < 8).all() and (idxs[:, bl:] >= 8).all()
    assert set(idxs[:, bl:].ravel()) == set(range(8, 28))        # every unlabelled slice once per epoch (at least)
    assert set(idxs[:, :bl].ravel()) == set(range(8))            # 12 labelled draws of 8 slices: all used
    for row in idxs: assert len(set(row)) == len(row)           # no slice twice within a batch


def test_two_stream_determinism(two_stream_cases):
    lab, unl, val = two_stream_cases
    prep = Preprocess(size=(24, 24))
    def run(seed, augment=False):
        set_seed(123)
        dl = two_stream_dls(lab, unl, val, prep, 2, 4, augment=augment, seed=seed).train
        return [torch.cat([xb.flatten(), yb.flatten().float()]) for xb, yb in dl]
    a, b = run(7), run(7)
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    c = run(8)
    assert not all(torch.equal(u, v) for u, v in zip(a, c))
    a, b = run(7, True), run(7, True)                            # augmentation: torch's global RNG via set_seed
    assert all(torch.equal(u, v) for u, v in zip(a, b))


def test_two_stream_epochs_reshuffle(two_stream_cases):
    lab, unl, val = two_stream_cases
    dl = two_stream_dls(lab, unl, val, Preprocess(size=(24, 24)), 2, 4, augment=False, seed=0).train
    assert dl.get_idxs() != dl.get_idxs()


def test_two_stream_errors(two_stream_cases):
    lab, unl, val = two_stream_cases
    prep = Preprocess(size=(24, 24))
    with pytest.raises(DataError, match='labelled_cases'):
        two_stream_dls([], unl, val, prep)
    with pytest.raises(DataError) as e:
        two_stream_dls(lab, [], val, prep)
    assert 'unlabelled_cases' in str(e.value) and 'supervised_dls' in str(e.value)
    with pytest.raises(DataError, match='bs_unlabelled'):
        two_stream_dls(lab, unl, val, prep, bs_unlabelled=0)
    with pytest.raises(DataError, match=unl[0].id):
        two_stream_dls(unl, lab, val, prep)                      # unlabelled cases in the labelled stream
