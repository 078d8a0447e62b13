"""Every method callback's `show()`: it draws what the callback does to one item of a batch (the panels its method
needs), and looking changes nothing: the model's weights and BatchNorm statistics, its mode and the global random
stream are as they were, so a run with a `show()` in the middle trains exactly as one without."""
import pytest
import torch

from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, two_stream_dls, supervised_dls, pooled_dls, PoolSource
from semicontrast.superpixels import region_dls
from semicontrast.learner import ideal_learner, mscs_learner, meanteacher_learner, mixcl_learner, lrc_learner

PREP = Preprocess(size=(32, 32))

@pytest.fixture(scope='module')
def cases(): return synthetic_phantoms(n=8, shape=(8, 32, 32), seed=1)

def _two_stream(cases): return two_stream_dls(cases[:2], cases[2:6], cases[6:], PREP, bs_labelled=4, bs_unlabelled=4, seed=0)

def _learners(cases):
    "(name, learner, callback attribute, the panel titles that must appear)"
    ts = _two_stream(cases)
    pool = pooled_dls([PoolSource('A', cases[:3], PREP, ['bg', 'c1', 'c2']),
                       PoolSource('B', synthetic_phantoms(n=2, shape=(8, 32, 32), seed=2, labelled=False), PREP)], bs=8)
    return [
        ('ideal pretrain', ideal_learner(supervised_dls(cases, [], PREP, bs=8), stage='pretrain', base=8, depth=3),
         'dense_contrastive_pretrain', ['slice', 'view 1 (queries)', 'view 2 (keys)']),
        ('ideal finetune', ideal_learner(ts, 3, stage='finetune', base=8, depth=3), 'two_stream_consistency',
         ["a's pseudo-label (b's target)", "b's pseudo-label (a's target)"]),
        ('mscs', mscs_learner(ts, 3, base=8, depth=3), 'mscs_consistency', ['stream b input (strong)', "a's pseudo-label (b's target)"]),
        ('meanteacher', meanteacher_learner(ts, 3, base=8, depth=3), 'mean_teacher', ['teacher input (+ noise)', "teacher's prediction (target)"]),
        ('mixcl', mixcl_learner(pool, 3, stage='pretrain', base=8, depth=3), 'mix_cl_pretrain', ['view 1', 'view 2', 'corrupted input']),
        ('lrc', lrc_learner(region_dls(cases[:3], [], PREP, bs=8), 3, stage='pretrain', base=8, depth=3), 'region_contrast_pretrain', ['view 2']),
    ]

@pytest.mark.parametrize('i', range(6))
def test_show_draws_the_methods_panels_and_changes_nothing(cases, i):
    name, learn, attr, titles = _learners(cases)[i]
    cb = getattr(learn, attr)
    state = {k: v.clone() for k, v in learn.model.state_dict().items()}
    learn.model.eval()
    torch.manual_seed(123)
    rng, order = torch.get_rng_state(), learn.dls.train.rng.getstate()
    fig = cb.show(b=1)
    shown = [a.text for a in fig.layout.annotations]
    assert all(t in shown for t in titles), (name, shown)
    assert len(fig.data) >= 2
    assert torch.equal(torch.get_rng_state(), rng), f'{name}: show() used the global random stream'
    assert learn.dls.train.rng.getstate() == order, f"{name}: show() changed the training loader's shuffling"
    assert not learn.model.training, f'{name}: show() left the model in training mode'
    after = learn.model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in state.items()), f'{name}: show() changed weights or BatchNorm statistics'

def test_two_stream_show_draws_the_streams_own_predictions(cases):
    "The pseudo-label panels are the argmax of each stream on that item (a real prediction, not a placeholder)."
    learn = ideal_learner(_two_stream(cases), 3, stage='finetune', base=8, depth=3, split_bn=False, perturb=0.0)
    x, y = learn.dls.train.one_batch()[:2]
    torch.manual_seed(7)
    fig = learn.two_stream_consistency.show((x, y), b=5)
    torch.manual_seed(7)                                   # the same dropout masks as show()'s forward
    learn.model.train()
    with torch.no_grad(): la, lb = learn.model(x)['logits']
    from semicontrast.viz import overlay_rgb
    import numpy as np
    img = x[5, 0].numpy(); lo, hi = np.percentile(img, [0.5, 99.5])
    np.testing.assert_array_equal(fig.data[1].z, overlay_rgb(img, la[5].argmax(0).numpy(), lo, hi))
    np.testing.assert_array_equal(fig.data[2].z, overlay_rgb(img, lb[5].argmax(0).numpy(), lo, hi))
