"""IDEAL stage 1: `DenseContrastivePretrain` / `pretrain_learner` (dense contrastive pre-training of the encoder)."""
import pytest
import torch
from fastai.callback.core import Callback

from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, supervised_dls
from semicontrast.losses import DenseInfoNCE
from semicontrast.models import TwoStreamUNet
from semicontrast.heads import EncoderWithHead
from semicontrast.callbacks import EMAUpdate, zero_loss
from semicontrast.ideal import DenseContrastivePretrain, pretrain_learner

def _dls(n=2, z=8, bs=8, seed=0):
    cases = synthetic_phantoms(n=n, shape=(z, 32, 32), seed=seed)
    return supervised_dls(cases[:n - 1], cases[n - 1:], Preprocess(size=(32, 32)), bs=bs, seed=seed)

def _learner(momentum=None, **kw):
    torch.manual_seed(0)
    return pretrain_learner(_dls(), base=8, depth=3, d_out=16, momentum=momentum, **kw)

class Capture(Callback):
    "Record the callback's cache, the logged loss and grads for every training batch."
    order = 70
    def __init__(self): self.rows = []
    def after_loss(self):
        if not self.training: return
        cb = self.learn.dense_contrastive_pretrain
        self.rows.append(dict(last=dict(cb.last), loss=self.learn.loss.detach().clone()))

@pytest.mark.parametrize('momentum', [None, 0.9])
def test_fit_runs_and_loss_is_dense_infonce(momentum):
    learn = _learner(momentum)
    cap = Capture()
    with learn.no_logging(): learn.fit(1, cbs=cap)
    assert isinstance(learn.model, EncoderWithHead) and learn.loss_func is zero_loss
    assert len(cap.rows) >= 1
    first = cap.rows[0]
    last = first['last']
    assert last['q'].shape == (8, 16, 4, 4) and last['valid'].shape == (8, 4, 4) and last['valid'].any()
    assert torch.isfinite(first['loss'])
    by_hand = DenseInfoNCE(0.1)(last['q'], last['k_aligned'], last['valid'])
    torch.testing.assert_close(by_hand, first['loss'], rtol=1e-5, atol=1e-6)
    assert all(torch.isfinite(r['loss']) for r in cap.rows)
    # the validation loss is computed, finite and deterministic
    with learn.no_logging():
        v1, v2 = learn.validate()[0], learn.validate()[0]
    assert v1 == pytest.approx(v2, rel=1e-5) and v1 == v1

def test_key_branch_has_no_gradient_shared():
    learn = _learner(None)
    cap = Capture()
    with learn.no_logging(): learn.fit(1, cbs=cap)
    assert not cap.rows[0]['last']['k_aligned'].requires_grad
    assert cap.rows[0]['last']['q'] is not None
    assert learn.dense_contrastive_pretrain.key_model is None

class EMACheck(Callback):
    "Key params before the step, query and key params after the EMA update."
    order = 70
    def __init__(self, key): self.key, self.steps = key, []
    def before_step(self):
        self.k0 = [p.detach().clone() for p in self.key.parameters()]
        self.key_grads = [p.grad for p in self.key.parameters()]
    def after_step(self):
        self.steps.append((self.k0, [p.detach().clone() for p in self.learn.model.parameters()],
                           [p.detach().clone() for p in self.key.parameters()], self.key_grads))

def test_momentum_key_branch_is_ema():
    m = 0.9
    learn = _learner(m)
    cb = learn.dense_contrastive_pretrain
    key = cb.key_model
    assert key is not None and any(isinstance(c, EMAUpdate) for c in learn.cbs)
    assert not any(p is q for p in key.parameters() for q in learn.model.parameters())
    chk = EMACheck(key)
    with learn.no_logging(): learn.fit(1, cbs=chk)
    assert len(chk.steps) >= 1
    for k0, q1, k1, grads in chk.steps:
        assert all(g is None for g in grads)
        for a, b, c in zip(k0, q1, k1): torch.testing.assert_close(c, m * a + (1 - m) * b, rtol=1e-5, atol=1e-6)
    assert all(not p.requires_grad and p.grad is None for p in key.parameters())
    assert any(not torch.equal(a, c) for a, _, c in zip(*chk.steps[-1][:3]))   # the key does move
    assert cb._ema is None   # pretrain_learner's EMAUpdate does the update, not a second one inside the callback

def test_callback_alone_makes_its_own_ema_copy():
    from fastai.learner import Learner
    learn = _learner(None)
    cb = DenseContrastivePretrain(momentum=0.5)
    l2 = Learner(learn.dls, learn.model, loss_func=zero_loss, cbs=cb)
    with l2.no_logging(): l2.fit(1)
    assert cb.key_model is not None and cb._ema is not None
    assert all(p.grad is None for p in cb.key_model.parameters())

def test_bad_args():
    with pytest.raises(ValueError): DenseContrastivePretrain(global_weight=1.5)
    with pytest.raises(ValueError): DenseContrastivePretrain(momentum=2.0)

def test_global_term_mixes():
    learn = _learner(None, global_weight=0.5)
    cap = Capture()
    with learn.no_logging(): learn.fit(1, cbs=cap)
    last = cap.rows[0]['last']
    torch.testing.assert_close(cap.rows[0]['loss'], 0.5 * last['dense'] + 0.5 * last['glob'])

def test_loss_decreases_and_encoder_transfers():
    torch.manual_seed(0)
    cases = synthetic_phantoms(n=3, shape=(8, 32, 32), seed=1)
    dls = supervised_dls(cases, [], Preprocess(size=(32, 32)), bs=8, seed=0)
    learn = pretrain_learner(dls, base=8, depth=3, d_out=16, lr=3e-3, dropout=0.0)
    init = {k: v.clone() for k, v in learn.model.encoder.state_dict().items()}
    cap = Capture()
    with learn.no_logging(): learn.fit(10, cbs=cap)   # 3 batches per epoch -> 30 steps
    losses = torch.stack([r['loss'] for r in cap.rows])
    assert len(losses) >= 25 and torch.isfinite(losses).all()
    assert losses[-5:].mean() < losses[:5].mean()
    enc = learn.model.encoder
    fine = TwoStreamUNet(in_ch=1, n_classes=3, encoder=enc)
    assert fine.encoder is enc
    sd = {k: v.clone() for k, v in enc.state_dict().items()}
    assert any(not torch.equal(sd[k], init[k]) for k in sd)   # pre-training changed the encoder
    fsd = fine.encoder.state_dict()
    assert fsd.keys() == sd.keys() and all(torch.equal(fsd[k], sd[k]) for k in sd)   # fine-tuning starts from it
    with torch.no_grad(): assert fine.eval()(torch.randn(2, 1, 32, 32)).shape == (2, 3, 32, 32)
