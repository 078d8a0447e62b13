"""IDEAL/CPS two-stream fine-tuning: `TwoStreamUNet` (models) and the `TwoStreamConsistency` / `EMAUpdate` callbacks."""
import copy
import pytest
import torch
from torch import nn
from fastai.callback.core import Callback
from fastai.data.core import DataLoaders
from fastai.learner import Learner
from fastai.optimizer import SGD

from semicontrast.core import IGNORE_INDEX
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, two_stream_dls
from semicontrast.losses import DiceCELoss, cross_pseudo_loss, sigmoid_rampup
from semicontrast.models import Decoder, Encoder, TwoStreamUNet, unet_widths
from semicontrast.callbacks import EMAUpdate, TwoStreamConsistency

def n_params(m): return sum(p.numel() for p in m.parameters())

@pytest.fixture
def net():
    torch.manual_seed(0)
    return TwoStreamUNet(in_ch=1, n_classes=3, base=4, depth=3).eval()

def test_shapes(net):
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        la, lb = net.streams(x)
        out = net(x)
    assert la.shape == lb.shape == out.shape == (2, 3, 32, 32)
    assert net.widths == (4, 8, 16, 32) and net.depth == 3

def test_encoder_is_shared(net):
    encs = [m for m in net.modules() if isinstance(m, Encoder)]
    assert len(encs) == 1
    assert n_params(net) == n_params(net.encoder) + n_params(net.decoder_a) + n_params(net.decoder_b)
    x = torch.randn(2, 1, 32, 32)
    with torch.no_grad():
        a0, b0 = net.streams(x)
        net.encoder.levels[0][0].weight.add_(0.5)
        a1, b1 = net.streams(x)
    assert not torch.allclose(a0, a1) and not torch.allclose(b0, b1)

def test_pretrained_encoder_kept():
    pre = Encoder(1, unet_widths(4, 3))
    w = [p.detach().clone() for p in pre.parameters()]
    ts = TwoStreamUNet(n_classes=3, encoder=pre)
    assert ts.encoder is pre
    assert all(torch.equal(a, b) for a, b in zip(w, pre.parameters()))
    with pytest.raises(ValueError, match='in_ch'): TwoStreamUNet(in_ch=3, encoder=pre)
    with pytest.raises(ValueError, match='widths'): TwoStreamUNet(widths=(8, 16, 32, 64), encoder=pre)

def test_decoders_differ(net):
    assert isinstance(net.decoder_a, Decoder) and isinstance(net.decoder_b, Decoder)
    assert (net.decoder_a.up, net.decoder_b.up) == ('transpose', 'bilinear')
    ta = {type(m) for m in net.decoder_a.modules()}; tb = {type(m) for m in net.decoder_b.modules()}
    assert nn.ConvTranspose2d in ta and nn.ConvTranspose2d not in tb
    assert nn.Upsample in tb and nn.Upsample not in ta
    assert n_params(net.decoder_a) != n_params(net.decoder_b)

def test_forward_is_log_mean_softmax(net):
    x = torch.randn(3, 1, 32, 32)
    with torch.no_grad():
        la, lb = net.streams(x)
        out = net(x)
    torch.testing.assert_close(out, torch.log((la.softmax(1) + lb.softmax(1)) / 2), atol=1e-5, rtol=1e-5)
    assert torch.equal(out.argmax(1), ((la.softmax(1) + lb.softmax(1)) / 2).argmax(1))

def test_perturb_training_only():
    torch.manual_seed(0)
    ts = TwoStreamUNet(n_classes=2, base=4, depth=2, dropout=0.0, perturb=0.5)
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        ts.eval(); assert torch.equal(ts(x), ts(x))
        ts.train(); assert not torch.equal(ts(x)['logits'][0], ts(x)['logits'][0])
    with pytest.raises(ValueError): TwoStreamUNet(perturb=-1)

def test_training_forward_returns_the_streams_and_keeps_nothing():
    "Explicit data flow: training returns dict(logits=(a, b)); nothing of the batch is stored on the model."
    torch.manual_seed(0)
    ts = TwoStreamUNet(n_classes=2, base=4, depth=2, dropout=0.0).train()
    before = set(vars(ts))
    out = ts(torch.randn(2, 1, 16, 16))
    assert list(out) == ['logits'] and [t.shape for t in out['logits']] == [(2, 2, 16, 16)] * 2
    assert set(vars(ts)) == before and not any(isinstance(v, torch.Tensor) for v in vars(ts).values())
    c = copy.deepcopy(ts)
    assert type(c).__getstate__ is nn.Module.__getstate__   # a plain module: no custom pickling needed

class Keep(Callback):
    "Records, after TwoStreamConsistency.after_loss, what the loss was built from."
    order = 6
    def __init__(self, cons): self.cons, self.rows, self.valid = cons, [], []
    def after_loss(self):
        if self.training:
            la, lb = (s.detach().clone() for s in self.cons.cache['logits'])
            self.rows.append(dict(it=self.train_iter, la=la, lb=lb, y=self.yb[0].clone(), loss=self.loss_grad.detach().clone(),
                                  logged=self.loss.detach().clone(), pred=self.pred.detach().clone(), last=dict(self.cons.last)))
        else:
            self.valid.append(dict(pred=self.pred.detach().clone(), y=self.yb[0].clone(), loss=self.loss_grad.detach().clone(),
                                   streams=self.cons.cache))

def _fit(**kw):
    cases = synthetic_phantoms(n=6, shape=(6, 32, 32), n_classes=3, seed=1)
    dls = two_stream_dls(cases[:2], cases[2:4], cases[4:], Preprocess(size=(32, 32)), bs_labelled=4, bs_unlabelled=4, seed=0)
    torch.manual_seed(0)
    cons = TwoStreamConsistency(**kw)
    keep = Keep(cons)
    learn = Learner(dls, TwoStreamUNet(n_classes=3, base=4, depth=3), loss_func=DiceCELoss(), opt_func=SGD, lr=1e-2,
                    cbs=[cons, keep])
    with learn.no_logging(): learn.fit(1)
    return learn, cons, keep

@pytest.fixture(scope='module')
def fitted(): return _fit(cps_weight=0.5, rampup_iters=4)

def test_one_epoch_loss_is_sup_plus_ramped_cps(fitted):
    learn, cons, keep = fitted
    assert len(keep.rows) >= 3
    lf = DiceCELoss()
    for r in keep.rows:
        la, lb, y = r['la'], r['lb'], r['y']
        lam = 0.5 * sigmoid_rampup(r['it'], 4)
        assert r['last']['weight'] == pytest.approx(lam) and r['last']['iter'] == r['it']
        sup_a, sup_b, cps = lf(la, y), lf(lb, y), cross_pseudo_loss(la, lb)
        torch.testing.assert_close(r['loss'], sup_a + sup_b + lam * cps, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(r['logged'], r['loss'])
        torch.testing.assert_close(r['last']['cps'], cps, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(r['last']['sup_a'] + r['last']['sup_b'], sup_a + sup_b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(r['pred'], TwoStreamUNet.ensemble(la, lb), atol=1e-5, rtol=1e-5)
        assert (y[4:] == IGNORE_INDEX).all() and (y[:4] != IGNORE_INDEX).any()   # 4 labelled then 4 unlabelled
    its = [r['it'] for r in keep.rows]
    assert its == list(range(len(its)))
    ws = [r['last']['weight'] for r in keep.rows]
    assert ws == sorted(ws) and ws[0] == pytest.approx(0.5 * sigmoid_rampup(0, 4))
    if len(ws) > 4: assert ws[4] == pytest.approx(0.5)

def test_validation_loss_is_plain(fitted):
    learn, cons, keep = fitted
    lf = DiceCELoss()
    assert keep.valid and all(v['streams'] is None for v in keep.valid)
    for v in keep.valid:
        torch.testing.assert_close(v['loss'], lf(v['pred'], v['y']), atol=1e-6, rtol=1e-6)
    learn.model.eval()
    with torch.no_grad(): tot = [(lf(learn.model(xb), yb).item() * len(yb), len(yb)) for xb, yb in learn.dls.valid]
    with learn.no_logging(): val = learn.validate()[0]
    assert val == pytest.approx(sum(t for t, _ in tot) / sum(n for _, n in tot), rel=1e-4)

def test_cps_on_unlabelled_only():
    learn, cons, keep = _fit(cps_weight=1.0, rampup_iters=0, on_labelled=False, cps_threshold=0.4)
    lf = DiceCELoss()
    r = keep.rows[1]
    la, lb, y = r['la'], r['lb'], r['y']
    assert r['last']['weight'] == 1.0
    expect = lf(la, y) + lf(lb, y) + cross_pseudo_loss(la[4:], lb[4:], threshold=0.4)
    torch.testing.assert_close(r['loss'], expect, atol=1e-5, rtol=1e-5)

def test_needs_two_stream_model():
    from semicontrast.models import UNet
    cases = synthetic_phantoms(n=4, shape=(4, 16, 16), n_classes=2, seed=0)
    dls = two_stream_dls(cases[:1], cases[1:2], cases[2:], Preprocess(size=(16, 16)), bs_labelled=2, bs_unlabelled=2)
    learn = Learner(dls, UNet(base=4, depth=2), loss_func=DiceCELoss(), cbs=TwoStreamConsistency())
    with pytest.raises(ValueError, match='streams'):
        with learn.no_logging(): learn.fit(1)

def test_ema_update_exact_step():
    torch.manual_seed(0)
    src, tgt = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2)), nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    src[1].running_mean.fill_(3.)
    ema = EMAUpdate(tgt, src, momentum=0.9)
    for _ in range(3):
        before = [p.detach().clone() for p in tgt.parameters()]
        ema.update()
        for b, pt, ps in zip(before, tgt.parameters(), src.parameters()):
            torch.testing.assert_close(pt - b, 0.1 * (ps.detach() - b))
    assert torch.equal(tgt[1].running_mean, src[1].running_mean)
    with pytest.raises(ValueError, match='same architecture'): EMAUpdate(nn.Linear(3, 2), nn.Linear(2, 2))

def test_ema_in_training_loop():
    "In a fastai fit, after every optimiser step the target moves (1-m) of the way to the freshly stepped source."
    torch.manual_seed(0)
    x = torch.randn(32, 3); y = x @ torch.tensor([[1.], [2.], [-1.]])
    ds = [(x[i], y[i]) for i in range(32)]
    from fastai.data.load import DataLoader
    dls = DataLoaders(DataLoader(ds, bs=8, shuffle=False), DataLoader(ds, bs=8))
    src, tgt = nn.Linear(3, 1), nn.Linear(3, 1)
    class Check(Callback):
        order = 59   # after the optimiser step, before EMAUpdate (60)
        def __init__(self): self.n = 0
        def after_step(self): self.before = [p.detach().clone() for p in tgt.parameters()]
    class Check2(Callback):
        order = 61
        def after_step(self):
            for b, pt, ps in zip(chk.before, tgt.parameters(), src.parameters()):
                torch.testing.assert_close(pt.detach() - b, 0.01 * (ps.detach() - b))
            chk.n += 1
    chk = Check()
    learn = Learner(dls, src, loss_func=nn.MSELoss(), opt_func=SGD, lr=0.1, cbs=[EMAUpdate(tgt, src, 0.99), chk, Check2()])
    with learn.no_logging(): learn.fit(1)
    assert chk.n == 4
    assert not any(p.requires_grad for p in tgt.parameters())


# ---------------------------------------------------------------- BatchNorm groups (labelled / unlabelled apart)
def test_bn_groups_normalise_each_group_on_its_own():
    torch.manual_seed(0)
    net = TwoStreamUNet(n_classes=3, base=4, depth=3, dropout=0.0).train()
    x = torch.randn(5, 1, 32, 32)
    g = torch.tensor([False, True, True, False, True])
    with torch.no_grad():
        la, lb = net(x, groups=g)['logits']
        ref_l, ref_u = net.streams(x[g]), net.streams(x[~g])
        whole = net.streams(x)
    for s in (0, 1):
        torch.testing.assert_close((la, lb)[s][g], ref_l[s], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close((la, lb)[s][~g], ref_u[s], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(la, whole[0], atol=1e-3)
    with torch.no_grad():   # evaluation ignores the groups: running statistics
        net.eval(); e1 = net.streams(x, groups=g)[0]; e2 = net.streams(x)[0]
    torch.testing.assert_close(e1, e2, rtol=0, atol=0)
    net.train()
    with pytest.raises(ValueError, match=r'\(5,\) bool mask'): net(x, groups=torch.ones(3, dtype=torch.bool))


class SeeGroups(Callback):
    "What the model was called with: its BatchNorm groups are an argument, `xb` = (x_a, x_b, groups)."
    order = 6
    def __init__(self): self.seen = []
    def after_pred(self):
        if self.training: self.seen.append((self.learn.xb[2], self.yb[0].clone()))


@pytest.mark.parametrize('split_bn', [True, False])
def test_consistency_callback_sets_groups_from_labelled_items(split_bn):
    cases = synthetic_phantoms(n=6, shape=(6, 32, 32), n_classes=3, seed=1)
    dls = two_stream_dls(cases[:2], cases[2:4], cases[4:], Preprocess(size=(32, 32)), bs_labelled=4, bs_unlabelled=4, seed=0)
    see = SeeGroups() if split_bn else None
    learn = Learner(dls, TwoStreamUNet(n_classes=3, base=4, depth=3), loss_func=DiceCELoss(), opt_func=SGD, lr=1e-2,
                    cbs=[TwoStreamConsistency(split_bn=split_bn)] + ([see] if see else []))
    with learn.no_logging(): learn.fit(1)
    if split_bn:
        assert len(see.seen) == len(dls.train)
        for g, y in see.seen:
            assert g.tolist() == [True] * 4 + [False] * 4
            assert g.tolist() == (y != IGNORE_INDEX).flatten(1).any(1).tolist()
