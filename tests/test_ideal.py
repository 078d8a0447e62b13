"IDEAL end to end: encoder files, pre-training loaders, `ideal_learner` (both stages) and `semicontrast run ideal`."
import json, os, subprocess, sys
from pathlib import Path
import pytest
import torch

from semicontrast.core import IGNORE_INDEX, DataError, set_seed
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, pretrain_dls, two_stream_dls, supervised_dls
from semicontrast.models import Encoder, TwoStreamUNet, unet_widths, save_encoder, load_encoder
from semicontrast.heads import EncoderWithHead
from semicontrast.callbacks import EMAUpdate, TwoStreamConsistency
from semicontrast.ideal import DenseContrastivePretrain
from semicontrast.learner import ideal_learner, history
from semicontrast.losses import sigmoid_rampup

PREP = Preprocess(size=(32, 32))


@pytest.fixture(scope='module')
def cases():
    return synthetic_phantoms(n=10, shape=(6, 32, 32), n_classes=3, seed=0)


# ---------------------------------------------------------------- encoder files
def test_encoder_round_trip_keeps_architecture_weights_and_meta(tmp_path):
    torch.manual_seed(0)
    enc = Encoder(2, unet_widths(4, 3), dropout=(0.0, 0.1, 0.2, 0.3)).eval()
    with torch.no_grad():   # make the BatchNorm running statistics non-trivial so they must travel too
        for m in enc.modules():
            if isinstance(m, torch.nn.BatchNorm2d): m.running_mean.uniform_(-1, 1); m.running_var.uniform_(0.5, 2)
    p = save_encoder(enc, tmp_path/'sub'/'enc.pth', epochs=7, note='x')
    # the file is plain data: it loads with weights_only=True
    ck = torch.load(p, weights_only=True)
    assert ck['arch']['arch'] == 'Encoder' and ck['arch']['kwargs']['widths'] == [4, 8, 16, 32] and ck['arch']['kwargs']['in_ch'] == 2
    assert ck['versions']['torch'] and ck['meta'] == {'epochs': 7, 'note': 'x'}
    enc2 = load_encoder(p).eval()
    assert enc2.widths == enc.widths and enc2.dropout == enc.dropout and enc2.meta == {'epochs': 7, 'note': 'x'}
    x = torch.randn(3, 2, 32, 32)
    with torch.no_grad():
        for a, b in zip(enc(x), enc2(x)): torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert [q.name for q in (tmp_path/'sub').iterdir()] == [p.name]   # written atomically: no temporary file left


@pytest.mark.parametrize('content, needle', [
    (None, 'does not exist'),
    (b'not a torch file at all', 'could not be read'),
    ('dict', 'not a semicontrast encoder file'),
    ('truncated', 'truncated'),
    ('mismatch', 'do not match'),
])
def test_bad_encoder_files_name_the_file(tmp_path, content, needle):
    p = tmp_path/'enc.pth'
    if content == 'dict': torch.save({'state_dict': {}}, p)
    elif content == 'truncated':
        save_encoder(Encoder(1, (4, 8)), p); p.write_bytes(p.read_bytes()[:200])
    elif content == 'mismatch':
        save_encoder(Encoder(1, (4, 8)), p)
        ck = torch.load(p, weights_only=True); ck['arch']['kwargs']['widths'] = [4, 16]; torch.save(ck, p)
    elif content is not None: p.write_bytes(content)
    with pytest.raises(DataError, match=needle) as e: load_encoder(p)
    assert str(p) in str(e.value)


def test_save_encoder_refuses_other_modules(tmp_path):
    with pytest.raises(ValueError, match='Encoder'): save_encoder(torch.nn.Conv2d(1, 1, 1), tmp_path/'x.pth')


# ---------------------------------------------------------------- pre-training loaders
def test_pretrain_dls_never_hands_out_labels(cases):
    dls = pretrain_dls(cases[:4], cases[4:6], PREP, bs=8, seed=0)
    n = 0
    for xb, yb in dls.train:
        assert (yb == IGNORE_INDEX).all(); n += len(xb)
    assert n == (24 // 8) * 8   # incomplete last batch dropped
    for xb, yb in dls.valid: assert (yb == IGNORE_INDEX).all()
    assert len(dls.valid.dataset) == 12


def test_pretrain_dls_takes_unlabelled_cases(cases):
    c = cases[0]
    unl = type(c)(id='u0', image=c.image, label=None, spacing=c.spacing)
    dls = pretrain_dls([unl, cases[1]], [], PREP, bs=4)
    assert len(dls.train.dataset) == 12
    with pytest.raises(DataError, match='cases is empty'): pretrain_dls([], [], PREP)


# ---------------------------------------------------------------- ideal_learner
def test_pretrain_stage_is_dense_contrastive_with_an_ema_key(cases):
    learn = ideal_learner(pretrain_dls(cases[:4], cases[4:5], PREP, bs=8), stage='pretrain', base=4, depth=3, d_out=8)
    assert isinstance(learn.model, EncoderWithHead) and learn.model.encoder.widths == (4, 8, 16, 32)
    pre = learn.cbs.filter(lambda c: isinstance(c, DenseContrastivePretrain))
    assert len(pre) == 1 and pre[0].momentum == 0.99 and pre[0].temperature == 0.1
    assert len(learn.cbs.filter(lambda c: isinstance(c, EMAUpdate))) == 1
    shared = ideal_learner(pretrain_dls(cases[:4], [], PREP, bs=8), stage='pretrain', base=4, depth=3, momentum=None)
    assert shared.cbs.filter(lambda c: isinstance(c, DenseContrastivePretrain))[0].key_model is None


def test_finetune_stage_shares_the_given_encoder(cases, tmp_path):
    enc = Encoder(1, unet_widths(4, 3))
    dls = two_stream_dls(cases[:2], cases[2:6], cases[6:7], PREP, 4, 4, augment=False)
    learn = ideal_learner(dls, n_classes=3, encoder=enc)
    assert isinstance(learn.model, TwoStreamUNet) and learn.model.encoder is enc
    assert (learn.model.decoder_a.up, learn.model.decoder_b.up) == ('transpose', 'bilinear')
    cons = learn.cbs.filter(lambda c: isinstance(c, TwoStreamConsistency))
    assert len(cons) == 1 and cons[0].rampup_iters is None and cons[0].cps_weight == 0.1 and cons[0].split_bn
    # from a file: a new module with the saved weights
    save_encoder(enc, tmp_path/'e.pth')
    learn2 = ideal_learner(dls, n_classes=3, encoder=tmp_path/'e.pth')
    for (k, a), b in zip(enc.state_dict().items(), learn2.model.encoder.state_dict().values()):
        assert torch.equal(a, b), k
    # from a stage-1 Learner
    pre = ideal_learner(pretrain_dls(cases[:4], [], PREP, bs=8), stage='pretrain', encoder=enc)
    assert ideal_learner(dls, n_classes=3, encoder=pre).model.encoder is enc


def test_finetune_stage_refuses_bad_arguments(cases):
    dls = two_stream_dls(cases[:2], cases[2:6], [], PREP, 4, 4, augment=False)
    with pytest.raises(DataError, match='needs n_classes'): ideal_learner(dls)
    with pytest.raises(DataError, match="use 'pretrain'"): ideal_learner(dls, 3, stage='pre')
    with pytest.raises(DataError, match='2 input channel'): ideal_learner(dls, 3, encoder=Encoder(2, (4, 8, 16, 32)))
    with pytest.raises(DataError, match='save_encoder'): ideal_learner(dls, 3, encoder=42)


def test_pretrain_then_finetune_smoke_fit(cases):
    "Stage 1 lowers its dense loss; stage 2 starts from the stage-1 weights and learns to segment."
    set_seed(0)
    pre = ideal_learner(pretrain_dls(cases[:8], cases[8:], PREP, bs=16, seed=0), stage='pretrain', base=8, depth=3, d_out=16)
    with pre.no_bar(), pre.no_logging(): pre.fit_one_cycle(3, 1e-3)
    hp = history(pre)
    assert hp[-1]['train_loss'] < hp[0]['train_loss'], hp
    w_pre = pre.model.encoder.levels[0][0].weight.detach().clone()
    dls = two_stream_dls(cases[:2], cases[2:8], cases[8:], PREP, 8, 8, augment=False, seed=0)
    ft = ideal_learner(dls, n_classes=3, encoder=pre)
    assert torch.equal(ft.model.encoder.levels[0][0].weight, w_pre)
    with ft.no_bar(), ft.no_logging(): ft.fit_one_cycle(15, 1e-2)
    hf = history(ft)
    assert hf[-1]['fg_dice'] > 0.5, hf
    cons = ft.cbs.filter(lambda c: isinstance(c, TwoStreamConsistency))[0]
    assert cons.ramp == 15 * len(dls.train)
    assert cons.last['weight'] == pytest.approx(0.1 * sigmoid_rampup(cons.ramp - 1, cons.ramp))


# ---------------------------------------------------------------- the command line
_SCRIPT = Path(sys.executable).parent/'semicontrast'
ENV = dict(os.environ, OMP_NUM_THREADS='2')


def test_semicontrast_run_ideal_smoke(tmp_path):
    out = tmp_path/'ideal'
    r = subprocess.run([str(_SCRIPT), 'run', 'ideal', '--data', 'hippocampus', '--smoke', '--quiet', '--pretrain-epochs', '2',
                        '--out', str(out)], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr     # --pretrain-epochs is accepted by a method with a pre-training stage
    res = json.loads((out/'result.json').read_text())
    assert res['method'] == 'ideal' and res['config']['pretrain_epochs'] == 2
    st = res['stages']
    assert len(st['pretrain']['history']) == 2 and st['pretrain']['encoder'] == 'encoder.pth'
    assert st['finetune']['steps'] >= st['finetune']['supervised_steps'] >= 1
    assert set(res['per_case']) == set(res['split']['test'])
    assert 0 <= res['mean']['dice'] <= 1
    enc = load_encoder(out/'encoder.pth')
    assert enc.widths == (8, 16, 32, 64, 128) and enc.meta['pretrain_epochs'] == 2
    # the saved two-stream model loads into the architecture the card describes
    m = TwoStreamUNet(n_classes=res['dataset']['n_classes'], base=8, depth=4)
    m.load_state_dict(torch.load(out/'model.pth', weights_only=True)['state_dict'])
    html = (out/'report.html').read_text()
    assert 'Stage pretrain: training' in html and 'Stage finetune: training' in html
    assert 'ideal on hippocampus' in r.stdout


def test_pretrain_epochs_is_refused_for_methods_without_pretraining(tmp_path):
    r = subprocess.run([str(_SCRIPT), 'run', 'supervised', '--smoke', '--pretrain-epochs', '3', '--out', str(tmp_path/'x')],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 2 and '--pretrain-epochs' in r.stderr and not (tmp_path/'x'/'result.json').exists()


def test_ideal_without_unlabelled_cases_stops_before_pretraining(tmp_path):
    r = subprocess.run([str(_SCRIPT), 'run', 'ideal', '--data', 'phantom', '--smoke', '--unlabeled', '0', '--quiet',
                        '--out', str(tmp_path/'x')], capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 2 and 'unlabelled' in r.stderr and '--unlabeled' in r.stderr
    assert not (tmp_path/'x'/'encoder.pth').exists() and not (tmp_path/'x'/'result.json').exists()
