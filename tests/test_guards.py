"A NaN/inf loss stops training with an error naming the term (callbacks.FiniteLoss), in learners and from the CLI."
import math
import pytest, torch
from fastai.callback.core import Callback
from semicontrast.callbacks import FiniteLoss, NonFiniteLoss
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, supervised_dls, two_stream_dls
from semicontrast.learner import supervised_learner, ideal_learner, mscs_learner
import semicontrast.losses as losses

PREP = Preprocess(size=(32, 32))


def _cases(labelled=True): return synthetic_phantoms(n=3, shape=(6, 32, 32), n_classes=3, seed=0, labelled=labelled)


class Poison(Callback):
    "Makes the network's input NaN from training iteration `at` on."
    order = -5
    def __init__(self, at=0): self.at = at
    def before_batch(self):
        if self.training and self.learn.iter >= self.at: self.learn.xb = (self.learn.xb[0] * float('nan'),) + tuple(self.learn.xb[1:])


def _fit(learn):
    with learn.no_logging(), pytest.raises(NonFiniteLoss) as e: learn.fit(1)
    return str(e.value)


def test_every_learner_carries_the_guard():
    dls = supervised_dls(_cases(), _cases()[:1], PREP, bs=4, device='cpu')
    for learn in (supervised_learner(dls, 3, base=8, depth=3), supervised_learner(dls, 3, base=8, depth=3, cbs=[FiniteLoss()])):
        assert sum(isinstance(c, FiniteLoss) for c in learn.cbs) == 1


def test_supervised_names_both_terms_and_the_iteration():
    dls = supervised_dls(_cases(), _cases()[:1], PREP, bs=4, device='cpu')
    learn = supervised_learner(dls, 3, base=8, depth=3, cbs=[Poison(at=1)])
    msg = _fit(learn)
    assert 'DiceCELoss.ce=nan' in msg and 'DiceCELoss.dice=nan' in msg
    assert 'epoch 0, iteration 1' in msg and 'training loss' in msg and '--lr' in msg


def test_only_the_bad_term_is_named(monkeypatch):
    "Cross-entropy finite, Dice NaN: the message blames dice, not ce."
    monkeypatch.setattr(losses, 'soft_dice_loss', lambda *a, **k: torch.tensor(float('nan')))
    dls = supervised_dls(_cases(), _cases()[:1], PREP, bs=4, device='cpu')
    msg = _fit(supervised_learner(dls, 3, base=8, depth=3))
    assert msg.split('non-finite term(s): ')[1].split('. Usual')[0] == 'DiceCELoss.dice=nan'


def test_weights_are_not_updated_by_the_bad_step():
    dls = supervised_dls(_cases(), _cases()[:1], PREP, bs=4, device='cpu')
    learn = supervised_learner(dls, 3, base=8, depth=3, cbs=[Poison(at=0)])
    before = [p.detach().clone() for p in learn.model.parameters()]
    _fit(learn)
    assert all(torch.equal(a, b) for a, b in zip(before, learn.model.parameters()))


def test_two_stream_and_mscs_name_their_terms(monkeypatch):
    lab, unl = _cases(), _cases(labelled=False)
    dls = two_stream_dls(lab, unl, _cases()[:1], PREP, bs_labelled=2, bs_unlabelled=2, device='cpu')
    msg = _fit(ideal_learner(dls, stage='finetune', n_classes=3, base=8, depth=3, cbs=[Poison()]))
    assert 'TwoStreamConsistency.sup_a=nan' in msg
    monkeypatch.setattr('semicontrast.mscs.patch_info_nce', lambda *a, **k: torch.tensor(float('inf'), requires_grad=True))
    msg = _fit(mscs_learner(dls, 3, base=8, depth=3, patch_weight=1.0))
    assert 'MSCSConsistency.patch=inf' in msg and 'MSCSConsistency.sup_a' not in msg


def test_cli_exits_1_with_the_term_and_writes_no_result(tmp_path, monkeypatch, capsys):
    from semicontrast.cli import main
    monkeypatch.setattr(losses, 'soft_dice_loss', lambda *a, **k: torch.tensor(float('nan')))
    out = tmp_path / 'run'
    rc = main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--out', str(out)])
    err = capsys.readouterr().err
    assert rc == 1 and 'training stopped' in err and 'DiceCELoss.dice=nan' in err
    assert not (out / 'result.json').exists() and not (out / 'report.html').exists()
