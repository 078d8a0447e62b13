"Contracts of semicontrast.learner: the validation metric, the supervised baseline, and the layering rules."
import subprocess, sys
import numpy as np
import pytest
import torch

from semicontrast.core import IGNORE_INDEX, DataError, set_seed
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, supervised_dls, two_stream_dls
from semicontrast.learner import ForegroundDice, supervised_learner, history
from fastai.data.core import DataLoaders


def ref_fg_dice(preds, targets, n_classes, ignore=IGNORE_INDEX):
    "Obviously-correct reference: pool all valid pixels of all batches, Dice per class by counting."
    p = np.concatenate([a.ravel() for a in preds]); t = np.concatenate([a.ravel() for a in targets])
    keep = t != ignore
    p, t = p[keep], t[keep]
    out = []
    for c in range(1, n_classes):
        inter = sum(1 for a, b in zip(p, t) if a == c and b == c)
        tot = sum(1 for a in p if a == c) + sum(1 for b in t if b == c)
        out.append(2 * inter / tot if tot else float('nan'))
    return out


@pytest.mark.parametrize('n_classes,seed', [(2, 0), (3, 1), (4, 2)])
def test_foreground_dice_matches_reference(n_classes, seed):
    g = np.random.default_rng(seed)
    m = ForegroundDice(n_classes)
    preds, targets = [], []
    for _ in range(3):  # three batches of different sizes
        b = int(g.integers(1, 4))
        p = g.integers(0, n_classes, (b, 6, 5)); t = g.integers(0, n_classes, (b, 6, 5))
        t[g.random(t.shape) < 0.2] = IGNORE_INDEX
        preds.append(p); targets.append(t)
        m.update(torch.as_tensor(p), torch.as_tensor(t))
    ref = ref_fg_dice(preds, targets, n_classes)
    np.testing.assert_allclose(m.per_class, ref)
    assert m.value == pytest.approx(np.nanmean(ref))
    m.reset()
    assert all(np.isnan(v) for v in m.per_class)


def test_foreground_dice_is_not_a_mean_of_batch_dice():
    # batch 1: tiny structure, missed; batch 2: large structure, found. Pooled Dice != mean of per-batch Dice.
    m = ForegroundDice(2)
    t1 = torch.zeros(1, 4, 4, dtype=torch.long); t1[0, 0, 0] = 1
    m.update(torch.zeros_like(t1), t1)
    t2 = torch.ones(1, 4, 4, dtype=torch.long)
    m.update(t2.clone(), t2)
    assert m.value == pytest.approx(2 * 16 / (16 + 17))


@pytest.fixture(scope='module')
def phantom_dls():
    set_seed(0)
    cases = synthetic_phantoms(n=6, shape=(8, 32, 32), n_classes=3, seed=0)
    return cases, supervised_dls(cases[:4], cases[4:], Preprocess(size=(32, 32)), bs=8, seed=0)


def test_supervised_fit_learns(phantom_dls):
    cases, dls = phantom_dls
    set_seed(0)
    learn = supervised_learner(dls, n_classes=3, base=8, depth=3)
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(12, 1e-2)
    h = history(learn)
    assert len(h) == 12 and set(h[0]) == {'epoch', 'train_loss', 'valid_loss', 'fg_dice'}
    assert h[-1]['train_loss'] < 0.8 * h[0]['train_loss']
    assert h[-1]['fg_dice'] > h[0]['fg_dice']


def test_supervised_learner_checks_and_infers_channels(phantom_dls):
    _, dls = phantom_dls
    learn = supervised_learner(dls, n_classes=3, base=8, depth=3)
    assert learn.model.in_ch == 1 and learn.model.n_classes == 3
    with pytest.raises(DataError, match='n_classes'): supervised_learner(dls, n_classes=1)


def test_two_stream_batches_train_with_the_supervised_loss():
    # the unlabelled half of every batch is IGNORE_INDEX, so the supervised loss only sees the labelled half:
    # a step must run and its loss must equal the loss on the labelled half alone.
    set_seed(0)
    cases = synthetic_phantoms(n=6, shape=(6, 32, 32), seed=1)
    dls = two_stream_dls(cases[:2], cases[2:4], cases[4:], Preprocess(size=(32, 32)), bs_labelled=4, bs_unlabelled=4, seed=0)
    learn = supervised_learner(dls, n_classes=3, base=8, depth=3)
    xb, yb = dls.one_batch()
    learn.model.eval()
    with torch.no_grad():
        out = learn.model(xb)
        full = learn.loss_func(out, yb)
        lab = learn.loss_func(out[:4], yb[:4])
    assert torch.isclose(full, lab)
    assert (yb[4:] == IGNORE_INDEX).all() and (yb[:4] != IGNORE_INDEX).any()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert np.isfinite(history(learn)[0]['train_loss'])


def test_library_never_imports_torchvision_and_losses_never_import_fastai():
    code = ("import sys; import semicontrast.cli, semicontrast.viz, semicontrast.report; "
            "assert 'torchvision' not in sys.modules, 'torchvision imported'")
    subprocess.run([sys.executable, '-c', code], check=True)
    code = ("import sys; import semicontrast.losses, semicontrast.metrics; "
            "bad = [m for m in sys.modules if m.split('.')[0] == 'fastai']; assert not bad, bad")
    subprocess.run([sys.executable, '-c', code], check=True)


def test_validation_dice_is_per_volume(phantom_dls):
    "The learner's validation metric equals a by-hand mean over the validation volumes of their per-class Dice (cases span batches)."
    cases, dls = phantom_dls
    vd = dls.valid.new(bs=3)   # 8 slices per case: batches of 3 cut through the cases
    learn = supervised_learner(DataLoaders(dls.train, vd), n_classes=3)
    learn.fit(1, 1e-2)
    got = learn.validate()[1]
    learn.model.eval()
    ds = vd.dataset
    with torch.no_grad(): pred = learn.model(ds.x).argmax(1)
    by_case = {}
    for i, (cid, _) in enumerate(ds.index): by_case.setdefault(cid, []).append(i)
    dices = []
    for cid, rows in by_case.items():
        p, t = pred[rows], ds.y[rows].long()
        per = []
        for c in (1, 2):
            inter = int(((p == c) & (t == c)).sum()); tot = int((p == c).sum() + (t == c).sum())
            per.append(2 * inter / tot if tot else 1.0)
        dices.append(per)
    assert len(by_case) == 2 and got == pytest.approx(np.mean([np.mean(d) for d in dices]), abs=1e-6)
    vols = learn.metrics[0].per_volume_dice   # each volume's own Dice, not a share of a pooled count
    assert list(vols) == list(by_case) and np.allclose([vols[c] for c in by_case], dices, atol=1e-9)
