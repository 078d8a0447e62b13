"MSCS end to end: patch InfoNCE, pixel SupCon and its sampler against slow references, feature perturbation, MSCSNet, the callback, `mscs_learner` and `semicontrast run mscs|cps`."
import json, os, subprocess, sys, zlib
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F

from semicontrast.core import IGNORE_INDEX, set_seed
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, two_stream_dls
from semicontrast.models import FeaturePerturbation
from semicontrast.mscs import MSCSNet
from semicontrast.losses import (patch_info_nce, supcon_loss, sample_class_pixels, pixel_contrast_loss, contrast_labels,
                                 cross_pseudo_loss, DiceCELoss)
from semicontrast.mscs import MSCSConsistency
from semicontrast.learner import mscs_learner, history
from fastai.learner import Learner

torch.set_num_threads(1)
PREP = Preprocess(size=(32, 32))


def _gen(*key): return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


# ------------------------------------------------------------ slow references
def ref_patch_nce(za, zb, tau, symmetric=True):
    "Patch by patch: -log exp(u_i.v_i/tau) / sum_j exp(u_i.v_j/tau) over every patch j of the batch in the other stream."
    B, D, gh, gw = za.shape
    A = [za[b, :, i, j] / za[b, :, i, j].norm() for b in range(B) for i in range(gh) for j in range(gw)]
    V = [zb[b, :, i, j] / zb[b, :, i, j].norm() for b in range(B) for i in range(gh) for j in range(gw)]
    dirs = [(A, V), (V, A)] if symmetric else [(A, V)]
    terms = []
    for X, Y in dirs:
        for i in range(len(X)):
            den = sum(torch.exp(X[i] @ y / tau) for y in Y)
            terms.append(-torch.log(torch.exp(X[i] @ Y[i] / tau) / den))
    return sum(terms) / len(terms)


def ref_supcon(z, y, tau):
    "Anchor by anchor, positive by positive (Khosla et al. L_out); anchors without a positive are skipped."
    z = [v / v.norm() for v in z]
    per_anchor = []
    for i in range(len(z)):
        pos = [p for p in range(len(z)) if p != i and int(y[p]) == int(y[i])]
        if not pos: continue
        den = sum(torch.exp(z[i] @ z[a] / tau) for a in range(len(z)) if a != i)
        per_anchor.append(sum(-torch.log(torch.exp(z[i] @ z[p] / tau) / den) for p in pos) / len(pos))
    return sum(per_anchor) / len(per_anchor)


# ------------------------------------------------------------ patch-level InfoNCE
@pytest.mark.parametrize('B,D,gh,gw,tau,sym', [(2, 5, 2, 3, 0.1, True), (3, 4, 1, 1, 0.5, True), (1, 6, 3, 3, 0.2, False)])
def test_patch_info_nce_matches_reference_values_and_gradients(B, D, gh, gw, tau, sym):
    g = _gen('patch', B, D, gh, gw)
    za = torch.randn(B, D, gh, gw, dtype=torch.float64, generator=g).requires_grad_()
    zb = torch.randn(B, D, gh, gw, dtype=torch.float64, generator=g).requires_grad_()
    fast = patch_info_nce(za, zb, tau, symmetric=sym)
    slow = ref_patch_nce(za, zb, tau, sym)
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-9)
    for a, b in zip(torch.autograd.grad(fast, (za, zb)), torch.autograd.grad(slow, (za, zb))):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_patch_positive_is_the_same_place_in_the_other_stream():
    g = _gen('place')
    za = torch.randn(2, 16, 2, 2, generator=g)
    zb = za + 0.05 * torch.randn(za.shape, generator=g)
    assert patch_info_nce(za, zb) < 0.1 < patch_info_nce(za, zb.roll(1, dims=-1))


def test_patch_info_nce_refuses_bad_shapes():
    with pytest.raises(ValueError, match='must equal'): patch_info_nce(torch.zeros(2, 4, 2, 2), torch.zeros(2, 4, 1, 2))
    with pytest.raises(ValueError, match='at least 2 patches'): patch_info_nce(torch.randn(1, 4, 1, 1), torch.randn(1, 4, 1, 1))


# ------------------------------------------------------------ pixel-level SupCon
@pytest.mark.parametrize('N,D,K,tau', [(10, 4, 3, 0.1), (7, 8, 2, 0.5), (12, 3, 6, 0.07)])
def test_supcon_matches_reference_values_and_gradients(N, D, K, tau):
    g = _gen('supcon', N, D, K)
    z = torch.randn(N, D, dtype=torch.float64, generator=g).requires_grad_()
    y = torch.randint(0, K, (N,), generator=g)
    fast, slow = supcon_loss(z, y, tau), ref_supcon(z, y, tau)
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(torch.autograd.grad(fast, z)[0], torch.autograd.grad(slow, z)[0], rtol=1e-8, atol=1e-10)


def test_supcon_without_any_positive_is_a_zero_on_the_graph():
    z = torch.randn(3, 4, requires_grad=True)
    loss = supcon_loss(z, torch.tensor([0, 1, 2]))
    assert loss.item() == 0 and loss.requires_grad
    loss.backward(); assert torch.equal(z.grad, torch.zeros_like(z))


def test_supcon_rewards_class_clusters():
    g = _gen('clusters')
    y = torch.randint(0, 3, (30,), generator=g)
    z = torch.eye(3)[y] + 0.1 * torch.randn(30, 3, generator=g)
    assert supcon_loss(z, y) < supcon_loss(z, y[torch.randperm(30, generator=g)])


def test_sampler_bounds_each_class_and_never_takes_ignored_pixels():
    g = _gen('sampler')
    lab = torch.randint(0, 3, (2, 16, 16), generator=g)
    lab[0, :4] = IGNORE_INDEX
    lab[lab == 2] = 1; lab[0, 8, 8] = 2     # class 2 is one pixel
    idx = sample_class_pixels(lab, max_per_class=20, generator=_gen('s'))
    vals = lab.flatten()[idx]
    counts = {c: int((vals == c).sum()) for c in (0, 1, 2)}
    assert counts == {0: 20, 1: 20, 2: 1}
    assert not (vals == IGNORE_INDEX).any() and len(set(idx.tolist())) == len(idx)
    again = sample_class_pixels(lab, max_per_class=20, generator=_gen('s'))
    assert torch.equal(idx, again)            # reproducible with a generator


def test_sampler_is_uniform_within_a_class():
    lab = torch.zeros(1, 2, 5, dtype=torch.long)          # 10 pixels of one class, draw 3 at a time
    g, hits = _gen('uniform'), torch.zeros(10)
    for _ in range(3000): hits[sample_class_pixels(lab, 3, generator=g)] += 1
    assert hits.sum() == 9000 and (hits / 3000 - 0.3).abs().max() < 0.04


def test_pixel_contrast_equals_supcon_on_the_sampled_pixels_of_both_streams():
    g = _gen('pixel')
    ea = torch.randn(2, 5, 6, 6, dtype=torch.float64, generator=g).requires_grad_()
    eb = torch.randn(2, 5, 6, 6, dtype=torch.float64, generator=g).requires_grad_()
    la = torch.randint(0, 3, (2, 6, 6), generator=g); lb = torch.randint(0, 3, (2, 6, 6), generator=g)
    la[1, :3] = IGNORE_INDEX
    fast = pixel_contrast_loss(ea, eb, la, lb, max_per_class=4, temperature=0.2, generator=_gen('draw'))
    # the same draws, then every sampled pixel looked up by hand
    gd = _gen('draw')
    ia, ib = sample_class_pixels(la, 4, generator=gd), sample_class_pixels(lb, 4, generator=gd)
    pts, ys = [], []
    for e, l, idx in ((ea, la, ia), (eb, lb, ib)):
        for f in idx.tolist():
            b, r = divmod(f, 36); y, x = divmod(r, 6)
            pts.append(e[b, :, y, x]); ys.append(l[b, y, x])
    slow = ref_supcon(pts, torch.stack(ys), 0.2)
    assert len(pts) == 24                      # 3 classes x 4 pixels x 2 streams
    torch.testing.assert_close(fast, slow, rtol=1e-9, atol=1e-9)
    for a, b in zip(torch.autograd.grad(fast, (ea, eb)), torch.autograd.grad(slow, (ea, eb))):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


def test_contrast_labels_prefer_ground_truth_then_confident_pseudo_labels():
    target = torch.full((1, 1, 3), IGNORE_INDEX); target[0, 0, 0] = 2
    logits = torch.zeros(1, 3, 1, 3)
    logits[0, 1, 0, 0] = 10.      # confident class 1 where the ground truth says 2: ground truth wins
    logits[0, 0, 0, 1] = 10.      # confident class 0
    logits[0, 2, 0, 2] = 0.5      # unsure
    assert contrast_labels(target, logits, 0.9).tolist() == [[[2, 0, IGNORE_INDEX]]]
    assert contrast_labels(target, logits, None).tolist() == [[[2, 0, 2]]]


# ------------------------------------------------------------ feature perturbation and MSCSNet
@pytest.mark.parametrize('kind', ['noise', 'dropout'])
def test_feature_perturbation_acts_in_training_and_is_the_identity_at_inference(kind):
    f = torch.randn(4, 8, 3, 3)
    m = FeaturePerturbation(kind)
    assert not torch.equal(m.train()(f), f)
    out = m.eval()(f)
    assert out is f


def test_feature_noise_stays_within_its_range_and_dropout_drops_whole_channels():
    f = torch.randn(4, 16, 3, 3).abs() + 0.1
    r = FeaturePerturbation('noise', noise=0.2).train()(f) / f
    assert r.min() >= 0.8 - 1e-6 and r.max() <= 1.2 + 1e-6 and r.std() > 0.05
    d = FeaturePerturbation('dropout', p=0.5).train()(f)
    zero = (d == 0).flatten(2)
    assert torch.equal(zero.all(2), zero.any(2))        # a channel is dropped whole or not at all
    torch.testing.assert_close(d[~zero.all(2)], 2 * f[~zero.all(2)])


@pytest.mark.parametrize('shared', [True, False])
def test_mscsnet_perturbs_stream_b_only_in_training(shared):
    torch.manual_seed(0)
    net = MSCSNet(in_ch=1, n_classes=3, base=8, depth=3, shared_encoder=shared, patch_grid=2, dropout=0.0)
    x = torch.randn(3, 1, 32, 32)
    out = net.train()(x)                                      # training: everything the losses need, as (a, b) pairs
    fa, fb = out['bottleneck']
    clean_a = net.encoder_of(0)(x)[-1]
    torch.testing.assert_close(fa, clean_a)                   # stream a: unperturbed features (encoder dropout 0)
    clean_b = net.encoder_of(1)(x)[-1]
    assert not torch.allclose(fb, clean_b)                    # stream b: perturbed
    assert out['patch'][0].shape == (3, 128, 2, 2) and out['pixel'][0].shape == (3, net.widths[0], 32, 32)   # decoder features
    assert out['pixel_head'](out['pixel'][0][:, :, 0, 0]).shape == (3, 64)   # the head, for the sampled pixels
    net.eval()
    with torch.no_grad():
        out1, out2 = net(x), net(x)
        la, lb = net.streams(x)
    assert torch.equal(out1, out2) and not any(isinstance(v, torch.Tensor) for v in vars(net).values())
    torch.testing.assert_close(out1, MSCSNet.ensemble(la, lb))
    assert (len(net.encoders) == 1) == shared


def test_two_networks_start_from_different_weights():
    net = MSCSNet(base=4, depth=2, shared_encoder=False)
    w0, w1 = (next(e.parameters()) for e in net.encoders)
    assert w0.shape == w1.shape and not torch.equal(w0, w1)


def test_bn_groups_forward_equals_separate_forwards():
    torch.manual_seed(0)
    net = MSCSNet(base=4, depth=2, patch_grid=2, feature_perturb='none', dropout=0.0).train()
    x = torch.randn(6, 1, 16, 16)
    g = torch.tensor([True, True, False, True, False, False])
    grouped, first, second = net(x, groups=g), net(x[g]), net(x[~g])
    for k in ('logits', 'patch', 'pixel'):
        for s in (0, 1):
            torch.testing.assert_close(grouped[k][s][g], first[k][s], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(grouped[k][s][~g], second[k][s], atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------ the callback and the learner
@pytest.fixture(scope='module')
def dls():
    ph = synthetic_phantoms(n=6, shape=(8, 32, 32), seed=3)
    return two_stream_dls(ph[:2], ph[2:5], ph[5:], PREP, bs_labelled=4, bs_unlabelled=4, seed=0)


class _Spy(torch.nn.Module):
    "Wraps an MSCSNet and records the inputs each stream got."
    def __init__(self, net): super().__init__(); self.net, self.calls = net, []
    def __getattr__(self, n):
        try: return super().__getattr__(n)
        except AttributeError: return getattr(self.net, n)
    def forward(self, x, x_b=None, groups=None):
        self.calls.append((self.training, x.detach().clone(), None if x_b is None else x_b.detach().clone()))
        return self.net(x, x_b, groups)


def test_loss_is_the_documented_sum_and_streams_see_weak_and_strong_inputs(dls):
    set_seed(0)
    spy = _Spy(MSCSNet(in_ch=1, n_classes=3, base=8, depth=3, patch_grid=2))
    cb = MSCSConsistency(cps_weight=0.5, patch_weight=0.3, pixel_weight=0.2, rampup_iters=0, max_per_class=32)
    learn = Learner(dls, spy, loss_func=DiceCELoss(), lr=1e-3, cbs=[cb])
    with learn.no_logging(): learn.fit(1)
    L = cb.last
    torch.testing.assert_close(L['loss'], L['sup_a'] + L['sup_b'] + 0.5 * (L['cps'] + 0.3 * L['patch'] + 0.2 * L['pixel']))
    train_calls = [c for c in spy.calls if c[0]]
    valid_calls = [c for c in spy.calls if not c[0]]
    assert train_calls and valid_calls
    assert all(xb is not None and not torch.equal(xa, xb) for _, xa, xb in train_calls)   # strong input differs
    assert all(xb is None for _, _, xb in valid_calls)                                    # validation: clean ensemble
    assert 0 <= L['disagree'] <= 1 and 0 <= L['confident'] <= 1


def test_ramp_weight_and_cps_term(dls):
    cb = MSCSConsistency(cps_weight=0.2, rampup_iters=100)
    cb.ramp = 100
    assert cb.weight(0) == pytest.approx(0.2 * torch.exp(torch.tensor(-5.)).item()) and cb.weight(100) == 0.2
    set_seed(0)
    net = MSCSNet(in_ch=1, n_classes=3, base=8, depth=3, patch_grid=2)
    cb = MSCSConsistency(patch_weight=0, pixel_weight=0, rampup_iters=0)
    learn = Learner(dls, net, loss_func=DiceCELoss(), lr=0., cbs=[cb])      # lr 0: the model stays as it is
    with learn.no_logging(): learn.fit(1)
    assert set(cb.last) >= {'sup_a', 'sup_b', 'cps'} and 'patch' not in cb.last and 'pixel' not in cb.last
    assert cb.last['cps'] > 0


def test_ablation_never_runs_or_trains_the_heads(dls):
    set_seed(0)
    learn = mscs_learner(dls, 3, base=8, depth=3, patch_weight=0, pixel_weight=0)
    before = {k: v.clone() for k, v in learn.model.state_dict().items() if k.startswith(('patch_head', 'pixel_head'))}
    with learn.no_logging(), learn.no_bar(): learn.fit(1, 1e-3)
    after = learn.model.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())
    assert learn.model.embed == ()


def test_mscs_learner_smoke_fit_learns(dls):
    set_seed(0)
    learn = mscs_learner(dls, 3, base=8, depth=3, max_per_class=64)
    assert learn.model.patch_grid == (4, 4)
    with learn.no_logging(), learn.no_bar(): learn.fit_one_cycle(4, 1e-2)
    h = history(learn)
    assert h[-1]['train_loss'] < h[0]['train_loss']
    terms = learn.mscs_consistency.epoch_terms
    assert len(terms) == 4 and all({'patch', 'pixel', 'cps', 'disagree'} <= set(t) for t in terms)
    assert 0 <= h[-1]['fg_dice'] <= 1


def test_patch_grid_is_clipped_to_the_bottleneck(dls):
    assert mscs_learner(dls, 3, base=4, depth=4).model.patch_grid == (2, 2)
    assert mscs_learner(dls, 3, base=4, depth=3, patch_grid=(1, 3)).model.patch_grid == (1, 3)


def test_bad_arguments_are_refused(dls):
    with pytest.raises(ValueError, match='at least 2 classes'): mscs_learner(dls, 1)
    with pytest.raises(ValueError, match="use one of"): MSCSNet(feature_perturb='gaussian')
    with pytest.raises(ValueError, match='patch_weight'): MSCSConsistency(patch_weight=-1)
    with pytest.raises(ValueError, match='strong'): MSCSConsistency(strong=3)
    learn = Learner(dls, MSCSNet(base=4, depth=3), loss_func=DiceCELoss(), cbs=[MSCSConsistency()])
    learn.model = torch.nn.Conv2d(1, 3, 1)
    with pytest.raises(ValueError, match='needs a two-stream model'):
        with learn.no_logging(): learn.fit(1)


# ------------------------------------------------------------ the command line
_SCRIPT = Path(sys.executable).parent/'semicontrast'
ENV = dict(os.environ, OMP_NUM_THREADS='2')


@pytest.mark.parametrize('method', ['mscs', 'mscs_cps'])
def test_semicontrast_run_mscs_and_its_cps_ablation_smoke(tmp_path, method):
    out = tmp_path/method
    r = subprocess.run([str(_SCRIPT), 'run', method, '--smoke', '--quiet', '--out', str(out)],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads((out/'result.json').read_text())
    m = dict(res['stages']['train'], **res['config'])
    assert res['method'] == method and m['steps'] >= m['supervised_steps'] >= 1
    assert (m['patch_weight'], m['pixel_weight']) == ((0.1, 0.1) if method == 'mscs' else (0.0, 0.0))
    assert ('patch' in m['terms'][0]) == (method == 'mscs') and 'cps' in m['terms'][0]
    assert set(res['per_case']) == set(res['split']['test']) and 0 <= res['mean']['dice'] <= 1
    net = MSCSNet(n_classes=res['dataset']['n_classes'], base=8, depth=4, patch_grid=m['patch_grid'])
    net.load_state_dict(torch.load(out/'model.pth', weights_only=True)['state_dict'])
    assert 'Stage train: loss terms per epoch' in (out/'report.html').read_text()


@pytest.mark.parametrize('args,needle', [(['supervised', '--patch-weight', '0.5'], '--patch-weight'),
                                         (['mscs', '--pixel-weight', '-1'], '--pixel-weight'),
                                         (['cps', '--unlabeled', '0', '--data', 'phantom'], 'unlabelled')])
def test_mscs_options_are_checked(tmp_path, args, needle):
    r = subprocess.run([str(_SCRIPT), 'run', *args, '--smoke', '--quiet', '--out', str(tmp_path/'x')],
                       capture_output=True, text=True, env=ENV, timeout=600)
    assert r.returncode == 2 and needle in r.stderr and not (tmp_path/'x'/'result.json').exists()
