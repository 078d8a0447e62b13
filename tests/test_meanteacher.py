"""Mean Teacher: the loss against a slow reference, the teacher's EMA with its warm-up, BatchNorm by group, resume, the CLI."""
import pytest
import torch
from fastai.callback.core import Callback

from semicontrast.core import set_seed, IGNORE_INDEX
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, two_stream_dls
from semicontrast.losses import DiceCELoss, sigmoid_rampup
from semicontrast.models import UNet
from semicontrast.meanteacher import GroupedForward, MeanTeacher, meanteacher_learner, MEANTEACHER
from semicontrast.method import METHODS

PREP = Preprocess(size=(32, 32))

@pytest.fixture(scope='module')
def cases(): return synthetic_phantoms(n=8, shape=(4, 32, 32), n_classes=3, seed=0)

def _dls(cases, bs=4):
    return two_stream_dls(cases[:2], cases[2:6], cases[6:], PREP, bs_labelled=bs, bs_unlabelled=bs, augment=False, seed=0)


class Spy(Callback):
    "Keeps, per training batch, what the reference needs: input, target, student logits, teacher weights before the step."
    order = 6   # after MeanTeacher.before_batch (5) has added the groups, before its after_loss
    def before_fit(self): self.rows = []
    def after_loss(self):
        if not self.training: return
        cb = self.learn.mean_teacher
        self.rows.append(dict(x=self.xb[0].clone(), y=self.yb[0].clone(), pred=self.pred.detach().clone(), it=self.train_iter,
                              teacher=[p.detach().clone() for p in cb.teacher.parameters()]))
    def after_batch(self):
        if self.training: self.rows[-1]['loss'] = self.learn.mean_teacher.last


def _reference_consistency(student_logits, teacher_logits) -> float:
    "Mean over all elements of (softmax(student) - softmax(teacher))^2, written out with plain loops over pixels."
    ps, pt = student_logits.double(), teacher_logits.double()
    total, n = 0.0, 0
    for b in range(ps.shape[0]):
        for i in range(ps.shape[2]):
            for j in range(ps.shape[3]):
                es, et = ps[b, :, i, j].exp(), pt[b, :, i, j].exp()
                ss, st = es / es.sum(), et / et.sum()
                total += float(((ss - st) ** 2).sum()); n += ps.shape[1]
    return total / n


def test_loss_is_supervised_plus_ramped_consistency_on_unlabelled_items(cases):
    set_seed(0)
    learn = meanteacher_learner(_dls(cases), 3, base=4, depth=2, noise=0.0, ramp='budget', consistency_start=0, cbs=[Spy()])
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3)
    spy = learn.spy
    assert len(spy.rows) >= 4
    for r in spy.rows[:3]:
        unl = (r['y'] == IGNORE_INDEX).flatten(1).all(1)
        assert unl.any() and (~unl).any()
        sup = DiceCELoss()(r['pred'], r['y'])
        L = r['loss']
        w = 0.1 * sigmoid_rampup(r['it'], learn.mean_teacher.ramp)   # 'budget': the ramp spans the fit
        assert learn.mean_teacher.ramp == 2 * len(learn.dls.train)
        assert float(L['weight']) == pytest.approx(w)
        assert float(L['sup']) == pytest.approx(float(sup), rel=1e-5)
        assert float(L['loss']) == pytest.approx(float(sup) + w * float(L['consistency']), rel=1e-5)


@pytest.mark.parametrize('split_bn', [True, False])
def test_consistency_term_matches_the_slow_reference(cases, split_bn):
    "With dropout off and no noise, the recorded consistency equals the loop reference on the unlabelled items (BatchNorm apart or in one pass)."
    set_seed(0)
    model = UNet(in_ch=1, n_classes=3, base=4, depth=2, dropout=0.0)
    learn = meanteacher_learner(_dls(cases), 3, model=model, noise=0.0, consistency_start=0, split_bn=split_bn, cbs=[Spy()])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    r = learn.spy.rows[2]   # the third step: the teacher is half way between two students (at the second it is a copy of the student)
    t = GroupedForward(UNet(in_ch=1, n_classes=3, base=4, depth=2, dropout=0.0)).train()
    for p, v in zip(t.parameters(), r['teacher']): p.data.copy_(v)
    unl = (r['y'] == IGNORE_INDEX).flatten(1).all(1)
    with torch.no_grad(): tl = t(r['x'][unl])
    ref = _reference_consistency(r['pred'][unl], tl)
    assert float(r['loss']['consistency']) == pytest.approx(ref, rel=1e-4)
    assert ref > 0


def test_teacher_is_an_ema_with_warm_up(cases):
    "train_mean_teacher_2D.py:85-89, 143, 179, 184: alpha = min(1 - 1/(iter_num + 1), 0.99) with iter_num 0 at the first step: a copy, then 1/2."
    set_seed(0)
    learn = meanteacher_learner(_dls(cases), 3, base=4, depth=2, cbs=[Spy()])
    snaps = []
    class After(Callback):
        order = 70   # after MeanTeacher's after_step
        def after_step(self):
            snaps.append(([p.detach().clone() for p in self.learn.mean_teacher.teacher.parameters()],
                          [p.detach().clone() for p in self.learn.model.parameters()]))
    learn.add_cb(After())
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    rows = learn.spy.rows
    for k, alpha in ((0, 0.0), (1, 1 / 2), (2, 2 / 3)):
        before = rows[k]['teacher']
        teacher, student = snaps[k]
        for tb, ta, s in zip(before, teacher, student):
            assert torch.allclose(ta, alpha * tb + (1 - alpha) * s, atol=1e-6)
    assert learn.mean_teacher._ema.momentum <= 0.99


def test_grouped_forward_normalises_groups_apart():
    torch.manual_seed(0)
    gf = GroupedForward(UNet(in_ch=1, n_classes=2, base=4, depth=2, dropout=0.0)).train()
    x, g = torch.randn(6, 1, 16, 16), torch.tensor([1, 1, 0, 0, 0, 0], dtype=torch.bool)
    out = gf(x, g)
    assert torch.allclose(out[:2], gf.net(x[:2]), atol=1e-5) and torch.allclose(out[2:], gf.net(x[2:]), atol=1e-5)
    assert not torch.allclose(out, gf.net(x), atol=1e-4)          # control: one pass over the whole batch differs
    assert torch.allclose(gf(x, None), gf.net(x), atol=1e-6)


@pytest.mark.parametrize('split_bn', [True, False])
def test_groups_reach_the_model_only_with_split_bn(cases, split_bn):
    "The callback passes the labelled/unlabelled groups to the model as an argument in training, and only with split_bn."
    seen = []
    class XB(Callback):
        order = 6
        def after_pred(self): seen.append((self.training, len(self.xb)))
    set_seed(0)
    learn = meanteacher_learner(_dls(cases), 3, base=4, depth=2, split_bn=split_bn, cbs=[XB()])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert {n for t, n in seen if t} == ({2} if split_bn else {1})
    assert {n for t, n in seen if not t} == {1}


def test_bad_arguments():
    with pytest.raises(ValueError, match='ema_decay'): MeanTeacher(ema_decay=1.5)
    with pytest.raises(ValueError, match='consistency'): MeanTeacher(consistency=-1)


def test_registered_with_its_learner_defaults():
    assert METHODS['meanteacher'] is MEANTEACHER and MEANTEACHER.needs_unlabelled
    assert MEANTEACHER.defaults() == {'ema_decay': 0.99, 'consistency': 0.1, 'noise': 0.1, 'split_bn': True, 'ramp': 'ssl4mis', 'consistency_start': 1000,
                                    'head': 1, 'init': 'kaiming', 'up': 'transpose'}


def test_semicontrast_run_meanteacher_smoke_and_resume_is_exact(tmp_path):
    "The CLI run writes a card with its stage and terms; a run killed after its first epoch and resumed ends identical."
    from semicontrast.cli import run_experiment
    full = run_experiment('meanteacher', data='phantom', smoke=True, quiet=True, out=tmp_path/'full', epochs=3)
    st = full['stages']['train']
    assert full['method'] == 'meanteacher' and st['steps'] >= st['supervised_steps'] >= 1
    assert set(st['terms'][0]) == {'sup', 'consistency', 'weight', 'loss'}
    assert full['config']['ema_decay'] == 0.99 and 'Stage train: loss terms per epoch' in (tmp_path/'full'/'report.html').read_text()
    class Stop(Callback):
        order = 99
        def after_epoch(self):
            if self.epoch == 0: raise KeyboardInterrupt
    import semicontrast.method as M
    fit = M.RunContext.fit
    def fit_then_stop(self, learn, stage, epochs, lr):
        learn.add_cb(Stop())
        return fit(self, learn, stage, epochs, lr)
    M.RunContext.fit = fit_then_stop
    try:
        with pytest.raises(KeyboardInterrupt): run_experiment('meanteacher', data='phantom', smoke=True, quiet=True, out=tmp_path/'cut', epochs=3)
    finally: M.RunContext.fit = fit
    assert list((tmp_path/'cut'/'checkpoints').glob('*.pth'))
    res = run_experiment('meanteacher', data='phantom', smoke=True, quiet=True, out=tmp_path/'cut', epochs=3, resume=True)
    assert res['per_case'] == full['per_case'] and res['history'] == full['history']
    a = torch.load(tmp_path/'full'/'model.pth', weights_only=True)['state_dict']; b = torch.load(tmp_path/'cut'/'model.pth', weights_only=True)['state_dict']
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_the_reference_ramp_and_start(cases):
    "train_mean_teacher_2D.py:80-82, 169-174: w = 0.1 * sigmoid_rampup(iter // 150, 200), and no consistency before iteration 1000."
    import math
    learn = meanteacher_learner(_dls(cases), 3, base=4, depth=2, cbs=[Spy()])
    cb = learn.mean_teacher
    for t in (0, 149, 150, 999, 1000, 2000, 29999, 30000):
        assert cb.weight(t) == pytest.approx(0.1 * math.exp(-5 * (1 - min(t // 150, 200) / 200) ** 2))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert all(float(r['loss']['consistency']) == 0 for r in learn.spy.rows)   # the first iterations: the term is off
