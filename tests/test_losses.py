"Contract tests for semicontrast.losses: Dice and Dice+CE against slow loop references (values and gradients)."
import itertools, math
import pytest, torch
from semicontrast.core import IGNORE_INDEX
from semicontrast.losses import soft_dice_loss, DiceCELoss

torch.set_num_threads(1)


# ---------- slow, obviously-correct references (python loops over pixels and classes) ----------
def _pixels(logits):
    B, spatial = logits.shape[0], logits.shape[2:]
    return itertools.product(range(B), *[range(s) for s in spatial])

def _probs(logits, idx):
    "softmax of one pixel's logit vector, written out"
    b, rest = idx[0], idx[1:]
    K = logits.shape[1]
    ex = [torch.exp(logits[(b, k) + rest]) for k in range(K)]
    tot = sum(ex)
    return [e / tot for e in ex]

def ref_dice(logits, target, ignore_index=IGNORE_INDEX, include_background=False, smooth=1e-5):
    K = logits.shape[1]
    inter, psum, gsum = [0.] * K, [0.] * K, [0.] * K
    predicted = [False] * K
    n_valid = 0
    for idx in _pixels(logits):
        t = int(target[idx])
        if t == ignore_index: continue
        n_valid += 1
        p = _probs(logits, idx)
        best = max(range(K), key=lambda k: float(p[k].detach()))
        predicted[best] = True
        for c in range(K):
            g = 1.0 if t == c else 0.0
            inter[c] = inter[c] + p[c] * g
            psum[c] = psum[c] + p[c]
            gsum[c] = gsum[c] + g
    if n_valid == 0: return None
    terms = []
    for c in range(0 if include_background else 1, K):
        if gsum[c] > 0 or predicted[c]:
            terms.append(1 - (2 * inter[c] + smooth) / (psum[c] + gsum[c] + smooth))
    if not terms: return None
    return sum(terms) / len(terms)

def ref_ce(logits, target, ignore_index=IGNORE_INDEX):
    tot, n = 0., 0
    for idx in _pixels(logits):
        t = int(target[idx])
        if t == ignore_index: continue
        tot = tot - torch.log(_probs(logits, idx)[t]); n += 1
    return None if n == 0 else tot / n


def make(shape, ignore_frac, seed, scale=2.0):
    g = torch.Generator().manual_seed(seed)
    B, K = shape[:2]
    logits = (torch.randn(shape, generator=g, dtype=torch.float64) * scale)
    target = torch.randint(0, K, (B,) + tuple(shape[2:]), generator=g)
    if ignore_frac > 0:
        target[torch.rand(target.shape, generator=g) < ignore_frac] = IGNORE_INDEX
    return logits, target

SHAPES = [(1, 2, 3, 3), (2, 3, 4, 5), (3, 4, 2, 6), (2, 3, 2, 3, 4)]


def _grad(f, x):
    x = x.clone().requires_grad_(True)
    out = f(x)
    if out is None: return None, None
    g, = torch.autograd.grad(out, x)
    return out.detach(), g


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ignore_frac", [0.0, 0.4])
@pytest.mark.parametrize("include_background", [False, True])
def test_soft_dice_matches_reference(shape, ignore_frac, include_background):
    logits, target = make(shape, ignore_frac, seed=sum(shape) + int(10 * ignore_frac))
    v, g = _grad(lambda x: soft_dice_loss(x, target, include_background=include_background), logits)
    rv, rg = _grad(lambda x: ref_dice(x, target, include_background=include_background), logits)
    assert v.dtype == torch.float32
    assert math.isclose(float(v), float(rv), rel_tol=1e-5, abs_tol=1e-6)
    assert torch.allclose(g.double(), rg, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("ignore_frac", [0.0, 0.5])
@pytest.mark.parametrize("weights", [(0.5, 0.5), (1.0, 0.0), (0.0, 1.0), (0.3, 2.0)])
def test_dicece_matches_reference(shape, ignore_frac, weights):
    logits, target = make(shape, ignore_frac, seed=7 + sum(shape))
    wce, wd = weights
    loss = DiceCELoss(ce_weight=wce, dice_weight=wd)
    def ref(x):
        d = ref_dice(x, target)
        return wce * ref_ce(x, target) + wd * (d if d is not None else 0.)
    v, g = _grad(lambda x: loss(x, target), logits)
    rv, rg = _grad(ref, logits)
    assert v.ndim == 0 and v.dtype == torch.float32
    assert math.isclose(float(v), float(rv), rel_tol=1e-5, abs_tol=1e-6)
    assert torch.allclose(g.double(), rg, atol=1e-6, rtol=1e-4)


def test_ignored_pixels_get_no_gradient_and_do_not_matter():
    logits, target = make((2, 3, 5, 5), 0.5, seed=3)
    ign = target == IGNORE_INDEX
    for fn in (soft_dice_loss, DiceCELoss()):
        v, g = _grad(lambda x: fn(x, target), logits)
        assert g.movedim(1, -1)[ign].abs().max() == 0
        other = logits.clone(); other.movedim(1, -1)[ign] = 50.
        assert torch.allclose(fn(other, target), v)


@pytest.mark.parametrize("fn", [soft_dice_loss, DiceCELoss(), DiceCELoss(include_background=True)])
def test_all_ignored_batch_is_zero_with_graph(fn):
    logits = torch.randn(3, 4, 6, 6, requires_grad=True)
    target = torch.full((3, 6, 6), IGNORE_INDEX)
    out = fn(logits, target)
    assert out.item() == 0.0 and not torch.isnan(out)
    assert out.requires_grad
    out.backward()
    assert logits.grad is not None and logits.grad.abs().sum() == 0


def test_background_only_and_perfect():
    target = torch.zeros(2, 4, 4, dtype=torch.long)
    logits = torch.zeros(2, 3, 4, 4); logits[:, 0] = 10.
    logits.requires_grad_(True)
    out = soft_dice_loss(logits, target)          # no foreground anywhere, none predicted: nothing to count
    assert out.item() == 0.0 and out.requires_grad
    # with background counted, a confident correct prediction gives ~0
    assert soft_dice_loss(logits * 3, target, include_background=True).item() < 1e-4
    # a false-positive class is counted: loss ~ 1
    fp = torch.zeros(2, 3, 4, 4); fp[:, 2] = 10.
    assert soft_dice_loss(fp, target).item() > 0.99


def test_fp16_input():
    logits, target = make((2, 3, 4, 4), 0.3, seed=11)
    h = logits.half()
    ref_in = h.double()
    for fn, ref in ((soft_dice_loss, lambda x: ref_dice(x, target)),
                    (DiceCELoss(), lambda x: 0.5 * ref_ce(x, target) + 0.5 * ref_dice(x, target))):
        x = h.clone().requires_grad_(True)
        out = fn(x, target)
        assert out.dtype == torch.float32 and torch.isfinite(out)
        out.backward()
        assert x.grad.dtype == torch.float16 and torch.isfinite(x.grad).all()
        assert math.isclose(out.item(), float(ref(ref_in)), rel_tol=1e-4, abs_tol=1e-5)


@pytest.mark.parametrize("bad", [3, 7, -1, 254])
def test_bad_target_values(bad):
    logits = torch.randn(2, 3, 4, 4)
    target = torch.randint(0, 3, (2, 4, 4)); target[0, 1, 1] = bad
    for fn in (soft_dice_loss, DiceCELoss()):
        with pytest.raises(ValueError, match=str(bad)): fn(logits, target)


def test_shape_and_dtype_errors():
    logits = torch.randn(2, 3, 4, 4)
    with pytest.raises(ValueError): DiceCELoss()(logits, torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError): DiceCELoss()(logits, torch.zeros(2, 4, 4))          # float target
    # (B,1,H,W) target is accepted
    t = torch.randint(0, 3, (2, 1, 4, 4))
    assert torch.allclose(DiceCELoss()(logits, t), DiceCELoss()(logits, t[:, 0]))
    # uint8 targets (as stored in label volumes) work
    assert torch.allclose(DiceCELoss()(logits, t[:, 0].to(torch.uint8)), DiceCELoss()(logits, t[:, 0]))


def test_custom_ignore_index_and_none():
    logits, target = make((2, 3, 4, 4), 0.0, seed=5)
    t2 = target.clone(); t2[0] = -100
    v = DiceCELoss(ignore_index=-100)(logits, t2)
    rv = 0.5 * ref_ce(logits, t2, -100) + 0.5 * ref_dice(logits, t2, -100)
    assert math.isclose(float(v), float(rv), rel_tol=1e-5)
    v = DiceCELoss(ignore_index=None)(logits, target)
    rv = 0.5 * ref_ce(logits, target, None) + 0.5 * ref_dice(logits, target, None)
    assert math.isclose(float(v), float(rv), rel_tol=1e-5)
    with pytest.raises(ValueError): DiceCELoss(ignore_index=None)(logits, torch.full((2, 4, 4), 255))


def test_activation_decodes_and_subclass():
    loss = DiceCELoss()
    x = torch.randn(2, 4, 3, 3)
    a = loss.activation(x)
    assert torch.allclose(a.sum(1), torch.ones(2, 3, 3)) and (a >= 0).all()
    d = loss.decodes(x)
    assert d.shape == (2, 3, 3)
    for b, i, j in itertools.product(range(2), range(3), range(3)):
        assert d[b, i, j] == max(range(4), key=lambda k: x[b, k, i, j])
    class Sub(torch.Tensor): pass
    t = torch.randint(0, 4, (2, 3, 3))
    assert torch.allclose(loss(x.as_subclass(Sub), t.as_subclass(Sub)), loss(x, t))


@pytest.mark.parametrize("smooth", [0.5, 2.0])
def test_smooth_placement(smooth):
    logits, target = make((2, 3, 3, 4), 0.2, seed=21)
    v, g = _grad(lambda x: soft_dice_loss(x, target, smooth=smooth), logits)
    rv, rg = _grad(lambda x: ref_dice(x, target, smooth=smooth), logits)
    assert math.isclose(float(v), float(rv), rel_tol=1e-6)
    assert torch.allclose(g.double(), rg, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_absent_classes_not_counted(seed):
    "K=4 but the target only uses classes {0,1} and class 3 is never predicted: the reference counts only present classes."
    logits, _ = make((2, 4, 4, 4), 0.0, seed=seed)
    logits[:, 3] -= 20.                                    # class 3 never the argmax
    g = torch.Generator().manual_seed(seed)
    target = torch.randint(0, 2, (2, 4, 4), generator=g)
    v, gr = _grad(lambda x: soft_dice_loss(x, target), logits)
    rv, rg = _grad(lambda x: ref_dice(x, target), logits)
    assert math.isclose(float(v), float(rv), rel_tol=1e-5)
    assert torch.allclose(gr.double(), rg, atol=1e-6, rtol=1e-4)
