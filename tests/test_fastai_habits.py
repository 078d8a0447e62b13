"""fastai habits on the pre-training learners: `get_preds(with_loss=True)` answers with one loss per item (each the
loss of its batch, since a contrastive loss belongs to the batch's pairs), as it does on the segmenting learners."""
import warnings
import numpy as np
import pytest
import torch
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, pretrain_dls, pooled_dls, PoolSource
from semicontrast.superpixels import region_dls
from semicontrast.learner import ideal_learner, lrc_learner, mixcl_learner

PREP = Preprocess(size=(32, 32), spatial='pad', intensity='zscore')

def _cases(): return synthetic_phantoms(n=4, shape=(4, 32, 32), n_classes=3, seed=0)

def _ideal():
    c = _cases(); return ideal_learner(pretrain_dls(c[:3], c[3:], PREP, bs=4), 3, stage='pretrain', base=8)

def _lrc():
    c = _cases(); return lrc_learner(region_dls(c[:3], c[3:], PREP, bs=4), stage='pretrain', base=8)

def _mixcl():
    c = _cases()
    src = lambda cs: [PoolSource('ph', cs, PREP, ['background', 'a', 'b'])]
    return mixcl_learner(pooled_dls(src(c[:3]), src(c[3:]), bs=4), stage='pretrain', base=8)

@pytest.mark.parametrize('make', [_ideal, _lrc, _mixcl], ids=['ideal', 'lrc', 'mixcl'])
def test_pretraining_learners_answer_get_preds_with_loss(make):
    torch.manual_seed(0)
    learn = make()
    with warnings.catch_warnings(), learn.no_bar():
        warnings.simplefilter('ignore')
        out = learn.get_preds(with_loss=True)
    losses = out[-1]
    assert losses.shape == (4,) and torch.isfinite(losses).all() and float(losses.abs().sum()) > 0
    assert torch.allclose(losses, losses[0].expand(4))   # one batch of 4 slices: its loss, once per item
