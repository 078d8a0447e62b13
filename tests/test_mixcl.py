"MixCL end to end: the pre-training callback on pooled batches, `mixcl_learner` (pre-train + fine-tune) and `semicontrast run mixcl|identity`."
import json, os, subprocess, sys
from dataclasses import replace
from pathlib import Path
import pytest
import torch

from semicontrast.core import IGNORE_INDEX, set_seed
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, PoolSource, pooled_dls, supervised_dls
from semicontrast.models import UNet
from semicontrast.mixcl import MixCLNet
from semicontrast.callbacks import zero_loss
from semicontrast.mixcl import MixCLPretrain
import semicontrast.mixcl as mixcl_module
from semicontrast.learner import mixcl_learner, history
from fastai.learner import Learner

torch.set_num_threads(1)
PREP = Preprocess(size=(32, 32))


@pytest.fixture(scope='module')
def pool():
    "Two label spaces: A (3 classes, half labelled) and B (2 classes, all labelled)."
    a = synthetic_phantoms(n=4, shape=(6, 32, 32), n_classes=3, seed=1)
    a = a[:2] + [replace(c, label=None) for c in a[2:]]
    b = synthetic_phantoms(n=2, shape=(6, 32, 32), n_classes=2, seed=2)
    return pooled_dls([PoolSource('A', a, PREP, ['bg', 'a1', 'a2']), PoolSource('B', b, PREP, ['bg', 'b1'])], bs=8, seed=0)


def _net(): return MixCLNet(UNet(in_ch=1, n_classes=3, base=8, depth=3), d_out=16, global_hidden=32)


def test_loss_is_the_weighted_sum_of_the_three_terms(pool):
    set_seed(0)
    cb = MixCLPretrain(identity_weight=0.7, label_weight=0.2, recon_weight=2.0, patch=4)
    learn = Learner(pool, _net(), loss_func=zero_loss, lr=1e-3, cbs=[cb])
    with learn.no_logging(): learn.fit(1)
    L = cb.last
    torch.testing.assert_close(L['loss'], 0.7 * L['identity'] + 0.2 * L['label'] + 2.0 * L['recon'])
    assert len(cb.epoch_terms) == 1 and set(cb.epoch_terms[0]) == {'identity', 'label', 'label_floor', 'recon', 'loss'}
    assert all(torch.isfinite(torch.as_tensor(v)) for v in L.values())
    assert 0 < L['label_floor'] <= float(L['label'])          # SupCon never goes below mean log|P(i)|


def test_label_term_gets_each_images_label_space(pool, monkeypatch):
    seen = []
    real = mixcl_module.label_contrast_loss
    def spy(emb, labels, spaces, *a, **k):
        seen.append((labels.clone(), spaces.clone())); return real(emb, labels, spaces, *a, **k)
    monkeypatch.setattr(mixcl_module, 'label_contrast_loss', spy)
    set_seed(0)
    learn = Learner(pool, _net(), loss_func=zero_loss, lr=1e-3, cbs=[MixCLPretrain(recon_weight=0)])
    with learn.no_logging(): learn.fit(1)
    assert seen
    all_spaces = torch.cat([s for _, s in seen])
    assert set(all_spaces.tolist()) == {0, 1}                  # both datasets reach the loss, each with its own id
    for labels, spaces in seen:
        B = len(spaces) // 2
        assert torch.equal(spaces[:B], spaces[B:])             # both views of an image keep its space
        for lab, sp in zip(labels, spaces):                    # space B (id 1) has 2 classes: never a class 2 there
            if sp == 1: assert not (lab == 2).any()


def test_identity_only_never_touches_the_dense_and_reconstruction_heads(pool):
    set_seed(0)
    net = _net()
    before = {k: v.clone() for k, v in net.state_dict().items() if k.startswith(('dense_head', 'recon_head'))}
    learn = Learner(pool, net, loss_func=zero_loss, lr=1e-2, cbs=[MixCLPretrain(label_weight=0, recon_weight=0)])
    with learn.no_logging(): learn.fit(1)
    assert learn.mix_cl_pretrain.outputs == ('global',) and net.outputs == ('global', 'dense', 'recon') and before   # asked per call; the default untouched
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())
    assert set(learn.mix_cl_pretrain.last) == {'identity', 'loss'}


def test_callback_refuses_other_batches_and_models():
    ph = synthetic_phantoms(n=2, shape=(6, 32, 32))
    learn = Learner(supervised_dls(ph, [], PREP, bs=4, augment=False), _net(), loss_func=zero_loss, cbs=[MixCLPretrain()])
    with pytest.raises(ValueError, match='pooled_dls'):
        with learn.no_logging(): learn.fit(1)
    with pytest.raises(ValueError, match='nothing to train'): MixCLPretrain(0, 0, 0)
    with pytest.raises(ValueError, match="'l1' or 'mse'"): MixCLPretrain(recon_kind='l2')


def test_pretrain_then_finetune_smoke(pool):
    set_seed(0)
    pre = mixcl_learner(pool, base=8, depth=3, d_out=16, global_hidden=32, patch=4)
    with pre.no_bar(), pre.no_logging(): pre.fit_one_cycle(2, 1e-3)
    terms = pre.mix_cl_pretrain.epoch_terms
    assert len(terms) == 2 and terms[-1]['recon'] < terms[0]['recon'] * 1.5
    w0 = pre.model.unet.decoder.blocks[0].conv[0].weight.detach().clone()
    ph = synthetic_phantoms(n=3, shape=(6, 32, 32), n_classes=3, seed=1)
    ft = mixcl_learner(supervised_dls(ph[:2], ph[2:], PREP, bs=4, augment=False), n_classes=3, stage='finetune', pretrained=pre)
    assert torch.equal(ft.model.decoder.blocks[0].conv[0].weight, w0)     # the whole pre-trained U-Net, decoder included
    with ft.no_bar(), ft.no_logging(): ft.fit_one_cycle(3, 1e-2)
    h = history(ft)
    assert h[-1]['train_loss'] < h[0]['train_loss'] and 0 <= h[-1]['fg_dice'] <= 1


# ------------------------------------------------------------ the command line
_SCRIPT = Path(sys.executable).parent/'semicontrast'
ENV = dict(os.environ, OMP_NUM_THREADS='2')


@pytest.mark.parametrize('method,extra', [('mixcl', ['--pool', 'phantom']), ('identity', [])])
def test_semicontrast_run_mixcl_and_identity_smoke(tmp_path, method, extra):
    out = tmp_path/method
    r = subprocess.run([str(_SCRIPT), 'run', method, '--smoke', '--quiet', '--out', str(out), *extra],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads((out/'result.json').read_text())
    pre = res['stages']['pretrain']
    assert res['method'] == method and len(pre['history']) == res['config']['pretrain_epochs'] == 1
    assert pre['weights'] == ({'identity': 1.0, 'label': 1.0, 'recon': 1.0} if method == 'mixcl' else
                              {'identity': 1.0, 'label': 0.0, 'recon': 0.0})
    main = pre['pool'][0]
    assert main['labelled_cases'] == len(res['split']['labelled'])          # unlabelled patients' labels are never used
    assert main['cases'] == len(res['split']['labelled']) + len(res['split']['unlabelled'])
    assert [p['name'] for p in pre['pool']] == (['hippocampus', 'phantom'] if method == 'mixcl' else ['hippocampus'])
    assert res['stages']['finetune']['whole_unet'] and 0 <= res['mean']['dice'] <= 1
    assert 'Stage pretrain: loss terms per epoch' in (out/'report.html').read_text()


@pytest.mark.parametrize('args,needle', [(['supervised', '--pool', 'phantom'], '--pool'),
                                         (['mixcl', '--pool', 'hippocampus'], 'test patients would be pre-trained on')])
def test_pool_is_checked(tmp_path, args, needle):
    r = subprocess.run([str(_SCRIPT), 'run', *args, '--smoke', '--quiet', '--out', str(tmp_path/'x')],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 2 and needle in r.stderr and not (tmp_path/'x'/'result.json').exists()
