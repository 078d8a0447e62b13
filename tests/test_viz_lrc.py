"LRC pieces of semicontrast.viz, checked on real outputs: superpixels of phantom and hippocampus slices, warped region maps, sample_regions and a tiny LRCNet."
import numpy as np
import pytest
import torch

from semicontrast.core import DataError, IGNORE_INDEX, set_seed
from semicontrast.data import synthetic_phantoms, load_dataset
from semicontrast.augment import TwoViews, warp
from semicontrast.superpixels import felzenszwalb_slice, superpixels_for
from semicontrast.losses import sample_regions, pool_regions
from semicontrast.models import UNet
from semicontrast.lrc import LRCNet
from semicontrast.loaders import auto_preprocess
from semicontrast.viz import (superpixel_boundaries, superpixel_explorer, superpixel_widget, superpixel_rgb, region_samples,
                              region_classes, region_embeddings)
from semicontrast.viz.superpixels import _boundary_mask


@pytest.fixture(scope='module')
def phantom():
    c = synthetic_phantoms(n=2, shape=(4, 48, 48), seed=4)
    img = np.stack([x.image[2] for x in c])
    lab = np.stack([x.label[2] for x in c])
    reg = np.stack([felzenszwalb_slice(i) for i in img])
    return img, lab, reg


@pytest.fixture(scope='module')
def views(phantom):
    "Two views of two phantom slices with their warped region maps and labels, and a region sample."
    img, lab, reg = phantom
    x = torch.from_numpy(img)[:, None]
    tv = TwoViews(seed=1)(x, extra=torch.from_numpy(reg).long())
    s = sample_regions(tv['extra1'], tv['extra2'], n_regions=8, n_pixels=6, generator=torch.Generator().manual_seed(0))
    y1 = warp(torch.from_numpy(lab).long(), tv['theta1'], mode='nearest', padding_value=IGNORE_INDEX)
    return tv, s, y1


def test_boundary_mask_counts_region_zero_and_skips_padding():
    r = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [-1, -1, -1, -1]])
    m = _boundary_mask(r)
    assert m[:2, 1].all() and not m[0, 2]            # one pixel wide: the left side of the 0|1 edge (region 0 counts)
    assert not m[0, 0] and not m[0, 3]                # inside a region, away from any other id
    assert not m[2].any()                            # padding (-1) is never drawn
    assert m[1].all()                                # the regions' side of the edge with the padding below
    m2 = _boundary_mask(r[::-1].copy())               # padding above: the edge goes to the region's (lower) side
    assert m2[1].all() and not m2[0].any()


def test_superpixel_boundaries_on_hippocampus_slice():
    cases, info = load_dataset('hippocampus')
    c = cases[0]
    prep = auto_preprocess(cases[:3], intensity=info.intensity)
    reg = superpixels_for([c], prep)
    z = int(np.argmax((c.label > 0).sum((1, 2))))
    from semicontrast.loaders import SliceDataset
    x = SliceDataset([c], prep).x[z, 0]
    fig = superpixel_boundaries(x, reg[z])
    n = int(reg[z].max()) + 1
    assert fig.layout.title.text == f'{n} regions'
    edge = ~np.isnan(np.asarray(fig.data[1].z, dtype=float))
    assert edge.shape == tuple(prep.size)
    assert not edge[reg[z].numpy() < 0].any()          # nothing drawn in the padding
    assert edge.sum() > 0
    with pytest.raises(DataError, match='must match'):
        superpixel_boundaries(x, reg[z][:-1])


def test_superpixel_explorer_steps_and_counts(phantom):
    img = phantom[0][0]
    scales, sigmas, mins = (50, 200), (0.5, 0.8), (10, 20, 50)
    fig = superpixel_explorer(img, scales, sigmas, mins)
    steps = fig.layout.sliders[0].steps
    assert len(steps) == 2 * 2 * 3 == len(fig.data) - 1
    counts = fig.layout.meta['counts']
    k = 0
    for s in scales:
        for g in sigmas:
            for m in mins:
                n = len(np.unique(felzenszwalb_slice(img, scale=s, sigma=g, min_size=m)))
                assert counts[k] == n
                assert steps[k].label == f'scale={s} sigma={g} min={m}'
                assert steps[k].args[1]['title.text'].endswith(f': {n} regions')
                vis = steps[k].args[0]['visible']
                assert vis[0] and sum(vis) == 2 and vis[1 + k]
                k += 1
    assert steps[fig.layout.sliders[0].active].label == 'scale=50 sigma=0.5 min=20'   # nearest to the defaults
    with pytest.raises(DataError, match='max_combinations'):
        superpixel_explorer(img, scales=range(10, 1000, 10))


def test_superpixel_widget_recomputes(phantom):
    pytest.importorskip('ipywidgets')
    img = phantom[0][0]
    w = superpixel_widget(img)
    (sc, sg, ms), info, pic = w.children[0].children, w.children[1], w.children[2]
    first = pic.value
    assert info.value.startswith(f'<b>{len(np.unique(felzenszwalb_slice(img)))} regions')
    sc.value = 800
    assert info.value.startswith(f'<b>{len(np.unique(felzenszwalb_slice(img, scale=800)))} regions')
    assert pic.value != first
    rgb = superpixel_rgb(img, felzenszwalb_slice(img), color='#00ff00')
    assert rgb.shape == (*img.shape, 3) and (rgb[_boundary_mask(felzenszwalb_slice(img))] == [0, 255, 0]).all()


@pytest.mark.parametrize('b', [0, 1])
def test_region_samples_markers_lie_in_their_region(views, b):
    tv, s, _ = views
    fig = region_samples(tv['v1'], tv['v2'], tv['extra1'], tv['extra2'], s, b=b)
    valid = np.nonzero(s['mask'][b].numpy())[0]
    assert len(valid) > 0
    markers = [tr for tr in fig.data if tr.type == 'scatter']
    assert len(markers) == 2 * len(valid) and len(fig.data) == 4 + 2 * len(valid)
    for t, n in enumerate(valid):
        rid = int(s['ids'][b, n])
        m1, m2 = markers[2 * t], markers[2 * t + 1]
        assert m1.marker.color == m2.marker.color and m1.legendgroup == m2.legendgroup
        for tr, key in ((m1, 'extra1'), (m2, 'extra2')):
            ys, xs = np.asarray(tr.y), np.asarray(tr.x)
            assert len(ys) == s['idx1'].shape[-1]
            assert (tv[key][b][ys, xs] == rid).all()
    assert len({markers[2 * t].marker.color for t in range(len(valid))}) == len(valid)   # one colour per region


def test_region_samples_rejects_mismatched_inputs(views):
    tv, s, _ = views
    with pytest.raises(DataError, match='same'):
        region_samples(tv['v1'], tv['v2'][..., :-1], tv['extra1'], tv['extra2'], s)
    with pytest.raises(DataError, match='b=5'):
        region_samples(tv['v1'], tv['v2'], tv['extra1'], tv['extra2'], s, b=5)


def test_region_classes_majority(views):
    tv, s, y1 = views
    cls = region_classes(y1, tv['extra1'], s['ids'])
    assert cls.shape == tuple(s['ids'].shape)
    for b in range(cls.shape[0]):
        for n in range(cls.shape[1]):
            rid = int(s['ids'][b, n])
            if rid < 0: assert cls[b, n] == -1; continue
            v = y1[b][(tv['extra1'][b] == rid) & (y1[b] != IGNORE_INDEX)].numpy()
            assert cls[b, n] == (np.bincount(v).argmax() if v.size else -1)


def test_region_embeddings_from_lrcnet(views):
    tv, s, y1 = views
    set_seed(0)
    net = LRCNet(UNet(n_classes=3, base=4, depth=3), d_out=16, global_hidden=32).eval()
    with torch.no_grad():
        r1 = pool_regions(net(tv['v1'])['dense'], s['idx1'])
        r2 = pool_regions(net(tv['v2'])['dense'], s['idx2'])
    assert r1.shape == (2, 8, 16)
    m = s['mask']
    cls = region_classes(y1, tv['extra1'], s['ids'])
    fig = region_embeddings(r1, r2, m, cls, class_names=['background', 'outer', 'inner'])
    present = np.unique(cls[m.numpy()])
    assert len(fig.data) == 1 + 2 * len(present)
    n = int(m.sum())
    assert sum(len(tr.x) for tr in fig.data[1:]) == 2 * n
    # the line trace joins the two projected points of every region
    lx, ly = np.asarray(fig.data[0].x, float), np.asarray(fig.data[0].y, float)
    assert np.isfinite(lx).sum() == 2 * n and np.isnan(lx[2::3]).all()
    pts1 = {(round(x, 6), round(y, 6)) for tr in fig.data[1::2] for x, y in zip(tr.x, tr.y)}
    pts2 = {(round(x, 6), round(y, 6)) for tr in fig.data[2::2] for x, y in zip(tr.x, tr.y)}
    assert {(round(x, 6), round(y, 6)) for x, y in zip(lx[0::3], ly[0::3])} == pts1
    assert {(round(x, 6), round(y, 6)) for x, y in zip(lx[1::3], ly[1::3])} == pts2
    # no labels: one trace per view, two panels from dicts
    fig2 = region_embeddings({'a': r1, 'b': r1}, {'a': r2, 'b': r2 * -1}, m)
    assert len(fig2.data) == 2 * 3
    with pytest.raises(DataError, match='no region'):
        region_embeddings(r1, r2, torch.zeros_like(m))
