"Figures build from real model outputs; the report is self-contained and the result card is written atomically."
import json, math
from pathlib import Path
import numpy as np
import pytest
import torch

from semicontrast.core import DataError, set_seed
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess
from semicontrast.models import UNet
from semicontrast.metrics import predict_volume, evaluate
from semicontrast.viz import slice_viewer, case_gallery, volume_explorer, training_curves, metric_boxplot, label_colorscale, overlay_rgb, class_color
from semicontrast.report import write_result, write_report, report_html


@pytest.fixture(scope='module')
def model_outputs():
    set_seed(0)
    cases = synthetic_phantoms(n=3, shape=(5, 32, 32), seed=4)
    prep = Preprocess(size=(32, 32))
    model = UNet(n_classes=3, base=8, depth=3)
    preds = {c.id: predict_volume(model, c, prep) for c in cases}
    ev = evaluate(model, cases, prep, 3, class_names=['background', 'outer', 'inner'])
    return cases, preds, ev


def test_slice_viewer_from_model_prediction(model_outputs):
    cases, preds, _ = model_outputs
    c = cases[0]
    fig = slice_viewer(c.image, c.label, preds[c.id], n_classes=3)
    Z = c.n_slices
    assert len(fig.data) == Z * 4 and len(fig.layout.sliders[0].steps) == Z
    visible = [i for i, tr in enumerate(fig.data) if tr.visible]
    assert len(visible) == 4
    # the visible prediction trace shows the model's prediction of the active slice
    z = fig.layout.sliders[0].active
    np.testing.assert_array_equal(np.asarray(fig.data[z * 4 + 3].z), preds[c.id][z].astype(np.float32))
    np.testing.assert_array_equal(np.asarray(fig.data[z * 4 + 1].z), c.label[z].astype(np.float32))
    # each slider step shows exactly the traces of its slice
    for k, step in enumerate(fig.layout.sliders[0].steps):
        vis = step.args[0]['visible']
        assert [i for i, v in enumerate(vis) if v] == list(range(k * 4, k * 4 + 4))


def test_slice_viewer_refuses_mismatched_shapes(model_outputs):
    cases, preds, _ = model_outputs
    with pytest.raises(DataError, match='pred has shape'):
        slice_viewer(cases[0].image, cases[0].label, preds[cases[0].id][:2])


def test_colorscale_background_transparent():
    cs = label_colorscale(3)
    assert cs[0][1] == 'rgba(0,0,0,0)' and cs[-1][0] == 1.0 and len(cs) == 6


def test_gallery_explorer_curves_boxplot(model_outputs):
    cases, preds, ev = model_outputs
    g = case_gallery(cases, n=3)
    assert len(g.data) == 6
    w = volume_explorer(cases, preds)
    pick, zs = w.children[0].children
    assert list(pick.options) == [c.id for c in cases] and zs.max == cases[0].n_slices - 1
    left, right = w.children[1].children[0].children[1], w.children[1].children[1].children[1]
    first = left.value
    assert first[:4] == b'\x89PNG' and right.value[:4] == b'\x89PNG'
    zs.value = (zs.value + 1) % (zs.max + 1)  # moving the slider redraws
    assert left.value != first
    pick.value = cases[1].id  # switching case updates the slice range
    assert zs.max == cases[1].n_slices - 1
    with pytest.raises(DataError, match='prediction of'): volume_explorer(cases, {cases[0].id: preds[cases[0].id][:1]})
    b = metric_boxplot(ev['per_case'], 'dice')
    assert [tr.name for tr in b.data] == ['outer', 'inner']
    assert list(b.data[0].y) == [ev['per_case'][c.id]['outer']['dice'] for c in cases]
    tc = training_curves([{'epoch': 0, 'train_loss': 1.0, 'valid_loss': 2.0, 'fg_dice': 0.1}])
    assert {tr.name for tr in tc.data} == {'train_loss', 'valid_loss', 'fg_dice'}
    with pytest.raises(DataError): training_curves([])


def test_report_and_result_card(tmp_path, model_outputs):
    cases, preds, ev = model_outputs
    card = dict(method='supervised', dataset={'name': 'phantom'}, seed=0, per_case=ev['per_case'],
                per_class=ev['per_class'], mean=ev['mean'], std=ev['std'],
                split={'labelled': ['a'], 'unlabelled': [], 'valid': ['b'], 'test': [c.id for c in cases]},
                history=[{'epoch': 0, 'train_loss': 1.0, 'valid_loss': float('nan'), 'fg_dice': 0.2}])
    write_result(card, tmp_path/'result.json')
    back = json.loads((tmp_path/'result.json').read_text())
    assert back['history'][0]['valid_loss'] is None and back['mean']['dice'] == pytest.approx(ev['mean']['dice'])
    page = report_html(card, figures=[('viewer', slice_viewer(cases[0].image, cases[0].label, preds[cases[0].id]))])
    assert page.count('class="plotly-graph-div"') == 4  # 2 box plots + curves + the extra figure
    assert '<script src="http' not in page and 'phantom' in page
    for c in cases: assert c.id in page
    write_report(card, tmp_path/'report.html')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['report.html', 'result.json']


def test_write_result_leaves_no_partial_file(tmp_path):
    class Bad:  # json cannot serialise this: the write must fail without leaving a file behind
        pass
    with pytest.raises(TypeError): write_result({'x': Bad()}, tmp_path/'result.json')
    assert list(tmp_path.iterdir()) == []


def test_overlay_rgb_blends_class_colours():
    img = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    lbl = np.zeros((4, 4), np.uint8); lbl[1, 2] = 2
    pic = overlay_rgb(img, lbl, lo=0.0, hi=1.0, opacity=0.5)
    assert pic.shape == (4, 4, 3) and pic.dtype == np.uint8
    assert (pic[0, 0] == 0).all() and (pic[3, 3] == 255).all()          # grey ramp where there is no label
    grey = img[1, 2]
    h = class_color(2).lstrip('#')
    col = np.array([int(h[i:i + 2], 16) for i in (0, 2, 4)]) / 255      # class 2's colour, as every figure shows it
    np.testing.assert_allclose(pic[1, 2], np.round((0.5 * grey + 0.5 * col) * 255), atol=1)
