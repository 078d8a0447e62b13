"""fastai's idioms on every learner: `dls.show_batch()`, `learn.summary()`, `get_preds(with_loss=True)` on all of them;
`predict` (a slice and a whole volume), `show_results`, `top_volume_losses` and `export` / `load_model` on the
segmentation learners; a pre-training learner refuses to predict with a message instead of drawing nonsense."""
import numpy as np
import pytest
import torch

from semicontrast.core import DataError
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, two_stream_dls, supervised_dls, pooled_dls, PoolSource
from semicontrast.superpixels import region_dls
from semicontrast.metrics import predict_volume
from semicontrast.learner import (supervised_learner, ideal_learner, mscs_learner, meanteacher_learner, mixcl_learner,
                                  lrc_learner, finetune_learner)
from semicontrast.inference import load_model

PREP = Preprocess(size=(32, 32))


@pytest.fixture(scope='module')
def cases(): return synthetic_phantoms(n=8, shape=(8, 32, 32), seed=1)


def _seg_learners(cases):
    ts = two_stream_dls(cases[:2], cases[2:6], cases[6:], PREP, bs_labelled=4, bs_unlabelled=4, seed=0)
    sup = supervised_dls(cases[:3], cases[6:], PREP, bs=4)
    kw = dict(base=8, depth=3)
    return {'supervised': supervised_learner(sup, 3, **kw), 'ideal': ideal_learner(ts, 3, stage='finetune', **kw),
            'mscs': mscs_learner(ts, 3, **kw), 'meanteacher': meanteacher_learner(ts, 3, **kw)}


def _pre_learners(cases):
    kw = dict(base=8, depth=3)
    pool = pooled_dls([PoolSource('A', cases[:3], PREP, ['bg', 'c1', 'c2'])], bs=8)
    return {'ideal pretrain': ideal_learner(supervised_dls(cases, [], PREP, bs=8), stage='pretrain', **kw),
            'mixcl pretrain': mixcl_learner(pool, 3, stage='pretrain', **kw),
            'lrc pretrain': lrc_learner(region_dls(cases[:3], [], PREP, bs=8), 3, stage='pretrain', **kw)}


@pytest.mark.parametrize('name', ['supervised', 'ideal', 'mscs', 'meanteacher'])
def test_segmentation_learner_idioms(cases, name, tmp_path):
    learn = _seg_learners(cases)[name]
    learn.path = tmp_path
    learn.fit(1, 1e-3)
    assert len(learn.dls.show_batch().data) == len(learn.dls.train.one_batch()[0])   # every item of the batch (4 + 4 two-stream, 4 supervised)
    assert 'Total params' in str(learn.summary())
    preds, targs, losses = learn.get_preds(with_loss=True)
    n = len(learn.dls.valid.dataset)
    assert preds.shape[0] == targs.shape[0] == losses.shape[0] == n and losses.ndim == 1
    x, y = learn.dls.valid.dataset[0]
    cls, prob = learn.predict(x)
    assert cls.shape == y.shape and prob.shape == (3,) + tuple(y.shape)
    torch.testing.assert_close(prob.sum(0), torch.ones_like(prob[0]))
    assert torch.equal(cls, preds[0].argmax(0))                        # predict agrees with get_preds on the same slice
    vol = learn.predict(cases[6])
    assert np.array_equal(vol.numpy(), predict_volume(learn.model, cases[6], PREP))
    fig = learn.show_results(max_n=2)
    assert len(fig.data) == 6 and any('Dice' in a['text'] for a in fig.layout.annotations)
    top = learn.top_volume_losses()
    assert [t[0] for t in top] == sorted({c for c, _ in learn.dls.valid.dataset.index}, key=lambda c: -dict((t[0], t[1]) for t in top)[c])
    assert sum(t[2] for t in top) == n
    per_case = {c: [l for (cc, _), l in zip(learn.dls.valid.dataset.index, losses.tolist()) if cc == c] for c, _, _ in top}
    assert all(t[1] == pytest.approx(np.mean(per_case[t[0]])) for t in top)
    f = learn.export('exported.pth', class_names=['bg', 'inner', 'outer'])
    net, info = load_model(f)
    assert info['class_names'] == ['bg', 'inner', 'outer'] and info['prep'] == PREP
    with torch.no_grad(): torch.testing.assert_close(net(x[None]), learn.model.eval()(x[None]))


@pytest.mark.parametrize('name', ['ideal pretrain', 'mixcl pretrain', 'lrc pretrain'])
def test_pretraining_learner_idioms(cases, name):
    learn = _pre_learners(cases)[name]
    assert len(learn.dls.show_batch().data) >= 1 and 'Total params' in str(learn.summary())
    x = learn.dls.train.dataset[0][0]
    with pytest.raises(DataError, match='not a segmentation'): learn.predict(x)


def test_finetune_learner_is_a_seg_learner(cases):
    pre = _pre_learners(cases)['mixcl pretrain']
    learn = finetune_learner(supervised_dls(cases[:3], cases[6:], PREP, bs=4), 3, pretrained=pre)
    cls, _ = learn.predict(learn.dls.valid.dataset[0][0])
    assert cls.shape == (32, 32)
