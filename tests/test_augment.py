"Contract tests for semicontrast.augment: two views with a known dense correspondence."
import math
import pytest, torch
from semicontrast.augment import (random_affine, warp, photometric, TwoViews, correspondence, align,
                                  feature_centres, show_views)

torch.set_num_threads(1)
H = W = 32
FEAT = (8, 8)
SEEDS = [0, 1, 2, 3, 4, 5]


def _ids(b=4, h=H, w=W):
    "Unique id per pixel: id = row * w + col."
    return torch.arange(h * w).view(1, h, w).repeat(b, 1, 1)


def _rowcol(ids, w=W):
    return torch.stack([ids // w, ids % w], -1).float()


def _flip_theta(n):
    "Affines that certainly flip and rotate (random_affine flips only with probability 0.5)."
    th = random_affine(n, rotate=20, flip=False, generator=torch.Generator().manual_seed(9))
    th[:, :, 0] = -th[:, :, 0]  # flip the x column
    return th


def _pairs(seed, b=4):
    g = torch.Generator().manual_seed(seed)
    th1 = random_affine(b, rotate=25, generator=g)
    th2 = random_affine(b, rotate=25, generator=g)
    if seed % 2: th2 = _flip_theta(b)
    return th1, th2


def _analytic(th1, th2, feat_hw):
    "Independent composition, point by point: p0 = A1 p1 + t1, solve A2 p2 = p0 - t2."
    B, (h, w) = th1.shape[0], feat_hw
    p2 = torch.zeros(B, h, w, 2, dtype=torch.float64); ok = torch.zeros(B, h, w, dtype=torch.bool)
    for b in range(B):
        A1, t1 = th1[b, :, :2].double(), th1[b, :, 2].double()
        A2, t2 = th2[b, :, :2].double(), th2[b, :, 2].double()
        for i in range(h):
            for j in range(w):
                p1 = torch.tensor([(2 * j + 1) / w - 1, (2 * i + 1) / h - 1], dtype=torch.float64)
                p0 = A1 @ p1 + t1
                q = torch.linalg.solve(A2, p0 - t2)
                p2[b, i, j] = q
                ok[b, i, j] = bool((p0.abs() <= 1).all() and (q.abs() <= 1).all())
    return p2, ok


def test_random_affine_shapes_and_ranges():
    th = random_affine(64, scale=(0.7, 1.0), rotate=20, translate=0.1, generator=torch.Generator().manual_seed(0))
    assert th.shape == (64, 2, 3) and th.dtype == torch.float32
    det = torch.linalg.det(th[:, :, :2].double())
    s = det.abs().sqrt()  # isotropic scale for aspect 1
    assert (s >= 0.7 - 1e-5).all() and (s <= 1.0 + 1e-5).all()
    assert (det < 0).any() and (det > 0).any()  # some flipped, some not
    assert (th[:, :, 2].abs() <= 0.2 + 1e-6).all()
    ident = random_affine(3, scale=(1, 1), rotate=0, translate=0, flip=False)
    assert torch.allclose(ident, torch.eye(2, 3).expand(3, 2, 3))
    a = random_affine(5, generator=torch.Generator().manual_seed(1))
    b = random_affine(5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b)


def test_identity_theta_gives_identity_correspondence():
    th = torch.eye(2, 3).expand(3, 2, 3).clone()
    for feat in [(4, 4), (8, 8), (4, 8)]:
        grid, valid = correspondence(th, th, (H, W), feat)
        assert grid.shape == (3, *feat, 2) and valid.shape == (3, *feat)
        assert torch.allclose(grid, feature_centres(feat).expand(3, *feat, 2), atol=1e-6)
        assert valid.all()


@pytest.mark.parametrize("seed", SEEDS)
def test_correspondence_matches_ids(seed):
    "View 1 at a valid feature cell and view 2 at its corresponding coordinate show the same original pixel."
    th1, th2 = _pairs(seed)
    ids = _ids()
    v1_ids = warp(ids, th1, size=FEAT, mode='nearest', padding_value=-1)      # id seen by view 1 at cell centres
    v2 = warp(ids, th2, mode='nearest', padding_value=-1)                     # full-resolution view 2
    grid, valid = correspondence(th1, th2, (H, W), FEAT)
    assert valid.any()
    k_ids = align(v2, grid, mode='nearest')
    assert k_ids.dtype == ids.dtype
    # one feature cell = H / FEAT[0] view pixels, at most 1/0.7 original pixels each
    tol = (H / FEAT[0]) / 0.7
    m = valid & (v1_ids >= 0) & (k_ids >= 0)
    assert m.sum() >= 0.9 * valid.sum()  # only border ties can read padding
    d = (_rowcol(v1_ids[m]) - _rowcol(k_ids[m])).abs().amax(-1)
    assert d.max() <= tol, d.max()
    assert d.float().mean() <= 1.5  # typically exact up to nearest rounding


@pytest.mark.parametrize("seed", SEEDS)
def test_correspondence_on_coordinate_ramp(seed):
    "A slice whose channels are its own coordinates: bilinear views carry the original coordinate exactly."
    th1, th2 = _pairs(seed)
    coords = feature_centres((H, W)).permute(2, 0, 1)[None].repeat(4, 1, 1, 1)
    grid, valid = correspondence(th1, th2, (H, W), FEAT)
    q = warp(coords, th1, size=FEAT)      # original coordinate seen by view 1 at each feature cell
    k = align(warp(coords, th2), grid)    # original coordinate seen by view 2 at the partner location
    err = (q - k).abs().amax(1)
    assert err[valid].max() < 2 / FEAT[0]  # less than one feature cell
    assert err[valid].median() < 1e-4      # exact away from the borders


@pytest.mark.parametrize("seed", SEEDS)
def test_invalid_exactly_outside(seed):
    th1, th2 = _pairs(seed)
    grid, valid = correspondence(th1, th2, (H, W), FEAT)
    p2, ok = _analytic(th1, th2, FEAT)
    assert torch.allclose(grid.double(), p2, atol=1e-5)
    assert torch.equal(valid, ok)
    # cross-check with padding: away from the borders, invalid <=> view 1 shows padding or view 2 never saw it
    ids = _ids()
    v1_ids = warp(ids, th1, size=FEAT, mode='nearest', padding_value=-1)
    p0 = feature_centres(FEAT).double().view(1, -1, 2) @ th1[:, :, :2].double().transpose(1, 2) + th1[:, None, :, 2].double()
    p0 = p0.view(4, *FEAT, 2)
    margin = 2.0 / W  # one original pixel from any border
    clear = ((p0.abs() - 1).abs() > margin).all(-1) & ((p2.abs() - 1).abs() > margin).all(-1)
    outside_img = (v1_ids < 0)
    outside_v2 = (p2.abs() > 1).any(-1)
    assert torch.equal((~valid)[clear], (outside_img | outside_v2)[clear])


def test_nearest_warp_keeps_ids():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 7, (3, H, W), generator=g) * 11  # sparse ids: interpolation would invent values
    for dt in [torch.int64, torch.uint8, torch.int32]:
        x = ids.to(dt) if dt != torch.uint8 else (ids % 200).to(dt)
        th = random_affine(3, rotate=30, generator=g)
        out = warp(x, th, mode='nearest', padding_value=255 if dt == torch.uint8 else -1)
        assert out.dtype == dt and out.shape == x.shape
        allowed = set(x.unique().tolist()) | {255 if dt == torch.uint8 else -1}
        assert set(out.unique().tolist()) <= allowed
    # (B,C,H,W) integer maps and output size
    out = warp(ids[:, None], random_affine(3, generator=g), size=(16, 24), mode='nearest', padding_value=-1)
    assert out.shape == (3, 1, 16, 24)
    assert set(out.unique().tolist()) <= set(ids.unique().tolist()) | {-1}
    # identity keeps everything
    assert torch.equal(warp(ids, torch.eye(2, 3)[None].expand(3, 2, 3), mode='nearest'), ids)


def test_warp_bilinear_padding_and_errors():
    x = torch.ones(2, 1, 8, 8)
    th = torch.tensor([[2., 0, 0], [0, 2., 0]]).expand(2, 2, 3)  # zoom out: border of the view is outside
    out = warp(x, th, padding_value=-5.)
    assert out[0, 0, 0, 0] == -5. and out[0, 0, 4, 4] == 1.
    with pytest.raises(ValueError): warp(x, th, mode='cubic')
    with pytest.raises(ValueError): warp(x, torch.eye(2, 3).expand(3, 2, 3))


def test_photometric_changes_intensity_not_geometry():
    sq = torch.zeros(4, 1, H, W); sq[:, :, 5:20, 8:25] = 1.
    inside = sq.bool()
    for seed in [0, 1]:
        y = photometric(sq, noise=0., generator=torch.Generator().manual_seed(seed))
        assert y.shape == sq.shape and not torch.allclose(y, sq)
        # per image: every inside pixel brighter than every outside pixel, values constant on each part
        for b in range(4):
            assert y[b][inside[b]].min() > y[b][~inside[b]].max()
            assert torch.allclose(y[b][inside[b]], y[b][inside[b]][0].expand(inside[b].sum()))
    # with noise and blur, thresholding half-way still recovers the bright square (geometry unchanged)
    y = photometric(sq * 10, noise=0.05, blur_p=1.0, generator=torch.Generator().manual_seed(1))
    mid = (y.amin((1, 2, 3), keepdim=True) + y.amax((1, 2, 3), keepdim=True)) / 2
    m = y > mid
    iou = (m & inside).sum((1, 2, 3)).float() / (m | inside).sum((1, 2, 3)).float()
    assert (iou > 0.85).all(), iou
    # different images get different jitter; generator makes it reproducible
    a = photometric(sq, generator=torch.Generator().manual_seed(2))
    b = photometric(sq, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.allclose(a[0], a[1])
    with pytest.raises(ValueError): photometric(sq[:, 0])


def test_align_identity_when_same_theta():
    for seed in SEEDS:
        th = random_affine(3, rotate=25, generator=torch.Generator().manual_seed(seed))
        for feat in [(4, 4), (8, 8)]:
            grid, valid = correspondence(th, th, (H, W), feat)
            fmap = torch.randn(3, 16, *feat, generator=torch.Generator().manual_seed(seed))
            assert torch.allclose(align(fmap, grid), fmap, atol=1e-5)


def test_two_views_and_extra():
    x = torch.randn(5, 1, H, W)
    ids = _ids(5)
    tv = TwoViews(size=(24, 24), seed=0)
    out = tv(x, ids)
    assert set(out) == {'v1', 'v2', 'theta1', 'theta2', 'extra1', 'extra2'}
    assert out['v1'].shape == (5, 1, 24, 24) and out['v2'].shape == (5, 1, 24, 24)
    assert out['theta1'].shape == (5, 2, 3) and not torch.allclose(out['theta1'], out['theta2'])
    assert out['extra1'].shape == (5, 24, 24) and out['extra1'].dtype == ids.dtype
    assert set(out['extra2'].unique().tolist()) <= set(range(H * W)) | {-1}
    # extras are warped with the same transforms as the views
    assert torch.equal(out['extra1'], warp(ids, out['theta1'], (24, 24), 'nearest', -1))
    # correspondence through the extra maps (region ids stay aligned across views)
    grid, valid = correspondence(out['theta1'], out['theta2'], (24, 24), (6, 6))
    e1 = warp(ids, out['theta1'], (6, 6), 'nearest', -1)
    e2 = align(out['extra2'], grid, mode='nearest')
    m = valid & (e1 >= 0) & (e2 >= 0)
    assert (_rowcol(e1[m]) - _rowcol(e2[m])).abs().amax(-1).max() <= 4 / 0.7 * 32 / 24
    # seeded: reproducible; no extra -> None
    o1, o2 = TwoViews(seed=3)(x), TwoViews(seed=3)(x)
    assert torch.equal(o1['v1'], o2['v1']) and o1['extra1'] is None
    with pytest.raises(ValueError): tv(x[:, 0])
    with pytest.raises(ValueError): tv(x, ids[:, :10])


def test_ready_for_dense_infonce():
    from semicontrast.losses import DenseInfoNCE
    x = torch.randn(2, 1, H, W)
    v = TwoViews(seed=0)(x)
    q = torch.randn(2, 8, 4, 4, requires_grad=True); k = torch.randn(2, 8, 4, 4)
    grid, valid = correspondence(v['theta1'], v['theta2'], (H, W), (4, 4))
    loss = DenseInfoNCE()(q, align(k, grid), valid)
    assert torch.isfinite(loss)
    loss.backward()
    assert q.grad is not None


def test_show_views():
    x = torch.rand(2, 1, H, W)
    v = TwoViews(seed=0)(x)
    fig = show_views(x, v, idx=1, points=4)
    assert len(fig.data) == 6
    n = len(fig.data[1].x)
    assert 1 <= n <= 4 and len(fig.data[3].x) == n and len(fig.data[5].x) == n
    assert len(fig.layout.shapes) == n
    assert list(fig.data[3].marker.color) == list(fig.data[5].marker.color)
