"""MONAI's losses and metrics in this package's learners, through the one-line adapters `losses.MonaiLoss` and
`callbacks.MonaiMetric`: a supervised and a two-stream learner train with MONAI's DiceCELoss and report its DiceMetric."""
import math, warnings
import pytest
import torch
from monai.losses import DiceCELoss as MonaiDiceCE
from monai.metrics import DiceMetric
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, supervised_dls, two_stream_dls
from semicontrast.losses import MonaiLoss
from semicontrast.callbacks import MonaiMetric, ForegroundDice
from semicontrast.learner import supervised_learner, cps_learner

PREP = Preprocess(size=(32, 32), spatial='pad')


def _fit(learn):
    with warnings.catch_warnings(), learn.no_bar(), learn.no_logging():
        warnings.simplefilter('ignore')
        learn.fit(2, 1e-3)
    return learn.recorder.values[-1]


def test_supervised_with_monai_loss_and_metric():
    torch.manual_seed(0)
    c = synthetic_phantoms(n=5, shape=(4, 32, 32), n_classes=3, seed=0)
    dls = supervised_dls(c[:3], c[3:], PREP, bs=4)
    learn = supervised_learner(dls, 3, base=8, loss_func=MonaiLoss(MonaiDiceCE(to_onehot_y=True, softmax=True)),
                               metrics=[ForegroundDice(3), MonaiMetric(DiceMetric(include_background=False), 3)])
    train_loss, valid_loss, fg, monai_dice = _fit(learn)
    assert all(math.isfinite(v) for v in (train_loss, valid_loss, fg, monai_dice)) and 0 <= monai_dice <= 1
    assert learn.recorder.metric_names[-2] == 'DiceMetric'


def test_two_stream_learner_with_monai_loss():
    "CPS calls its loss on batches whose second half is unlabelled: MonaiLoss leaves those items out."
    torch.manual_seed(0)
    c = synthetic_phantoms(n=6, shape=(4, 32, 32), n_classes=3, seed=1)
    dls = two_stream_dls(c[:2], c[2:4], c[4:], PREP, bs_labelled=2, bs_unlabelled=2)
    learn = cps_learner(dls, 3, base=8, loss_func=MonaiLoss(MonaiDiceCE(to_onehot_y=True, softmax=True)))
    train_loss, valid_loss, fg = _fit(learn)
    assert math.isfinite(train_loss) and math.isfinite(valid_loss)
