"MixCL parts: NT-Xent, SupCon within groups, the label-space pixel contrast and the reconstruction loss against slow loop references (values and gradients); `corrupt`; `ReconstructionHead` and `MixCLNet`."
import zlib
import pytest
import torch
import torch.nn.functional as F

from semicontrast.core import IGNORE_INDEX
from semicontrast.losses import (nt_xent, info_nce, supcon_loss, sample_class_pixels, label_contrast_loss,
                                 reconstruction_loss)
from semicontrast.augment import corrupt
from semicontrast.models import UNet
from semicontrast.heads import ReconstructionHead
from semicontrast.mixcl import MixCLNet

torch.set_num_threads(1)


def _gen(*key): return torch.Generator().manual_seed(zlib.crc32(repr(key).encode()))


# ------------------------------------------------------------ slow references
def ref_nt_xent(z1, z2, tau):
    "View by view: -log exp(z_i.z_p(i)/tau) / sum_{k != i} exp(z_i.z_k/tau) over the 2B views, averaged."
    Z = [v / v.norm() for v in list(z1) + list(z2)]
    n, B = len(Z), len(z1)
    terms = []
    for i in range(n):
        p = i + B if i < B else i - B
        den = sum(torch.exp(Z[i] @ Z[k] / tau) for k in range(n) if k != i)
        terms.append(-torch.log(torch.exp(Z[i] @ Z[p] / tau) / den))
    return sum(terms) / n


def ref_supcon(z, y, tau, g=None):
    "Anchor by anchor: A(i) = other samples of i's group, P(i) = those of i's class; anchors without a positive skipped."
    z = [v / v.norm() for v in z]
    N = len(z)
    g = [0] * N if g is None else [int(v) for v in g]
    per_anchor = []
    for i in range(N):
        A = [a for a in range(N) if a != i and g[a] == g[i]]
        P = [p for p in A if int(y[p]) == int(y[i])]
        if not P: continue
        den = sum(torch.exp(z[i] @ z[a] / tau) for a in A)
        per_anchor.append(sum(-torch.log(torch.exp(z[i] @ z[p] / tau) / den) for p in P) / len(P))
    return sum(per_anchor) / len(per_anchor)


def ref_rec(pred, target, kind, mask):
    "Pixel by pixel and channel by channel; mask (B,H,W) or None."
    B, C, H, W = pred.shape
    tot, n = 0., 0
    for b in range(B):
        for y in range(H):
            for x in range(W):
                if mask is not None and not bool(mask[b, y, x]): continue
                for c in range(C):
                    d = pred[b, c, y, x] - target[b, c, y, x]
                    tot = tot + (d.abs() if kind == 'l1' else d * d)
                    n += 1
    return tot / n


def _grads(loss, *xs): return torch.autograd.grad(loss, xs)


# ------------------------------------------------------------ NT-Xent
@pytest.mark.parametrize('B,D,tau', [(2, 3, 0.1), (4, 6, 0.2), (5, 8, 0.5)])
def test_nt_xent_matches_reference_values_and_gradients(B, D, tau):
    g = _gen('ntx', B, D)
    z1 = torch.randn(B, D, dtype=torch.float64, generator=g).requires_grad_()
    z2 = torch.randn(B, D, dtype=torch.float64, generator=g).requires_grad_()
    fast, slow = nt_xent(z1, z2, tau), ref_nt_xent(z1, z2, tau)
    assert torch.allclose(fast, slow, atol=1e-10)
    for a, b in zip(_grads(fast, z1, z2), _grads(slow, z1, z2)): assert torch.allclose(a, b, atol=1e-10)


def test_nt_xent_uses_same_view_negatives_unlike_info_nce():
    g = _gen('ntx-vs-nce')
    z1, z2 = torch.randn(4, 5, generator=g, dtype=torch.float64), torch.randn(4, 5, generator=g, dtype=torch.float64)
    sym = 0.5 * (info_nce(z1, z2, 0.1) + info_nce(z2, z1, 0.1))
    assert abs(float(nt_xent(z1, z2, 0.1) - sym)) > 1e-3
    # two views of one image, far from the others: easy positives, loss near 0; swapping the pairing makes it large
    e = torch.eye(4, dtype=torch.float64)
    assert float(nt_xent(e, e, 0.1)) < 1e-3
    assert float(nt_xent(e, e.roll(1, 0), 0.1)) > 5


def test_nt_xent_edge_cases_and_errors():
    one = nt_xent(torch.randn(1, 4, requires_grad=True), torch.randn(1, 4))
    assert one.item() == 0. and one.requires_grad
    assert nt_xent(torch.randn(3, 4).half(), torch.randn(3, 4).bfloat16()).dtype == torch.float32
    with pytest.raises(ValueError, match='z2 shape'): nt_xent(torch.randn(3, 4), torch.randn(3, 5))
    with pytest.raises(ValueError, match='z1 must be'): nt_xent(torch.randn(3, 4, 2), torch.randn(3, 4, 2))
    with pytest.raises(ValueError, match='temperature'): nt_xent(torch.randn(3, 4), torch.randn(3, 4), 0.)


# ------------------------------------------------------------ SupCon within groups
@pytest.mark.parametrize('N,D,K,G,tau', [(8, 3, 2, 2, 0.1), (12, 5, 3, 3, 0.2), (7, 4, 2, 1, 0.5)])
def test_supcon_groups_matches_reference_values_and_gradients(N, D, K, G, tau):
    g = _gen('supcon-groups', N, K, G)
    z = torch.randn(N, D, dtype=torch.float64, generator=g).requires_grad_()
    y = torch.randint(0, K, (N,), generator=g)
    grp = torch.randint(0, G, (N,), generator=g)
    fast, slow = supcon_loss(z, y, tau, groups=grp), ref_supcon(z, y, tau, grp)
    assert torch.allclose(fast, slow, atol=1e-10)
    assert torch.allclose(_grads(fast, z)[0], _grads(slow, z)[0], atol=1e-10)


def test_supcon_without_groups_is_unchanged():
    g = _gen('supcon-none')
    z = torch.randn(9, 4, dtype=torch.float64, generator=g).requires_grad_()
    y = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 0])
    fast, slow = supcon_loss(z, y, 0.1), ref_supcon(z, y, 0.1)
    assert torch.allclose(fast, slow, atol=1e-10)
    assert torch.allclose(_grads(fast, z)[0], _grads(slow, z)[0], atol=1e-10)
    assert torch.allclose(supcon_loss(z, y, 0.1, groups=torch.full((9,), 4)), fast, atol=1e-12)


def test_groups_restriction_changes_the_value():
    "Label 1 is one organ in space 0 and another in space 1: without groups they would be positives of each other."
    g = _gen('groups-matter')
    liver, spleen, bg = torch.randn(3, 8, generator=g, dtype=torch.float64)
    z = torch.stack([liver, liver, bg, bg, spleen, spleen, bg, bg]) + 0.05 * torch.randn(8, 8, generator=g, dtype=torch.float64)
    y = torch.tensor([1, 1, 0, 0, 1, 1, 0, 0])
    grp = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    with_g, without = supcon_loss(z, y, 0.1, groups=grp), supcon_loss(z, y, 0.1)
    assert torch.allclose(with_g, ref_supcon(z, y, 0.1, grp), atol=1e-10)
    assert torch.allclose(without, ref_supcon(z, y, 0.1), atol=1e-10)
    assert float(without - with_g) > 0.5          # the unrestricted loss punishes liver != spleen
    # per-group decomposition: the anchor-weighted mean of the losses of the two groups computed apart
    a, b = supcon_loss(z[:4], y[:4], 0.1), supcon_loss(z[4:], y[4:], 0.1)
    assert torch.allclose(with_g, (a + b) / 2, atol=1e-10)


def test_supcon_groups_singletons_give_no_nan_and_zero_without_positives():
    z = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    loss = supcon_loss(z, torch.tensor([0, 0, 1, 1, 0]), groups=torch.tensor([0, 0, 1, 2, 3]))   # 2, 3, 4 alone
    gz, = _grads(loss, z)
    assert torch.isfinite(loss) and torch.isfinite(gz).all() and gz[2:].abs().sum() == 0
    zero = supcon_loss(z, torch.tensor([0, 0, 1, 1, 0]), groups=torch.arange(5))
    assert zero.item() == 0. and zero.requires_grad


def test_supcon_groups_errors():
    z, y = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match='groups must be None or an'): supcon_loss(z, y, groups=torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match='integer group ids'): supcon_loss(z, y, groups=torch.zeros(4))


# ------------------------------------------------------------ label contrast
def _label_batch(key, B=4, D=5, H=4, W=5, K=3):
    g = _gen('label', *key)
    emb = torch.randn(B, D, H, W, dtype=torch.float64, generator=g).requires_grad_()
    lab = torch.randint(0, K, (B, H, W), generator=g)
    lab[lab == 2] = torch.where(torch.rand(int((lab == 2).sum()), generator=g) < 0.3, IGNORE_INDEX, 2)   # some unknown pixels
    lab[-1] = IGNORE_INDEX                                          # the last image is unlabelled
    return emb, lab


def _by_hand(emb, lab, flat_idx, spaces):
    "Loop over the chosen pixels: embedding, class and space of each, then the loop SupCon with groups."
    B, D, H, W = emb.shape
    zs, ys, gs = [], [], []
    for i in flat_idx.tolist():
        b, r = divmod(i, H * W)
        yy, xx = divmod(r, W)
        zs.append(emb[b, :, yy, xx]); ys.append(int(lab[b, yy, xx])); gs.append(0 if spaces is None else int(spaces[b]))
    return zs, ys, gs


@pytest.mark.parametrize('spaces', [None, [5, 2, 5, 2], [0, 1, 2, 0]])
def test_label_contrast_all_pixels_matches_reference(spaces):
    emb, lab = _label_batch(('all', str(spaces)))
    sp = None if spaces is None else torch.tensor(spaces)
    fast = label_contrast_loss(emb, lab, sp, max_per_class=10_000, temperature=0.2)
    idx = (lab.flatten() != IGNORE_INDEX).nonzero().squeeze(1)          # every labelled pixel, no sampling
    zs, ys, gs = _by_hand(emb, lab, idx, sp)
    slow = ref_supcon(zs, ys, 0.2, gs)
    assert torch.allclose(fast, slow, atol=1e-10)
    assert torch.allclose(_grads(fast, emb)[0], _grads(slow, emb)[0], atol=1e-10)


def test_label_contrast_sampled_matches_the_same_draws_by_hand():
    emb, lab = _label_batch(('sampled',), B=5, H=6, W=6)
    sp = torch.tensor([9, 4, 9, 4, 4])
    M = 4
    fast = label_contrast_loss(emb, lab, sp, max_per_class=M, temperature=0.1, generator=torch.Generator().manual_seed(3))
    # the documented encoding: rank of the space * K + class, K = 1 + the largest class; unknown pixels -> -1
    rank = torch.unique(sp, return_inverse=True)[1]
    valid = lab != IGNORE_INDEX
    K = int(lab[valid].max()) + 1
    key = torch.where(valid, rank[:, None, None] * K + lab, torch.full_like(lab, -1))
    idx = sample_class_pixels(key, M, ignore_index=-1, generator=torch.Generator().manual_seed(3))
    zs, ys, gs = _by_hand(emb, lab, idx, sp)
    # at most M per (space, class), all of a rarer pair, never an unknown pixel
    for s in range(2):
        for c in range(K):
            have = int(((rank[:, None, None] == s) & (lab == c)).sum())
            assert sum(1 for y, g in zip(ys, gs) if y == c and int(rank[sp.tolist().index(g)]) == s) == min(M, have)
    assert IGNORE_INDEX not in ys
    slow = ref_supcon(zs, ys, 0.1, gs)
    assert torch.allclose(fast, slow, atol=1e-10)
    assert torch.allclose(_grads(fast, emb)[0], _grads(slow, emb)[0], atol=1e-10)


def test_label_contrast_spaces_matter_and_unlabelled_images_do_not():
    emb, lab = _label_batch(('spaces',))
    full = label_contrast_loss(emb, lab, torch.tensor([0, 1, 0, 1]), max_per_class=10_000)
    assert abs(float(full.detach() - label_contrast_loss(emb, lab, None, max_per_class=10_000).detach())) > 1e-3
    gz, = _grads(full, emb)
    assert gz[-1].abs().sum() == 0                                      # the unlabelled image gets no gradient
    assert torch.allclose(full, label_contrast_loss(emb[:3], lab[:3], torch.tensor([0, 1, 0]), max_per_class=10_000), atol=1e-12)
    none = label_contrast_loss(emb, torch.full_like(lab, IGNORE_INDEX))
    assert none.item() == 0. and none.requires_grad
    assert label_contrast_loss(emb.detach().half(), lab).dtype == torch.float32


def test_label_contrast_errors():
    emb, lab = _label_batch(('errors',))
    with pytest.raises(ValueError, match='emb must be'): label_contrast_loss(emb[0], lab)
    with pytest.raises(ValueError, match='labels must be'): label_contrast_loss(emb, lab[:, :2])
    with pytest.raises(ValueError, match='integer class ids'): label_contrast_loss(emb, lab.float())
    with pytest.raises(ValueError, match='spaces must be'): label_contrast_loss(emb, lab, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='spaces must be'): label_contrast_loss(emb, lab, torch.zeros(4))
    bad = lab.clone(); bad[0, 0, 0] = -3
    with pytest.raises(ValueError, match='negative class ids'): label_contrast_loss(emb, bad)
    with pytest.raises(ValueError, match='max_per_class'): label_contrast_loss(emb, lab, max_per_class=0)


# ------------------------------------------------------------ reconstruction loss
@pytest.mark.parametrize('kind', ['l1', 'mse'])
@pytest.mark.parametrize('masked', [False, True])
def test_reconstruction_matches_reference(kind, masked):
    g = _gen('rec', kind, masked)
    pred = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=g).requires_grad_()
    tgt = torch.randn(2, 3, 4, 5, dtype=torch.float64, generator=g)
    mask = (torch.rand(2, 4, 5, generator=g) < 0.4) if masked else None
    fast, slow = reconstruction_loss(pred, tgt, kind, mask), ref_rec(pred, tgt, kind, mask)
    assert torch.allclose(fast, slow, atol=1e-12)
    assert torch.allclose(_grads(fast, pred)[0], _grads(slow, pred)[0], atol=1e-12)
    if masked:
        assert torch.allclose(reconstruction_loss(pred, tgt, kind, mask[:, None]), fast, atol=1e-12)
        assert torch.allclose(reconstruction_loss(pred, tgt, kind, mask[:, None].expand(2, 3, 4, 5)), fast, atol=1e-12)


def test_reconstruction_edge_cases_and_errors():
    pred, tgt = torch.randn(2, 1, 4, 4, requires_grad=True), torch.randn(2, 1, 4, 4)
    empty = reconstruction_loss(pred, tgt, mask=torch.zeros(2, 4, 4, dtype=torch.bool))
    assert empty.item() == 0. and empty.requires_grad
    assert reconstruction_loss(pred, pred.detach()).item() == 0.
    assert reconstruction_loss(pred.detach().half(), tgt.half(), 'mse').dtype == torch.float32
    with pytest.raises(ValueError, match='as many channels'): reconstruction_loss(pred, torch.randn(2, 3, 4, 4))
    with pytest.raises(ValueError, match="'l1' or 'mse'"): reconstruction_loss(pred, tgt, 'huber')
    with pytest.raises(ValueError, match='bool'): reconstruction_loss(pred, tgt, mask=torch.ones(2, 4, 4))
    with pytest.raises(ValueError, match='mask must be'): reconstruction_loss(pred, tgt, mask=torch.ones(2, 3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match='pred must be'): reconstruction_loss(torch.ones(2, 1, 4, 4, dtype=torch.long), tgt)


# ------------------------------------------------------------ corrupt
@pytest.mark.parametrize('ratio,patch', [(0.3, 8), (0.5, 4), (0.1, 6)])
def test_corrupt_mask_ratio_is_respected(ratio, patch):
    x = torch.rand(8, 1, 48, 40)
    fr = torch.stack([corrupt(x, ratio, patch, generator=_gen('ratio', ratio, patch, s))[1].float().mean(dim=(1, 2))
                      for s in range(10)])                      # (10, 8): one fraction per draw and image
    assert abs(float(fr.mean()) - ratio) < 0.03
    assert float((fr - ratio).abs().max()) < 0.2               # every single image is roughly right, too


@pytest.mark.parametrize('fill', ['noise', 'zero', 'mean'])
def test_corrupt_changes_exactly_the_masked_pixels_without_noise(fill):
    x = torch.rand(3, 2, 32, 32) + 0.5                      # no 0, and (a.s.) no pixel equal to its mean
    xc, m = corrupt(x, 0.3, 8, noise=0., fill=fill, generator=_gen('exact', fill))
    assert m.shape == (3, 32, 32) and m.dtype == torch.bool and xc.shape == x.shape and xc.dtype == x.dtype
    assert torch.equal((xc != x).any(1), m) and torch.equal((xc != x).all(1), m)
    inside = xc.permute(1, 0, 2, 3)[:, m]                       # (C, n masked)
    if fill == 'zero': assert (inside == 0).all()
    if fill == 'mean': assert torch.allclose(inside, x.mean((2, 3)).T[:, :, None, None].expand(2, 3, 32, 32)[:, m])
    if fill == 'noise':                                         # Gaussian of the image's mean and std
        big = torch.rand(1, 1, 128, 128) * 4 + 3
        bc, bm = corrupt(big, 0.5, 8, noise=0., generator=_gen('stats'))
        v = bc[0, 0][bm[0]]
        assert abs(float(v.mean() - big.mean())) < 0.05 and abs(float(v.std() / big.std()) - 1) < 0.05


def test_corrupt_patches_are_squares_on_a_shifted_grid():
    x = torch.rand(1, 1, 40, 48)
    for s in range(10):
        m = corrupt(x, 0.02, 8, noise=0., generator=_gen('square', s))[1][0]      # exactly one patch
        ys, xs = m.nonzero().unbind(1)
        h, w = int(ys.max() - ys.min()) + 1, int(xs.max() - xs.min()) + 1
        assert int(m.sum()) == h * w and h <= 8 and w <= 8
        assert (h == 8 or ys.min() == 0 or ys.max() == 39) and (w == 8 or xs.min() == 0 or xs.max() == 47)


def test_corrupt_noise_and_reproducibility():
    x = torch.randn(4, 1, 32, 32) * 3 + 1
    a, ma = corrupt(x, generator=torch.Generator().manual_seed(7))
    b, mb = corrupt(x, generator=torch.Generator().manual_seed(7))
    c, mc = corrupt(x, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and torch.equal(ma, mb) and not torch.equal(ma, mc)
    xn, mn = corrupt(x, mask_ratio=0., noise=0.2, generator=_gen('noise'))
    assert not mn.any()
    resid = (xn - x).flatten(1).std(1) / x.flatten(1).std(1)
    assert torch.allclose(resid, torch.full((4,), 0.2), atol=0.03)
    assert torch.equal(corrupt(x, mask_ratio=0., noise=0.)[0], x)
    assert corrupt(x, mask_ratio=1., noise=0.)[1].all()
    assert corrupt(x.half(), generator=_gen('half'))[0].dtype == torch.float16


def test_corrupt_errors():
    x = torch.rand(2, 1, 16, 16)
    with pytest.raises(ValueError, match='float'): corrupt(x.long())
    with pytest.raises(ValueError, match='B,C,H,W'): corrupt(x[0])
    with pytest.raises(ValueError, match='mask_ratio'): corrupt(x, mask_ratio=1.5)
    with pytest.raises(ValueError, match='patch must be'): corrupt(x, patch=0)
    with pytest.raises(ValueError, match='patch must be'): corrupt(x, patch=17)
    with pytest.raises(ValueError, match='noise must be'): corrupt(x, noise=-0.1)
    with pytest.raises(ValueError, match='fill must be'): corrupt(x, fill='blur')


# ------------------------------------------------------------ heads
def test_reconstruction_head():
    h = ReconstructionHead(8, out_ch=3)
    assert h(torch.randn(2, 8, 5, 6)).shape == (2, 3, 5, 6)
    s = ReconstructionHead(8, activation='sigmoid')(torch.randn(2, 8, 5, 6) * 10)
    assert ((s > 0) & (s < 1)).all()
    assert sum(isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1) for m in h.modules()) == 1
    with pytest.raises(ValueError, match='activation'): ReconstructionHead(8, activation='tanh')
    with pytest.raises(ValueError, match='>= 1'): ReconstructionHead(0)
    with pytest.raises(ValueError, match='c_in equal to'): h(torch.randn(2, 4, 5, 6))


@pytest.mark.parametrize('in_ch', [1, 3])
def test_mixclnet_outputs_shapes_and_norms(in_ch):
    torch.manual_seed(0)
    net = MixCLNet(UNet(in_ch=in_ch, n_classes=4, base=8, depth=3), d_out=16, global_hidden=32)
    x = torch.randn(2, in_ch, 32, 32)
    o = net(x)
    assert sorted(o) == ['dense', 'global', 'recon']
    assert o['global'].shape == (2, 16) and o['dense'].shape == (2, 16, 32, 32) and o['recon'].shape == (2, in_ch, 32, 32)
    assert torch.allclose(o['global'].norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(o['dense'].norm(dim=1), torch.ones(2, 32, 32), atol=1e-4)
    assert net(x, outputs=('logits',))['logits'].shape == (2, 4, 32, 32)
    # heads: the documented layout
    lin = [m for m in net.global_head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(l.in_features, l.out_features) for l in lin] == [(64, 32), (32, 16)]
    assert net.dense_head.c_in == 8 and net.dense_head.c_hidden == 8 and not net.dense_head.batch_norm
    assert MixCLNet(UNet(in_ch=in_ch, base=8, depth=3), dense_hidden=4).dense_head.c_hidden == 4
    assert net.recon_head.out_ch == in_ch and net.recon_head.activation is None


def test_mixclnet_runs_the_decoder_only_when_needed_and_embed_global():
    net = MixCLNet(UNet(in_ch=1, n_classes=2, base=8, depth=3), d_out=16, global_hidden=32).eval()
    calls = []
    hk = net.unet.decoder.register_forward_hook(lambda *a: calls.append(1))
    x = torch.randn(2, 1, 32, 32)
    net.outputs = 'global'
    assert sorted(net(x)) == ['global'] and not calls
    assert torch.allclose(net.embed_global(x), net(x)['global'], atol=1e-6)
    assert sorted(net(x, outputs=('recon',))) == ['recon'] and len(calls) == 1
    assert net.outputs == ('global',)                          # a per-call choice does not change the default
    hk.remove()


def test_mixclnet_losses_reach_the_encoder_and_sigmoid_option():
    torch.manual_seed(0)
    net = MixCLNet(UNet(in_ch=1, n_classes=2, base=8, depth=3), d_out=16, global_hidden=32, recon_activation='sigmoid')
    x = torch.rand(4, 1, 32, 32)
    xc, m = corrupt(x, generator=_gen('net'))
    o1, o2 = net(x, ('global', 'dense')), net(x.flip(-1), ('global',))
    rec = net(xc, 'recon')['recon']
    assert ((rec > 0) & (rec < 1)).all()
    lab = torch.randint(0, 2, (4, 32, 32)); lab[2:] = IGNORE_INDEX
    loss = (nt_xent(o1['global'], o2['global']) + label_contrast_loss(o1['dense'], lab, max_per_class=16)
            + reconstruction_loss(rec, x, mask=m))
    loss.backward()
    for head in (net.global_head, net.dense_head, net.recon_head):
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert net.unet.encoder.levels[0][0].weight.grad.abs().sum() > 0


def test_mixclnet_bad_arguments():
    unet = UNet(in_ch=1, n_classes=2, base=8, depth=3)
    with pytest.raises(ValueError, match='needs an encoder-decoder'): MixCLNet(torch.nn.Conv2d(1, 1, 1))
    with pytest.raises(ValueError, match='choose one or more'): MixCLNet(unet, outputs=('global', 'pixels'))
    with pytest.raises(ValueError, match='choose one or more'): MixCLNet(unet, outputs=())
    with pytest.raises(ValueError, match='activation'): MixCLNet(unet, recon_activation='relu')
    net = MixCLNet(unet)
    with pytest.raises(ValueError, match='choose one or more'): net(torch.randn(1, 1, 32, 32), outputs='recons')
