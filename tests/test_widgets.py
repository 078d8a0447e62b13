"""The library's ipywidgets explorers, as a notebook user gets them: built, drawn at the size asked for, and redrawn
when a control moves. tools/test.sh runs this file twice: with the ipywidgets of the main environment (8.x) and in a
second small environment with ipywidgets 7.x (what Colab has shipped), so both must pass.

A widget's picture is a PNG in an `ipywidgets.Image`; its on-screen size is set as the <img> width / height and as
the element's inline style (layout), which a front end's stylesheet cannot stretch. These tests check that size
against the image's own aspect ratio, by hand.
"""
import io
import numpy as np
import pytest
import ipywidgets
from PIL import Image

from semicontrast.core import IGNORE_INDEX
from semicontrast.data import synthetic_phantoms
from semicontrast.viz import volume_explorer, similarity_widget, superpixel_widget


def _png_size(b:bytes):
    assert b[:4] == b'\x89PNG', 'not a PNG'
    return Image.open(io.BytesIO(b)).size                     # (width, height)

def _shown(pic):
    "The on-screen size a widget image asks for, as (width, height) integers; both ways of saying it must agree."
    w, h = pic.layout.width, pic.layout.height
    assert w.endswith('px') and h.endswith('px'), (w, h)
    assert (str(pic.width), str(pic.height)) == (w[:-2], h[:-2])
    assert pic.layout.object_fit == 'contain'
    return int(w[:-2]), int(h[:-2])

def _expected(H, W, display_px):
    f = display_px / max(H, W)
    return round(W * f), round(H * f)


def test_ipywidgets_version_is_supported():
    major = int(ipywidgets.__version__.split('.')[0])
    print('ipywidgets', ipywidgets.__version__)
    assert major in (7, 8), ipywidgets.__version__


@pytest.mark.parametrize('display_px', [160, 320])
def test_volume_explorer_honours_display_size(display_px):
    cases = synthetic_phantoms(n=2, shape=(6, 40, 52), seed=3)
    preds = {cases[0].id: np.roll(cases[0].label, 2, axis=1)}
    w = volume_explorer(cases, preds, display_px=display_px)
    (pick, zs), (left_box, right_box) = w.children[0].children, w.children[1].children
    left, right = left_box.children[1], right_box.children[1]
    assert _shown(left) == _shown(right) == _expected(40, 52, display_px)      # wider than tall: 52 -> display_px
    pw, ph = _png_size(left.value)
    assert pw / ph == pytest.approx(52 / 40) and pw >= 52
    before = left.value
    zs.value = (zs.value + 1) % (zs.max + 1)
    assert left.value != before                                                  # a new slice is drawn
    pick.value = cases[1].id                                                     # a case without a prediction
    assert right.layout.display == 'none' and _shown(left) == _expected(40, 52, display_px)


def test_similarity_widget_honours_display_size_and_redraws():
    rng = np.random.default_rng(0)
    ims = rng.normal(size=(3, 48, 36)).astype(np.float32)
    E = rng.normal(size=(3, 8, 12, 9)).astype(np.float32)
    lab = np.zeros((3, 48, 36), np.int64); lab[:, 10:20, 5:15] = 1; lab[:, :2] = IGNORE_INDEX
    w = similarity_widget(ims, E, lab, display_px=150)
    ys, xs = w.children[0].children
    pics = [box.children[1] for box in w.children[1].children]
    assert all(_shown(p) == _expected(48, 36, 150) for p in pics)
    before = [p.value for p in pics]
    ys.value, xs.value = 40, 30
    assert all(p.value != b for p, b in zip(pics, before))
    assert '(10, 7)' in w.children[2].value                                      # pixel (40, 30) -> cell (10, 7) of 12 x 9


def test_superpixel_widget_honours_display_size():
    img = synthetic_phantoms(n=1, shape=(4, 30, 60), seed=1)[0].image[1]
    w = superpixel_widget(img, display_px=300)
    (sc, sg, ms), info, pic = w.children[0].children, w.children[1], w.children[2]
    assert _shown(pic) == (300, 150)
    first = pic.value
    sc.value = 900
    assert pic.value != first and _shown(pic) == (300, 150)
