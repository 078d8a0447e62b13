"IDEAL exploration pieces of semicontrast.viz, checked on real model outputs: dense embeddings of hippocampus slices."
import math
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from semicontrast.core import DataError, IGNORE_INDEX, set_seed
from semicontrast.data import load_dataset
from semicontrast.loaders import SliceDataset
from semicontrast.loaders import auto_preprocess
from semicontrast.models import UNet, Encoder, unet_widths
from semicontrast.heads import EncoderWithHead, dense_head_for
from semicontrast.viz import (dense_embeddings, downsample_labels, project_embeddings, embedding_scatter, similarity_map,
                              similarity_explorer, similarity_widget, similarity_rgb, results_table, class_color)

NAMES = ['background', 'anterior', 'posterior']


@pytest.fixture(scope='module')
def batch():
    "Slices of three hippocampus cases with some foreground, padded to 64 x 48; the first 8 columns marked unlabelled (IGNORE_INDEX)."
    cases, info = load_dataset('hippocampus')
    cases = cases[:3]
    prep = auto_preprocess(cases, intensity=info.intensity)
    ds = SliceDataset(cases, prep)
    fg = (ds.y > 0) & (ds.y != IGNORE_INDEX)
    idx = torch.nonzero(fg.flatten(1).sum(1) > 40).squeeze(1)[::3][:12]
    x, y = ds.x[idx], ds.y[idx].long()
    assert not (y[:, :, :8] > 0).any()            # the band is padding (background), no foreground is hidden
    y[:, :, :8] = IGNORE_INDEX                    # unlabelled pixels, so that ignoring them is tested
    assert x.shape[-2:] == (64, 48)
    return x, y


def _model(depth=3, pool_to=None, seed=0):
    set_seed(seed)
    enc = Encoder(1, unet_widths(4, depth))
    return EncoderWithHead(enc, dense_head_for(enc, d_out=16, pool_to=pool_to))


def _majority_loop(lab, hw, fg_fraction=None):
    "Reference: the adaptive-pooling window of each cell, labelled pixels only, most frequent class (ties: smallest id)."
    B, H, W = lab.shape
    h, w = hw
    out = np.full((B, h, w), IGNORE_INDEX, np.int64)
    for b in range(B):
        for i in range(h):
            for j in range(w):
                y0, y1 = (i * H) // h, math.ceil((i + 1) * H / h)
                x0, x1 = (j * W) // w, math.ceil((j + 1) * W / w)
                v = lab[b, y0:y1, x0:x1]
                v = v[v != IGNORE_INDEX]
                if v.size == 0: continue
                counts = np.bincount(v)
                out[b, i, j] = counts.argmax()
                if fg_fraction is not None and counts[1:].sum() > 0 and counts[1:].sum() >= fg_fraction * v.size:
                    out[b, i, j] = 1 + counts[1:].argmax()
    return out


@pytest.fixture(scope='module')
def embedded(batch):
    x, y = batch
    return dense_embeddings(_model(), x, y)


def test_dense_embeddings_match_the_model_in_eval_mode(batch, embedded):
    x, y = batch
    model = _model()
    model.train()
    e = dense_embeddings(model, x, y, bs=5)              # several forward chunks
    assert model.training                                 # the mode is restored
    assert all(p.grad is None for p in model.parameters())
    assert e['emb'].shape == (len(x), 16, 8, 6) and e['emb'].dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(e['emb'], axis=1), 1.0, atol=1e-5)
    model.eval()
    with torch.no_grad(): ref = F.normalize(model(x), dim=1).numpy()
    np.testing.assert_allclose(e['emb'], ref, atol=1e-5)  # eval mode: dropout off, BatchNorm running stats
    np.testing.assert_allclose(embedded['emb'], ref, atol=1e-5)
    assert dense_embeddings(model, x)['labels'] is None


def test_labels_are_the_majority_vote_of_each_cell(batch, embedded):
    _, y = batch
    lab = y.numpy()
    np.testing.assert_array_equal(embedded['labels'], _majority_loop(lab, (8, 6)))
    assert (embedded['labels'] == IGNORE_INDEX).any() and (embedded['labels'] == 0).any()
    np.testing.assert_array_equal(downsample_labels(lab, (8, 6), fg_fraction=0.3), _majority_loop(lab, (8, 6), 0.3))
    fg = lambda l: ((l > 0) & (l != IGNORE_INDEX)).sum()
    assert fg(downsample_labels(lab, (8, 6), fg_fraction=0.3)) > fg(embedded['labels'])   # small structures keep more cells


def test_labels_with_an_adaptive_grid_that_does_not_divide_the_image(batch):
    x, y = batch
    e = dense_embeddings(_model(depth=2, pool_to=(5, 7)), x, y)   # 16 x 12 bottleneck pooled to 5 x 7 cells
    assert e['emb'].shape[-2:] == (5, 7)
    np.testing.assert_array_equal(e['labels'], _majority_loop(y.numpy(), (5, 7)))


def test_dense_embeddings_refuses_bad_inputs(batch):
    x, y = batch
    with pytest.raises(DataError, match='labels have shape'): dense_embeddings(_model(), x, y[:, :10])
    with pytest.raises(DataError, match=r'\(B,C,H,W\)'): dense_embeddings(_model(), x[0])
    unet = UNet(n_classes=3, base=4, depth=3)
    flat = torch.nn.Sequential(unet.encoder.levels[0], torch.nn.Flatten())
    with pytest.raises(DataError, match='dense embeddings'): dense_embeddings(flat, x)


def test_pca_equals_sklearn_up_to_sign(embedded):
    from sklearn.decomposition import PCA
    X = embedded['emb'].transpose(0, 2, 3, 1).reshape(-1, 16)
    ours = project_embeddings(X, 'pca', n_components=3)
    ref = PCA(n_components=3).fit_transform(X.astype(np.float64))
    for k in range(3):
        s = np.sign(ours[:, k] @ ref[:, k])
        np.testing.assert_allclose(ours[:, k], s * ref[:, k], atol=1e-6)
        assert ours[np.abs(ours[:, k]).argmax(), k] > 0       # our sign convention
    np.testing.assert_allclose(project_embeddings(torch.from_numpy(X)), ours[:, :2], atol=1e-6)  # tensors too


def test_tsne_is_seeded_and_works_on_few_points(embedded):
    X = embedded['emb'].transpose(0, 2, 3, 1).reshape(-1, 16)[:60]
    a, b = project_embeddings(X, 'tsne', seed=3), project_embeddings(X, 'tsne', seed=3)
    assert a.shape == (60, 2) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b)
    assert project_embeddings(X[:7], 'tsne').shape == (7, 2)   # perplexity 30 clipped to (7-1)/3


def test_unknown_projection_names_the_argument_and_choices(embedded):
    with pytest.raises(ValueError, match=r"method must be 'pca' or 'tsne', got 'umap'"):
        project_embeddings(np.zeros((5, 3)), 'umap')
    with pytest.raises(ValueError, match='method'): embedding_scatter({'a': embedded}, method='umap')


def test_embedding_scatter_panels_colours_and_subsample(batch, embedded):
    x, y = batch
    after = dense_embeddings(_model(seed=1), x, y)
    fig = embedding_scatter({'before': embedded, 'after': after}, max_points=150, seed=0, class_names=NAMES)
    lab = embedded['labels'].reshape(-1)
    valid = np.flatnonzero(lab != IGNORE_INDEX)
    assert len(valid) > 150
    panels = {'x': [], 'x2': []}
    for tr in fig.data: panels[tr.xaxis].append(tr)
    for trs in panels.values():
        assert sum(len(tr.x) for tr in trs) == 150                       # subsampled to max_points, IGNORE dropped
        for tr in trs:
            c = NAMES.index(tr.name)
            assert tr.marker.color == ('#9e9e9e' if c == 0 else class_color(c))
            b, i, j = np.asarray(tr.customdata).T                      # every point is a cell of this class
            assert (embedded['labels'][b, i, j] == c).all()
    cells = lambda trs: sorted(map(tuple, np.concatenate([np.asarray(t.customdata) for t in trs]).tolist()))
    assert cells(panels['x']) == cells(panels['x2'])                     # same seed, same labels: the same cells
    assert [t.showlegend for t in fig.data].count(True) == len({t.name for t in fig.data})
    # the points are the PCA of exactly the subsampled cells
    keep = np.sort(np.random.default_rng(0).choice(valid, 150, replace=False))
    P = project_embeddings(embedded['emb'].transpose(0, 2, 3, 1).reshape(-1, 16)[keep])
    got = np.concatenate([np.stack([t.x, t.y], 1) for t in panels['x']])
    assert sorted(map(tuple, np.round(got, 6).tolist())) == sorted(map(tuple, np.round(P, 6).tolist()))
    small = embedding_scatter({'all': embedded}, max_points=10_000)
    assert sum(len(t.x) for t in small.data) == len(valid)


def test_similarity_map_equals_a_loop(embedded):
    E = embedded['emb']
    s = similarity_map(E[2], (3, 4), E)
    q = E[2, :, 3, 4]
    ref = np.zeros((len(E), 8, 6))
    for m in range(len(E)):
        for i in range(8):
            for j in range(6):
                v = E[m, :, i, j]
                ref[m, i, j] = q @ v / (np.linalg.norm(q) * np.linalg.norm(v))
    np.testing.assert_allclose(s, ref, atol=1e-5)
    assert abs(s[2, 3, 4] - 1) < 1e-5
    with pytest.raises(DataError, match='outside'): similarity_map(E[0], (8, 0), E)


def _explorer_data(cf):
    import json, re
    return json.loads(re.search(r'S = (\{.*?\});', cf.script).group(1))

def _hand_cosine(E, q, m, i, j):
    a, b = E[0, :, q[0], q[1]], E[m, :, i, j]
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))

def test_similarity_explorer_clickable_figure(batch, embedded):
    import base64
    x, y = batch
    ims, E, lab = x[:4, 0].numpy(), embedded['emb'][:4], y[:4].numpy()
    cf = similarity_explorer(ims, E, lab)
    fig, data = cf.figure, _explorer_data(cf)
    assert (data['M'], data['h'], data['w'], data['H'], data['W']) == (4, 8, 6, 64, 48)
    assert '{plot_id}' in cf.script and "gd.on('plotly_click'" in cf.script
    q = tuple(data['q'])                                                  # starts on the query image's foreground
    fy, fx = np.nonzero((lab[0] > 0) & (lab[0] != IGNORE_INDEX))
    assert q == (min(int(fy.mean()) * 8 // 64, 7), min(int(fx.mean()) * 6 // 48, 5))
    for m, t in enumerate(data['sims']):                                  # one map per image, on its own panel
        hm = fig.data[t]
        assert hm.type == 'heatmap' and hm.xaxis == ('x' if m == 0 else f'x{m + 1}')
        assert len(hm.x) == 7 and len(hm.y) == 9 and hm.x[-1] == 47.5 and hm.y[-1] == 63.5   # cell edges in pixels
        z = np.asarray(hm.z)
        for i, j in [(0, 0), (3, 2), (7, 5)]: assert abs(z[i, j] - _hand_cosine(E, q, m, i, j)) < 1e-3
    mk = fig.data[data['marker']]
    assert mk.xaxis == 'x' and (mk.y[0], mk.x[0]) == ((q[0] + 0.5) * 8 - 0.5, (q[1] + 0.5) * 8 - 0.5)
    # what the browser computes after a click: cosines of the stored int8 vectors, close to the exact ones
    E8 = np.frombuffer(base64.b64decode(data['emb']), np.int8).reshape(4, 8, 6, -1).astype(np.float64)
    for m, i, j, qq in [(1, 2, 3, (5, 1)), (3, 7, 0, (0, 4))]:
        a, b = E8[0, qq[0], qq[1]], E8[m, i, j]
        assert abs(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)) - _hand_cosine(E, qq, m, i, j)) < 0.02
    html = cf.to_html(include_plotlyjs=False)
    assert "plotly_click" in html and 'Plotly.newPlot' in html and '{plot_id}' not in html
    assert cf._repr_html_().count('plotly.js v') >= 1                     # works offline: plotly.js embedded

def test_similarity_explorer_pools_large_grids_and_checks_inputs(batch, embedded, tmp_path):
    x, y = batch
    ims = x[:2, 0].numpy()
    big = np.random.default_rng(0).normal(size=(2, 5, 64, 48)).astype(np.float32)
    data = _explorer_data(similarity_explorer(ims, big, max_grid=16))
    assert (data['h'], data['w']) == (16, 12)                             # longer side 16, aspect kept
    pooled = big.reshape(2, 5, 16, 4, 12, 4).mean((3, 5))                 # block means, by hand
    E8 = np.frombuffer(__import__('base64').b64decode(data['emb']), np.int8).reshape(2, 16, 12, 5).astype(np.float64)
    ref = np.moveaxis(pooled, 1, -1); ref = ref / np.linalg.norm(ref, axis=-1, keepdims=True) * 127
    assert np.abs(E8 - ref).max() <= 0.5 + 1e-4
    E = embedded['emb'][:2]
    assert _explorer_data(similarity_explorer(ims, E, query=(7, 5)))['q'] == [7, 5]
    with pytest.raises(DataError, match='outside'): similarity_explorer(ims, E, query=(8, 0))
    with pytest.raises(DataError, match='one entry per image'): similarity_explorer(ims, embedded['emb'][:3])
    with pytest.raises(DataError, match='labels have shape'): similarity_explorer(ims, E, y[:2, :10].numpy())
    f = tmp_path/'sim.html'; similarity_explorer(ims, E).write_html(f)
    assert f.read_text().lower().startswith('<!doctype html>') and 'plotly_click' in f.read_text()


def test_similarity_widget_redraws(batch, embedded):
    x, y = batch
    ims, E, lab = x[:3, 0].numpy(), embedded['emb'][:3], y[:3].numpy()
    w = similarity_widget(ims, E, lab)
    ys, xs = w.children[0].children
    pics = [box.children[1] for box in w.children[1].children]
    assert len(pics) == 3 and all(p.value[:4] == b'\x89PNG' for p in pics)
    before = [p.value for p in pics]
    ys.value, xs.value = 4, 4                                             # another cell: every image is redrawn
    assert all(p.value != b for p, b in zip(pics, before))
    assert '(0, 0)' in w.children[2].value
    rgb = similarity_rgb(ims[1], similarity_map(E[0], (0, 0), E)[1], lab[1])
    assert rgb.shape == (64, 48, 3) and rgb.dtype == np.uint8


def test_results_table_aggregates_by_hand():
    rows = [dict(method='supervised', labelled=2, seed=0, dice=0.60, hd95=10.0),
            dict(method='supervised', labelled=2, seed=1, dice=0.70, hd95=6.0),
            dict(method='supervised', labelled=2, seed=2, dice=0.80, hd95=5.0),
            dict(method='IDEAL', labelled=2, seed=0, dice=0.75, hd95=4.0, extra='ignored'),
            dict(method='IDEAL', labelled=2, seed=1, dice=0.85, hd95=3.0),
            dict(method='IDEAL', labelled=4, seed=0, dice=0.90, hd95=2.0)]
    paper = {'ideal': {'1 vol.': 0.738, '8 vol.': 0.879}, 'PCL': {'1 vol.': 0.671, '2 vol.': 0.850}}
    t = results_table(rows, paper, text=False)
    assert list(t['method']) == ['supervised', 'IDEAL', 'IDEAL', 'PCL']
    assert list(t['labelled'][:3]) == [2, 2, 4] and np.isnan(t.loc[3, 'labelled'])   # a paper-only row has no count of ours
    assert list(t['seeds']) == [3, 2, 1, 0]
    # supervised: mean 0.7, sample std sqrt(((-.1)^2 + 0 + .1^2) / 2) = 0.1; hd95 mean 7, std sqrt((9+1+4)/2) = sqrt(7)
    assert t.loc[0, 'dice mean'] == pytest.approx(0.7) and t.loc[0, 'dice std'] == pytest.approx(0.1)
    assert t.loc[0, 'hd95 mean'] == pytest.approx(7.0) and t.loc[0, 'hd95 std'] == pytest.approx(math.sqrt(7))
    # IDEAL 2: mean 0.8, std sqrt((0.05^2 * 2) / 1) = 0.0707...
    assert t.loc[1, 'dice mean'] == pytest.approx(0.8) and t.loc[1, 'dice std'] == pytest.approx(0.05 * math.sqrt(2))
    assert t.loc[2, 'dice mean'] == pytest.approx(0.9) and math.isnan(t.loc[2, 'dice std'])   # one seed: no spread
    # the paper's numbers: separate columns, matched by method name only, case-insensitively
    assert list(t.columns[-3:]) == ['paper (ACDC): 1 vol.', 'paper (ACDC): 8 vol.', 'paper (ACDC): 2 vol.']
    assert t.loc[1, 'paper (ACDC): 8 vol.'] == pytest.approx(0.879) and t.loc[2, 'paper (ACDC): 1 vol.'] == pytest.approx(0.738)
    assert math.isnan(t.loc[0, 'paper (ACDC): 1 vol.']) and t.loc[3, 'paper (ACDC): 2 vol.'] == pytest.approx(0.85)
    assert math.isnan(t.loc[3, 'dice mean'])                              # the paper's rows carry none of our numbers
    s = results_table(rows, paper)
    assert s.loc[0, 'dice, ours'] == '0.700 ± 0.100' and s.loc[0, 'hd95 (mm), ours'] == '7.000 ± 2.646'
    assert s.loc[2, 'dice, ours'] == '0.900' and s.loc[0, 'paper (ACDC): 1 vol.'] == '–' and s.loc[3, 'dice, ours'] == '–'
    assert 'paper (MMWHS): 1 vol.' in results_table(rows, paper, paper_label='paper (MMWHS)').columns
    assert list(results_table(rows).columns) == ['method', 'labelled', 'seeds', 'dice, ours', 'hd95 (mm), ours']
    with pytest.raises(DataError, match="row 1 lacks 'hd95'"):
        results_table([rows[0], dict(method='x', labelled=1, seed=0, dice=0.5)])
