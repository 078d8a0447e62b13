"LRC end to end: region sampling and pooling, RegionInfoNCE, MoCo (queue + loss), LRCNet, the pre-training callback, `lrc_learner` and `semicontrast run lrc|moco`."
import copy, json, zlib
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F

from semicontrast.core import IGNORE_INDEX, DataError, set_seed
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, supervised_dls
from semicontrast.models import UNet
from semicontrast.lrc import LRCNet
from semicontrast.losses import sample_regions, pool_regions, RegionInfoNCE, MoCoQueue, moco_loss
from semicontrast.superpixels import region_dls, superpixels_for, SuperpixelCache, felzenszwalb_slice
from semicontrast.lrc import RegionContrastPretrain, _drop_background_regions
from semicontrast.learner import lrc_learner, history
from semicontrast.augment import TwoViews

torch.set_num_threads(1)
PREP = Preprocess(size=(32, 32))


def _gen(*key): return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


# ------------------------------------------------------------ slow references
def ref_region_nce(r1, r2, mask, tau, cross_image, symmetric):
    "One anchor at a time: -log exp(a.pos/tau) / sum over positive + negatives (other regions, both views)."
    B, N, _ = r1.shape
    views = [r1 / r1.norm(dim=2, keepdim=True).clamp_min(1e-6), r2 / r2.norm(dim=2, keepdim=True).clamp_min(1e-6)]
    terms = []
    for va in ([0, 1] if symmetric else [0]):
        for b in range(B):
            for k in range(N):
                if not mask[b, k]: continue
                a = views[va][b, k]
                cands = [(vc, c, j) for vc in (0, 1) for c in range(B) for j in range(N)
                         if mask[c, j] and (cross_image or c == b) and (vc, c, j) != (va, b, k)]
                if len(cands) < 2: continue            # the positive alone: no negative, no signal
                logits = torch.stack([a @ views[vc][c, j] for vc, c, j in cands]) / tau
                pos = cands.index((1 - va, b, k))
                terms.append(torch.logsumexp(logits, 0) - logits[pos])
    return torch.stack(terms).mean() if terms else None


def ref_pool(emb, idx):
    B, D, h, w = emb.shape
    out = torch.zeros(B, idx.shape[1], D, dtype=emb.dtype)
    for b in range(B):
        for n in range(idx.shape[1]):
            vecs = [emb[b, :, int(p) // w, int(p) % w] for p in idx[b, n]]
            m = sum(vecs) / len(vecs)
            out[b, n] = m / m.norm().clamp_min(1e-6)
    return out


def ref_moco(q, k, neg, tau):
    terms = []
    for i in range(q.shape[0]):
        a = q[i] / q[i].norm()
        pos = a @ (k[i] / k[i].norm()) / tau
        negs = (neg / neg.norm(dim=1, keepdim=True)) @ a / tau
        terms.append(torch.logsumexp(torch.cat([pos[None], negs]), 0) - pos)
    return torch.stack(terms).mean()


# ------------------------------------------------------------ RegionInfoNCE
@pytest.mark.parametrize('B,N,D', [(1, 4, 3), (2, 5, 8), (3, 6, 4)])
@pytest.mark.parametrize('cross_image', [False, True])
@pytest.mark.parametrize('symmetric', [False, True])
@pytest.mark.parametrize('tau', [0.07, 0.2])
def test_region_nce_matches_reference_values_and_gradients(B, N, D, cross_image, symmetric, tau):
    g = _gen(B, N, D, cross_image, symmetric, tau)
    r1 = torch.randn(B, N, D, generator=g, dtype=torch.float64)
    r2 = (r1 + 0.8 * torch.randn(B, N, D, generator=g, dtype=torch.float64))
    mask = torch.rand(B, N, generator=g) > 0.25
    mask[0, :2] = True; mask[-1, -1] = False                     # at least one empty slot
    a1, a2 = r1.clone().requires_grad_(), r2.clone().requires_grad_()
    b1, b2 = r1.clone().requires_grad_(), r2.clone().requires_grad_()
    got = RegionInfoNCE(tau, cross_image, symmetric)(a1, a2, mask)
    ref = ref_region_nce(b1, b2, mask, tau, cross_image, symmetric)
    assert torch.allclose(got, ref, atol=1e-10), (got.item(), ref.item())
    got.backward(); ref.backward()
    assert torch.allclose(a1.grad, b1.grad, atol=1e-10) and torch.allclose(a2.grad, b2.grad, atol=1e-10)
    assert a1.grad[~mask].abs().sum() == 0 and a2.grad[~mask].abs().sum() == 0   # empty slots get no gradient


def test_region_nce_prefers_matching_regions_and_handles_empty_batches():
    g = _gen('prefer')
    r = torch.randn(2, 8, 16, generator=g)
    loss_fn = RegionInfoNCE(0.1)
    assert loss_fn(r, r + 0.01 * torch.randn(r.shape, generator=g)) < loss_fn(r, torch.randn(r.shape, generator=g))
    empty = torch.zeros(2, 8, dtype=torch.bool)
    r1 = torch.randn(2, 8, 16, requires_grad=True)
    z = loss_fn(r1, torch.randn(2, 8, 16), empty)
    assert z.item() == 0 and z.requires_grad
    with pytest.raises(ValueError, match='must equal r1 shape'): loss_fn(r1, torch.randn(2, 7, 16))
    with pytest.raises(ValueError, match='mask must be'): loss_fn(r1, r1, torch.ones(2, 7, dtype=torch.bool))


# ------------------------------------------------------------ sampling and pooling
def _random_regions(B, h, w, g):
    "Blocky random region maps with some -1 pixels, and a shifted copy as the 'other view'."
    base = torch.randint(0, 6, (B, h // 4, w // 4), generator=g).repeat_interleave(4, 1).repeat_interleave(4, 2)
    base = base + 6 * torch.randint(0, 2, (B, h, w), generator=g) * (torch.arange(w) >= w // 2)   # more ids on the right half
    base[:, :2] = -1
    other = base.roll(3, dims=2)
    other[:, :, :3] = -1
    return base, other


@pytest.mark.parametrize('n_regions,n_pixels,min_pixels', [(4, 3, 1), (16, 8, 4), (40, 5, 10)])
def test_sample_regions_picks_pixels_of_the_same_region_in_each_view(n_regions, n_pixels, min_pixels):
    g = _gen(n_regions, n_pixels, min_pixels)
    reg1, reg2 = _random_regions(3, 16, 24, g)
    s = sample_regions(reg1, reg2, n_regions, n_pixels, min_pixels, generator=g)
    assert s['idx1'].shape == s['idx2'].shape == (3, n_regions, n_pixels)
    for b in range(3):
        ids1, c1 = reg1[b].unique(return_counts=True)
        ids2, c2 = reg2[b].unique(return_counts=True)
        cnt1 = {int(i): int(c) for i, c in zip(ids1, c1) if i >= 0}
        cnt2 = {int(i): int(c) for i, c in zip(ids2, c2) if i >= 0}
        eligible = {i for i in cnt1 if cnt1[i] >= min_pixels and cnt2.get(i, 0) >= min_pixels}
        picked = s['ids'][b][s['mask'][b]].tolist()
        assert len(picked) == min(n_regions, len(eligible)) and len(set(picked)) == len(picked)
        assert set(picked) <= eligible
        assert (s['ids'][b][~s['mask'][b]] == -1).all()
        for n in range(n_regions):
            if not s['mask'][b, n]: continue
            rid = int(s['ids'][b, n])
            assert (reg1[b].flatten()[s['idx1'][b, n]] == rid).all()
            assert (reg2[b].flatten()[s['idx2'][b, n]] == rid).all()


def test_sample_regions_is_reproducible_and_uniform_within_a_region():
    reg = torch.zeros(1, 8, 8, dtype=torch.long)
    reg[0, :, 4:] = 1
    s1 = sample_regions(reg, reg, 2, 4000, generator=torch.Generator().manual_seed(3))
    s2 = sample_regions(reg, reg, 2, 4000, generator=torch.Generator().manual_seed(3))
    assert torch.equal(s1['idx1'], s2['idx1'])
    counts = torch.bincount(s1['idx1'][0, 0], minlength=64).float()
    members = counts[counts > 0]
    assert len(members) == 32 and members.min() > 4000 / 32 * 0.5    # every pixel of the region gets drawn
    none = sample_regions(torch.full((2, 4, 4), -1), torch.full((2, 4, 4), -1), 3, 2)
    assert not none['mask'].any()
    with pytest.raises(ValueError, match='same shape'): sample_regions(reg, reg[:, :4], 2, 2)
    with pytest.raises(ValueError, match='integer tensor'): sample_regions(reg.float(), reg, 2, 2)


def test_pool_regions_matches_reference_values_and_gradients():
    g = _gen('pool')
    reg1, reg2 = _random_regions(2, 16, 16, g)
    s = sample_regions(reg1, reg2, 6, 5, 2, generator=g)
    e = torch.randn(2, 7, 16, 16, generator=g, dtype=torch.float64)
    a, b = e.clone().requires_grad_(), e.clone().requires_grad_()
    got, ref = pool_regions(a, s['idx1']), ref_pool(b, s['idx1'])
    assert torch.allclose(got, ref, atol=1e-12)
    w = torch.randn(got.shape, generator=g, dtype=torch.float64)
    (got * w).sum().backward(); (ref * w).sum().backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-12)
    with pytest.raises(ValueError, match='outside'): pool_regions(e[:, :, :4, :4], s['idx1'])


def test_warped_region_maps_stay_aligned_for_sampling():
    "Regions of a real slice warped by two views: a picked region's pixels in view 2 map back into that region of the slice."
    img = synthetic_phantoms(1, shape=(4, 48, 48))[0].image[2]
    reg = torch.from_numpy(felzenszwalb_slice(img)).long()[None]
    v = TwoViews(seed=0, photometric=False)(torch.from_numpy(img)[None, None], extra=reg)
    s = sample_regions(v['extra1'], v['extra2'], 8, 6, 4, generator=torch.Generator().manual_seed(0))
    h, w = 48, 48
    for n in range(8):
        if not s['mask'][0, n]: continue
        for p in s['idx2'][0, n]:
            y, x = divmod(int(p), w)
            # view pixel centre -> source coordinates through theta2 (normalised coords, align_corners=False)
            cx, cy = (2 * x + 1) / w - 1, (2 * y + 1) / h - 1
            sx, sy = (v['theta2'][0] @ torch.tensor([cx, cy, 1.0])).tolist()
            ix, iy = round(((sx + 1) * w - 1) / 2), round(((sy + 1) * h - 1) / 2)
            assert reg[0, iy, ix] == s['ids'][0, n]


# ------------------------------------------------------------ MoCo
def test_moco_queue_is_a_fifo_with_wrap_around_and_overflow():
    q = MoCoQueue(dim=3, size=5)
    keys = [F.normalize(torch.randn(n, 3), dim=1) for n in (2, 2, 2)]
    q.push(keys[0]); assert int(q.filled) == 2 and torch.allclose(q.negatives(), keys[0])
    q.push(keys[1]); q.push(keys[2])
    assert int(q.filled) == 5 and int(q.ptr) == 1
    expect = torch.cat([keys[2][1:], keys[0][1:], keys[1], keys[2][:1]])   # slot 0 overwritten by the 6th key
    assert torch.allclose(q.negatives(), expect)
    big = F.normalize(torch.randn(12, 3), dim=1)
    q.push(big)                                                           # more keys than slots: the last 5 stay
    assert torch.allclose(q.negatives(), torch.cat([big[11:], big[7:11]]), atol=1e-6) and int(q.ptr) == 1
    assert 'keys' in q.state_dict() and 'ptr' in q.state_dict()
    with pytest.raises(ValueError, match=r'\(n, 3\)'): q.push(torch.randn(2, 4))


@pytest.mark.parametrize('K', [1, 7, 50])
def test_moco_loss_matches_reference_values_and_gradients(K):
    g = _gen('moco', K)
    q0, k0, neg = (torch.randn(s, 6, generator=g, dtype=torch.float64) for s in (4, 4, K))
    a, b = q0.clone().requires_grad_(), q0.clone().requires_grad_()
    k = k0.clone().requires_grad_()
    got, ref = moco_loss(a, k, neg, 0.2), ref_moco(b, k0, neg, 0.2)
    assert torch.allclose(got, ref, atol=1e-10)
    got.backward(); ref.backward()
    assert torch.allclose(a.grad, b.grad, atol=1e-10)
    assert k.grad is None                                                 # keys are targets, not trained


def test_moco_loss_with_an_empty_queue_uses_the_other_images():
    q, k = torch.randn(4, 6), torch.randn(4, 6)
    from semicontrast.losses import info_nce
    assert torch.allclose(moco_loss(q, k, torch.empty(0, 6), 0.2), info_nce(q, k, 0.2))


# ------------------------------------------------------------ model, callback, learner
def test_lrcnet_heads_and_outputs():
    net = LRCNet(UNet(in_ch=2, n_classes=3, base=4, depth=3), d_out=8, global_hidden=16)
    o = net(torch.randn(3, 2, 32, 32))
    assert o['global'].shape == (3, 8) and o['dense'].shape == (3, 8, 32, 32)
    assert isinstance(net.dense_head.proj[1], torch.nn.BatchNorm2d)     # LRC's head: conv-BN-ReLU-conv
    net.outputs = ('logits',)
    assert list(net(torch.randn(1, 2, 32, 32))) == ['logits']
    with pytest.raises(ValueError, match='needs an encoder-decoder'): LRCNet(torch.nn.Conv2d(1, 1, 1))


def test_background_regions_are_dropped_whole():
    reg = torch.tensor([[[0, 0, 1], [2, 2, 1]]])
    bg = torch.tensor([[[True, True, True], [True, False, True]]])
    assert _drop_background_regions(reg, bg).tolist() == [[[-1, -1, -1], [2, 2, -1]]]


@pytest.fixture(scope='module')
def cases():
    return synthetic_phantoms(n=6, shape=(6, 32, 32), n_classes=3, seed=0)


def _pretrain(cases, **kw):
    set_seed(0)
    dls = region_dls(cases[:4], cases[4:], PREP, labels=kw.pop('labels', False), bs=8)
    learn = lrc_learner(dls, base=4, depth=3, d_out=8, global_hidden=16, queue_size=32, momentum=0.9, **kw)
    return learn


def test_pretrain_step_loss_ema_and_queue(cases):
    learn = _pretrain(cases)
    cb = learn.region_contrast_pretrain
    seen = {}
    from fastai.callback.core import Callback
    class Watch(Callback):
        order = 100
        def after_loss(self):
            c = cb.cache
            s = c['sample']
            r1 = pool_regions(c['first']['dense'], s['idx1']); r2 = pool_regions(c['second']['dense'], s['idx2'])
            seen['lrc'] = cb.region_loss(r1, r2, s['mask']).detach()
            seen['moco'] = moco_loss(c['first']['global'], c['key'], cb.queue.negatives(), 0.2).detach()
        def after_step(self): seen['key'] = cb.cache['key'].clone()
    with learn.no_logging(): learn.fit(1, cbs=[Watch()])
    assert torch.allclose(cb.last['lrc'], seen['lrc'], atol=1e-6) and torch.allclose(cb.last['moco'], seen['moco'], atol=1e-6)
    assert torch.allclose(cb.last['loss'], cb.last['moco'] + cb.last['lrc'], atol=1e-6)
    assert all(not p.requires_grad for p in cb.key_model.parameters())
    # the queue holds exactly the keys pushed (3 steps of 8 slices = 24 <= 32): the last step's keys at its end
    n_train = len(learn.dls.train.dataset) // 8 * 8
    assert int(cb.queue.filled) == n_train
    assert torch.allclose(cb.queue.keys[n_train - 8:n_train], F.normalize(seen['key'], dim=1), atol=1e-6)


def test_ema_moves_the_key_network_by_one_minus_m(cases):
    learn = _pretrain(cases)
    cb = learn.region_contrast_pretrain
    rec = {}
    from fastai.callback.core import Callback
    class Watch(Callback):
        order = 1   # before the LRC callback's after_step
        def before_step(self):
            if 'k0' not in rec: rec['k0'] = [p.detach().clone() for p in cb.key_model.parameters()]
        def after_step(self):
            if 'q1' not in rec: rec['q1'] = [p.detach().clone() for p in learn.model.parameters()]
        def after_batch(self):
            if 'k1' not in rec: rec['k1'] = [p.detach().clone() for p in cb.key_model.parameters()]
    with learn.no_logging(): learn.fit(1, cbs=[Watch()])
    for k0, q1, k1 in zip(rec['k0'], rec['q1'], rec['k1']):
        assert torch.allclose(k1, 0.9 * k0 + 0.1 * q1, atol=1e-6)


def test_moco_alone_does_not_run_the_decoder_and_supervised_uses_labels(cases):
    learn = _pretrain(cases, lrc_weight=0.0)
    with learn.no_logging(): learn.fit(1)
    assert learn.model.outputs == ('global',) and set(learn.region_contrast_pretrain.last) == {'moco', 'loss'}
    sup = _pretrain(cases, labels=True, global_loss='supervised', n_classes=3)
    with sup.no_logging(): sup.fit(1)
    last = sup.region_contrast_pretrain.last
    assert set(last) == {'seg', 'lrc', 'loss'} and torch.isfinite(last['loss'])
    assert sup.region_contrast_pretrain.queue is None
    with pytest.raises(DataError, match='needs n_classes'): _pretrain(cases, global_loss='supervised')


def test_pretrain_refuses_batches_without_regions(cases):
    dls = supervised_dls(cases[:2], [], PREP, bs=4, augment=False)
    learn = lrc_learner(dls, base=4, depth=3, d_out=8, global_hidden=16)
    with pytest.raises(ValueError, match='region_dls'):
        with learn.no_logging(): learn.fit(1)


def test_pretrain_then_finetune_keeps_the_whole_unet(cases):
    pre = _pretrain(cases, n_classes=3)
    with pre.no_logging(): pre.fit(2)
    terms = pre.region_contrast_pretrain.epoch_terms
    assert len(terms) == 2 and all(set(t) == {'moco', 'lrc', 'loss'} for t in terms)
    state = copy.deepcopy(pre.model.unet.state_dict())
    ft = lrc_learner(supervised_dls(cases[:2], cases[4:], PREP, bs=4, augment=False), 3, stage='finetune', pretrained=pre)
    for k, v in ft.model.state_dict().items(): assert torch.equal(v, state[k]), k
    with ft.no_logging(): ft.fit(2, 1e-2)
    assert torch.isfinite(torch.tensor(history(ft)[-1]['valid_loss']))
    ft5 = lrc_learner(supervised_dls(cases[:2], [], PREP, bs=4, augment=False), 5, stage='finetune', pretrained=copy.deepcopy(pre.model))
    assert ft5.model.decoder.head.out_channels == 5 and ft5.model(torch.randn(1, 1, 32, 32)).shape == (1, 5, 32, 32)


# ------------------------------------------------------------ CLI
def test_semicontrast_run_lrc_and_moco_smoke(tmp_path):
    from semicontrast.cli import main
    cache = tmp_path/'sp'
    for method in ('lrc', 'moco'):
        assert main(['run', method, '--smoke', '--quiet', '--out', str(tmp_path/method), '--superpixel-cache', str(cache)]) == 0
        r = json.loads((tmp_path/method/'result.json').read_text())
        assert r['method'] == method and (tmp_path/method/'report.html').exists() and (tmp_path/method/'encoder.pth').exists()
        assert r['config']['lrc_weight'] == (1.0 if method == 'lrc' else 0.0) and r['config']['global_loss'] == 'moco'
        assert set(r['stages']['pretrain']['terms'][0]) == ({'moco', 'lrc', 'loss'} if method == 'lrc' else {'moco', 'loss'})
        assert r['config']['queue_size'] == 4096 and 0 <= r['mean']['dice'] <= 1
        sp = r['stages']['pretrain']['superpixels']
        if method == 'lrc': assert sp['misses'] > 0 and sp['hits'] == 0 and sp['repairs'] == 0
        else: assert sp['hits'] > 0 and sp['misses'] == 0      # the second run read every volume from the cache


def test_cli_refuses_lrc_options_elsewhere_and_bad_windows(tmp_path, capsys):
    from semicontrast.cli import main
    assert main(['run', 'supervised', '--smoke', '--quiet', '--out', str(tmp_path/'a'), '--lrc-weight', '0.5']) == 2
    assert '--lrc-weight is an option of lrc, moco' not in (err := capsys.readouterr().err) and '--lrc-weight is an option of lrc' in err
    assert main(['run', 'lrc', '--smoke', '--quiet', '--out', str(tmp_path/'b'), '--lrc-weight', '-1']) == 2
    assert '>= 0' in capsys.readouterr().err
    assert main(['run', 'supervised', '--smoke', '--quiet', '--out', str(tmp_path/'c'), '--window=5,1']) == 2
    assert 'LO < HI' in capsys.readouterr().err
    assert main(['run', 'supervised', '--smoke', '--quiet', '--out', str(tmp_path/'d'), '--window=-2,3']) == 0
    r = json.loads((tmp_path/'d'/'result.json').read_text())
    assert r['preprocessing']['intensity'] == 'window' and r['preprocessing']['window'] == [-2.0, 3.0]
