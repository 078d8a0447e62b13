"MSCS pieces of semicontrast.viz: perturbation panels, stream disagreement (maps, fractions, explorer, curve) and class scatters."
import numpy as np
import pytest
import torch
import plotly.graph_objects as go

from semicontrast.core import DataError, IGNORE_INDEX
from semicontrast.data import synthetic_phantoms
from semicontrast.viz import (perturbation_panel, stream_disagreement, disagreement_explorer, disagreement_curve,
                              class_scatter, grid_points, downsample_labels, class_color)
from semicontrast.viz.embeddings import _label_outline

NAMES = ['background', 'outer', 'inner']


@pytest.fixture(scope='module')
def slice_():
    c = synthetic_phantoms(n=1, shape=(4, 40, 40), n_classes=3, seed=7)[0]
    return c.image[2], c.label[2]


def _n_outline(lab):
    return len(np.unique(lab[_label_outline(lab)]))


def _heatmaps(fig):
    return [tr for tr in fig.data if isinstance(tr, go.Heatmap)]


# ---------------------------------------------------------------- perturbation_panel

def test_perturbation_panel_shared_range_and_outlines(slice_):
    x, y = slice_
    strong = 2.0 * x + 1.0
    fig = perturbation_panel({'original': x, 'weak view': torch.from_numpy(x[None].copy()), 'strong view': strong}, label=y)
    assert [a.text for a in fig.layout.annotations] == ['original', 'weak view', 'strong view']
    n = _n_outline(y)
    assert n >= 2
    assert len(fig.data) == 3 + 3 * n
    hm = _heatmaps(fig)
    assert len(hm) == 3
    lo, hi = np.percentile(np.concatenate([x.ravel(), x.ravel(), strong.ravel()]), [0.5, 99.5])
    for tr in hm:                                             # one window for every panel
        assert tr.zmin == pytest.approx(lo) and tr.zmax == pytest.approx(hi)
    # outlines sit on labelled boundary pixels, in the class colour
    scat = [tr for tr in fig.data if isinstance(tr, go.Scatter)]
    for tr in scat:
        cls = y[np.asarray(tr.y), np.asarray(tr.x)]
        assert len(set(cls.tolist())) == 1 and tr.marker.color == class_color(int(cls[0]))
    assert sum(bool(tr.showlegend) for tr in scat) == n       # legend entries once, not per panel


def test_perturbation_panel_own_ranges_and_feature_maps(slice_):
    x, y = slice_
    small = np.arange(36, dtype=np.float32).reshape(6, 6) * 100
    fig = perturbation_panel({'input': x, 'bottleneck': small, 'noisy': torch.from_numpy(small * 1.1)}, label=y,
                             shared_range=False)
    hm = _heatmaps(fig)
    assert [np.shape(tr.z) for tr in hm] == [(40, 40), (6, 6), (6, 6)]
    assert hm[1].zmin == pytest.approx(np.percentile(small, 0.5)) and hm[2].zmax == pytest.approx(np.percentile(small * 1.1, 99.5))
    assert hm[0].zmax != hm[1].zmax
    assert len(fig.data) == 3 + _n_outline(y)                # only the input panel has the label's size
    assert fig.layout.xaxis2.range == (-0.5, 5.5) and fig.layout.yaxis2.range == (5.5, -0.5)


def test_perturbation_panel_channel_and_errors(slice_):
    x, y = slice_
    img = np.stack([x, -x])
    fig = perturbation_panel({'c1': img}, channel=1, shared_range=False)
    assert np.allclose(np.asarray(fig.data[0].z), -x)
    with pytest.raises(DataError, match='channel=2'):
        perturbation_panel({'c': img}, channel=2)
    with pytest.raises(DataError, match='non-empty dict'):
        perturbation_panel({})
    with pytest.raises(DataError, match=r"images\['bad'\]"):
        perturbation_panel({'bad': np.zeros((1, 1, 4, 4))})
    with pytest.raises(DataError, match='no panel has that size'):
        perturbation_panel({'a': x}, label=y[:20])
    with pytest.raises(DataError, match='n_classes=2'):
        perturbation_panel({'a': x}, label=y, n_classes=2)


# ---------------------------------------------------------------- stream_disagreement

def test_stream_disagreement_hand_built():
    a = np.array([[[0, 1, 1, 2], [0, 0, 2, 2]], [[1, 1, 1, 1], [0, 0, 0, 0]]])
    b = np.array([[[0, 1, 2, 2], [1, 0, 2, 2]], [[1, 1, 1, 1], [0, 0, 0, 2]]])
    d, f = stream_disagreement(a, b)
    assert d.dtype == bool and d.shape == (2, 2, 4)
    assert np.argwhere(d).tolist() == [[0, 0, 2], [0, 1, 0], [1, 1, 3]]
    assert f == pytest.approx(3 / 16)
    d2, f2 = stream_disagreement(a[0], b[0])                  # (H,W) works too
    assert d2.shape == (2, 4) and f2 == pytest.approx(2 / 8)
    d3, f3 = stream_disagreement(torch.from_numpy(a), torch.from_numpy(a))
    assert not d3.any() and f3 == 0.0


def test_stream_disagreement_logits_argmax():
    torch.manual_seed(0)
    la, lb = torch.randn(2, 4, 6, 5), torch.randn(2, 4, 6, 5)
    d, f = stream_disagreement(la, lb)
    ref = (la.argmax(1) != lb.argmax(1)).numpy()
    assert np.array_equal(d, ref) and f == pytest.approx(ref.mean())
    d2, _ = stream_disagreement(la, lb.argmax(1))             # logits against a class map
    assert np.array_equal(d2, ref)
    with pytest.raises(DataError, match='4D'):
        stream_disagreement(la.argmax(1, keepdim=True).repeat(1, 4, 1, 1), lb)   # 4D integers are not logits
    with pytest.raises(DataError, match='non-integer'):
        stream_disagreement(torch.rand(6, 5), torch.rand(6, 5))                 # probabilities of one class


def test_stream_disagreement_ignore():
    a = np.array([[0, 1, 2, 0], [1, 1, 1, 1]])
    b = np.array([[1, 1, 2, 0], [1, 2, 1, 1]])
    ig = np.zeros_like(a, dtype=bool); ig[0, 0] = True; ig[1, 3] = True
    d, f = stream_disagreement(a, b, ignore=ig)
    assert d[0, 0]                                           # the map still shows ignored pixels
    assert f == pytest.approx(1 / 6)
    lab = np.where(ig, IGNORE_INDEX, 0)
    assert stream_disagreement(a, b, ignore=lab == IGNORE_INDEX)[1] == pytest.approx(1 / 6)
    assert stream_disagreement(a, b, ignore=torch.from_numpy(ig.astype(np.uint8)))[1] == pytest.approx(1 / 6)
    assert stream_disagreement(a[None], b[None], ignore=ig)[1] == pytest.approx(1 / 6)         # broadcast over the batch
    assert np.isnan(stream_disagreement(a, b, ignore=np.ones_like(ig))[1])
    with pytest.raises(DataError, match='ignore has shape'):
        stream_disagreement(a, b, ignore=np.zeros((3, 3), bool))
    with pytest.raises(DataError, match='bool mask'):
        stream_disagreement(a, b, ignore=lab)


def test_stream_disagreement_shape_mismatch():
    with pytest.raises(DataError, match='pred_a'):
        stream_disagreement(np.zeros((4, 4), int), np.zeros((4, 5), int))
    with pytest.raises(DataError, match='pred_b'):
        stream_disagreement(np.zeros((4, 4), int), np.zeros((4,), int))


# ---------------------------------------------------------------- disagreement_explorer / curve

def _snaps(y, ps, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for k, p in enumerate(ps):
        pr = [np.where(rng.random(y.shape) < p, rng.integers(0, 3, y.shape), y) for _ in range(2)]
        out.append(dict(step=f'epoch {k}', pred_a=pr[0], pred_b=torch.from_numpy(pr[1])))
    return out


def test_disagreement_explorer_structure(slice_):
    x, y = slice_
    snaps = _snaps(y, (0.5, 0.2, 0.05))
    fig = disagreement_explorer(x, snaps, n_classes=3, class_names=NAMES, label=y)
    n = _n_outline(y)
    n_static = 4 + 2 * n
    assert len(fig.data) == n_static + 3 * 3
    sl = fig.layout.sliders[0]
    assert len(sl.steps) == 3 and [s.label for s in sl.steps] == ['epoch 0', 'epoch 1', 'epoch 2']
    assert sl.active == 2
    assert [a.text for a in fig.layout.annotations] == ['image + ground truth', 'stream a', 'stream b', 'disagreement']
    fr = [stream_disagreement(s['pred_a'], s['pred_b'])[1] for s in snaps]
    assert fig.layout.meta['fractions'] == pytest.approx(fr)
    for k, s in enumerate(sl.steps):
        vis = s.args[0]['visible']
        assert sum(vis) == n_static + 3 and all(vis[:n_static]) and all(vis[n_static + 3 * k: n_static + 3 * k + 3])
        assert f'{100 * fr[k]:.1f}%' in s.args[1]['title.text'] and f'epoch {k}' in s.args[1]['title.text']
    # the disagreement trace of step 1 marks exactly the pixels where the streams differ
    z = np.asarray(fig.data[n_static + 3 * 1 + 2].z, dtype=float)
    assert np.array_equal(~np.isnan(z), snaps[1]['pred_a'] != snaps[1]['pred_b'].numpy())
    assert np.array_equal(np.asarray(fig.data[n_static + 3 * 1].z), snaps[1]['pred_a'].astype(np.float32))
    assert fig.layout.title.text == sl.steps[2].args[1]['title.text']


def test_disagreement_explorer_without_label_channel_image_and_ignore(slice_):
    x, y = slice_
    snaps = _snaps(y, (0.3,))
    ig = np.zeros_like(y, dtype=bool); ig[:20] = True
    fig = disagreement_explorer(np.stack([x, x * 0]), snaps, n_classes=3, ignore=ig)
    assert len(fig.data) == 4 + 3
    assert np.allclose(np.asarray(fig.data[0].z), x)            # channel 0 shown
    a, b = snaps[0]['pred_a'], snaps[0]['pred_b'].numpy()
    assert fig.layout.meta['fractions'][0] == pytest.approx((a != b)[20:].mean())
    assert fig.layout.annotations[0].text == 'image'


def test_disagreement_explorer_errors(slice_):
    x, y = slice_
    with pytest.raises(DataError, match="snapshots\\[1\\]\\['pred_a'\\]"):
        disagreement_explorer(x, [dict(step=0, pred_a=y, pred_b=y), dict(step=1, pred_a=y[:, :30], pred_b=y)], 3)
    with pytest.raises(DataError, match='no snapshots'):
        disagreement_explorer(x, [], 3)
    with pytest.raises(DataError, match="'pred_b'"):
        disagreement_explorer(x, [dict(step=0, pred_a=y)], 3)
    with pytest.raises(DataError, match='n_classes=2'):
        disagreement_explorer(x, [dict(step=0, pred_a=y, pred_b=y)], 2)
    with pytest.raises(DataError, match='label has shape'):
        disagreement_explorer(x, [dict(step=0, pred_a=y, pred_b=y)], 3, label=y[:10])


def test_disagreement_curve():
    rows = [{'epoch': 0, 'disagree': 0.5}, {'epoch': 1}, {'epoch': 2, 'disagree': None},
            {'epoch': 3, 'disagree': float('nan')}, {'epoch': 4, 'disagree': 0.2}]
    fig = disagreement_curve(rows)
    assert len(fig.data) == 1
    assert list(fig.data[0].x) == [0, 4] and list(fig.data[0].y) == [0.5, 0.2]
    assert fig.layout.xaxis.title.text == 'epoch'
    fig = disagreement_curve([{'step': 10, 'disagree': 0.3}, {'step': 20, 'disagree': 0.1}])
    assert list(fig.data[0].x) == [10, 20] and fig.layout.xaxis.title.text == 'step'
    with pytest.raises(DataError, match="'disagree'"):
        disagreement_curve([{'epoch': 0, 'train_loss': 1.0}])
    with pytest.raises(DataError):
        disagreement_curve([])


# ---------------------------------------------------------------- grid_points / class_scatter

def test_grid_points_matches_downsample_labels():
    rng = np.random.default_rng(0)
    emb = rng.standard_normal((3, 5, 4, 2)).astype(np.float32)
    lab = rng.integers(0, 3, (3, 16, 8)); lab[0, :8] = IGNORE_INDEX       # top half of image 0 unknown
    g = grid_points(torch.from_numpy(emb), torch.from_numpy(lab))
    assert g['emb'].shape == (3 * 4 * 2, 5) and g['labels'].shape == (24,)
    assert np.array_equal(g['labels'], downsample_labels(lab, (4, 2)).reshape(-1))
    assert (g['labels'][:4] == IGNORE_INDEX).all() and (g['labels'][4:] != IGNORE_INDEX).all()
    b, yy, xx = 2, 3, 1
    assert np.array_equal(g['emb'][b * 8 + yy * 2 + xx], emb[b, :, yy, xx])
    assert np.array_equal(grid_points(emb, lab, fg_fraction=0.2)['labels'], downsample_labels(lab, (4, 2), fg_fraction=0.2).reshape(-1))
    g2 = grid_points(emb, source=['labelled', 'pseudo', 'pseudo'])
    assert (g2['labels'] == IGNORE_INDEX).all()
    assert g2['source'].tolist() == ['labelled'] * 8 + ['pseudo'] * 16
    assert grid_points(emb, source='stream a')['source'].tolist() == ['stream a'] * 24
    with pytest.raises(DataError, match='labels have shape'):
        grid_points(emb, lab[:2])
    with pytest.raises(DataError, match='source'):
        grid_points(emb, source=['a', 'b'])
    with pytest.raises(DataError, match='B,D,h,w'):
        grid_points(emb[0])


def _clusters(n=40, d=6, seed=0):
    rng = np.random.default_rng(seed)
    lab = np.repeat([0, 1, 2, IGNORE_INDEX], n // 4)
    emb = rng.standard_normal((n, d)) * 0.1 + np.eye(d)[np.minimum(lab, 3)] * 3
    src = np.array(['labelled', 'pseudo'] * (n // 2))
    return emb, lab, src


def test_class_scatter_colours_and_symbols():
    emb, lab, src = _clusters()
    emb2, lab2, _ = _clusters(seed=1)
    src2 = np.array(['stream a'] * 20 + ['stream b'] * 20)
    fig = class_scatter({'patch': dict(emb=emb, labels=lab, source=src),
                         'pixel': dict(emb=torch.from_numpy(emb2), labels=torch.from_numpy(lab2), source=list(src2))},
                        class_names=NAMES)
    assert [a.text for a in fig.layout.annotations] == ['patch (PCA)', 'pixel (PCA)']
    colour = {'background': '#9e9e9e', 'outer': class_color(1), 'inner': class_color(2), 'unknown': '#cccccc'}
    symbols = {}
    total = 0
    for tr in fig.data:
        cname, s = tr.name.split(', ')
        assert tr.marker.color == colour[cname]
        symbols.setdefault(s, set()).add(tr.marker.symbol)
        idx = np.asarray(tr.customdata)
        E, L, S = (emb, lab, src) if tr.xaxis == 'x' else (emb2, lab2, src2)
        assert set(S[idx].tolist()) == {s}                    # every point of a trace has its source...
        want = IGNORE_INDEX if cname == 'unknown' else NAMES.index(cname)
        assert set(L[idx].tolist()) == {want}                 # ...and its class
        assert s in tr.hovertemplate and cname in tr.hovertemplate
        total += len(idx)
    assert total == 80
    assert all(len(v) == 1 for v in symbols.values())        # one symbol per source
    assert len({next(iter(v)) for v in symbols.values()}) == 4
    assert sum(bool(tr.showlegend) for tr in fig.data) == len({tr.name for tr in fig.data})


def test_class_scatter_projection_drop_unknown_and_subsample():
    emb, lab, _ = _clusters()
    fig = class_scatter({'p': dict(emb=emb, labels=lab)}, drop_unknown=True)
    assert [tr.name for tr in fig.data] == ['class 0', 'class 1', 'class 2']
    assert all(tr.marker.symbol == 'circle' for tr in fig.data)
    from semicontrast.viz import project_embeddings
    P = project_embeddings(emb[lab != IGNORE_INDEX])
    tr = fig.data[1]
    keep = np.flatnonzero(lab != IGNORE_INDEX)
    pos = np.searchsorted(keep, np.asarray(tr.customdata))
    assert np.allclose(np.asarray(tr.x), P[pos, 0]) and np.allclose(np.asarray(tr.y), P[pos, 1])
    fig = class_scatter({'p': dict(emb=emb, labels=lab)}, max_points=15, seed=3)
    assert sum(len(t.x) for t in fig.data) == 15
    fig2 = class_scatter({'p': dict(emb=emb, labels=lab)}, max_points=15, seed=3)
    assert [list(t.customdata) for t in fig.data] == [list(t.customdata) for t in fig2.data]


def test_class_scatter_with_grid_points():
    rng = np.random.default_rng(2)
    emb = rng.standard_normal((2, 8, 4, 4))
    lab = rng.integers(0, 3, (2, 32, 32))
    g = grid_points(emb, lab, source=['labelled', 'pseudo'])
    fig = class_scatter({'grid': g}, method='tsne')
    assert fig.layout.annotations[0].text == 'grid (t-SNE)'
    assert sum(len(t.x) for t in fig.data) == 32


def test_class_scatter_errors():
    emb, lab, src = _clusters()
    with pytest.raises(DataError, match='no points'):
        class_scatter({})
    with pytest.raises(DataError, match='grid_points'):
        class_scatter({'p': dict(emb=emb.reshape(4, 10, 6, 1), labels=lab)})
    with pytest.raises(DataError, match='labels'):
        class_scatter({'p': dict(emb=emb, labels=lab[:-1])})
    with pytest.raises(DataError, match='source'):
        class_scatter({'p': dict(emb=emb, labels=lab, source=src[:3])})
    with pytest.raises(ValueError, match='method'):
        class_scatter({'p': dict(emb=emb, labels=lab)}, method='umap')
