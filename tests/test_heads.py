"Contract tests for semicontrast.heads (dense 1x1-conv head, global MLP head, encoder + head wrapper)."
import copy, pytest, torch
from torch import nn
from semicontrast.core import DataError
from semicontrast.models import UNet, Encoder
from semicontrast.heads import DenseProjectionHead, GlobalProjectionHead, EncoderWithHead, dense_head_for

torch.set_num_threads(1)

def n_params(m): return sum(p.numel() for p in m.parameters())
def convs(m): return [l for l in m.modules() if isinstance(l, nn.Conv2d)]


@pytest.mark.parametrize("n_layers", [1, 2])
@pytest.mark.parametrize("pool_to", [None, 8])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_dense_shapes_and_unit_norm(n_layers, pool_to, batch_norm):
    if n_layers == 1 and batch_norm:
        with pytest.raises(ValueError, match='n_layers=2'): DenseProjectionHead(16, n_layers=1, batch_norm=True)
        return
    torch.manual_seed(0)
    h = DenseProjectionHead(16, d_out=32, n_layers=n_layers, pool_to=pool_to, batch_norm=batch_norm)
    x = torch.randn(3, 16, 12, 10)
    z = h(x)
    S = (12, 10) if pool_to is None else (8, 8)
    assert z.shape == (3, 32, *S)
    assert torch.allclose(z.norm(dim=1), torch.ones(3, *S), atol=1e-5)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in h.modules()) == int(batch_norm)
    assert sum(isinstance(m, nn.AdaptiveAvgPool2d) for m in h.modules()) == int(pool_to is not None)


def test_default_d_out_and_pool_before_convs():
    h = DenseProjectionHead(8, pool_to=4)
    assert h(torch.randn(1, 8, 16, 16)).shape == (1, 128, 4, 4)
    mods = [m for m in h.modules() if isinstance(m, (nn.AdaptiveAvgPool2d, nn.Conv2d))]
    assert isinstance(mods[0], nn.AdaptiveAvgPool2d)        # pooling comes before every conv
    assert DenseProjectionHead(8, pool_to=(3, 5))(torch.randn(1, 8, 9, 9)).shape == (1, 128, 3, 5)


def test_single_layer_is_one_1x1_conv():
    h = DenseProjectionHead(24, d_out=16, n_layers=1)
    cs = convs(h)
    assert len(cs) == 1 and cs[0].kernel_size == (1, 1)
    assert (cs[0].in_channels, cs[0].out_channels) == (24, 16)
    assert not any(isinstance(m, (nn.ReLU, nn.BatchNorm2d)) for m in h.modules())
    assert all(c.kernel_size == (1, 1) for c in convs(DenseProjectionHead(24, batch_norm=True)))


def test_param_counts_by_hand():
    ci, ch, d = 20, 12, 7
    assert n_params(DenseProjectionHead(ci, d_out=d, n_layers=1)) == ci*d + d
    assert n_params(DenseProjectionHead(ci, c_hidden=ch, d_out=d)) == (ci*ch + ch) + (ch*d + d)
    assert n_params(DenseProjectionHead(ci, d_out=d)) == (ci*ci + ci) + (ci*d + d)       # c_hidden defaults to c_in
    # BatchNorm: the first conv drops its bias, BN adds weight + bias
    assert n_params(DenseProjectionHead(ci, c_hidden=ch, d_out=d, batch_norm=True)) == ci*ch + 2*ch + (ch*d + d)
    assert n_params(DenseProjectionHead(ci, d_out=d, pool_to=4)) == n_params(DenseProjectionHead(ci, d_out=d))
    assert n_params(GlobalProjectionHead(ci, c_hidden=ch, d_out=d)) == (ci*ch + ch) + (ch*d + d)
    assert n_params(GlobalProjectionHead(256)) == (256*512 + 512) + (512*128 + 128)


@pytest.mark.parametrize("n_layers,batch_norm", [(1, False), (2, False), (2, True)])
def test_dense_head_is_permutation_equivariant(n_layers, batch_norm):
    torch.manual_seed(1)
    h = DenseProjectionHead(6, d_out=5, n_layers=n_layers, batch_norm=batch_norm)
    x = torch.randn(2, 6, 5, 7)
    perm = torch.randperm(35)
    def permute(t): return t.flatten(2)[:, :, perm].reshape(t.shape)
    for mode in (h.train, h.eval):    # BN batch statistics are invariant to permuting locations
        mode()
        assert torch.allclose(h(permute(x)), permute(h(x)), atol=1e-5)


@pytest.mark.parametrize("n_layers,batch_norm", [(1, False), (2, False), (2, True)])
def test_dense_head_is_local(n_layers, batch_norm):
    torch.manual_seed(2)
    h = DenseProjectionHead(6, d_out=5, n_layers=n_layers, batch_norm=batch_norm).eval()
    x = torch.randn(2, 6, 5, 7)
    x2 = x.clone(); x2[1, :, 4, 2] = torch.randn(6) * 3
    diff = (h(x2) - h(x)).abs().amax(dim=1)
    assert diff[1, 4, 2] > 1e-4
    diff[1, 4, 2] = 0
    assert diff.max() == 0


def test_zero_input_gives_finite_output():
    h = DenseProjectionHead(4, n_layers=1)
    nn.init.zeros_(h.proj[0].weight); nn.init.zeros_(h.proj[0].bias)
    z = h(torch.zeros(1, 4, 3, 3))
    assert torch.isfinite(z).all() and (z == 0).all()


def test_global_head_shapes_norm_and_pooled_input():
    torch.manual_seed(3)
    g = GlobalProjectionHead(16, c_hidden=32, d_out=24)
    x = torch.randn(4, 16, 6, 6)
    z = g(x)
    assert z.shape == (4, 24)
    assert torch.allclose(z.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(g(x.mean((2, 3))), z, atol=1e-6)
    kinds = [type(m) for m in g.mlp]
    assert kinds == [nn.Linear, nn.ReLU, nn.Linear]
    assert GlobalProjectionHead(16)(x).shape == (4, 128)


def test_bad_arguments_and_inputs():
    with pytest.raises(ValueError): DenseProjectionHead(8, n_layers=3)
    with pytest.raises(ValueError): DenseProjectionHead(0)
    with pytest.raises(ValueError): DenseProjectionHead(8, pool_to=0)
    with pytest.raises(DataError, match='c_in'): DenseProjectionHead(8)(torch.randn(1, 4, 3, 3))
    with pytest.raises(DataError): DenseProjectionHead(8)(torch.randn(8, 3, 3))
    with pytest.raises(DataError): GlobalProjectionHead(8)(torch.randn(2, 4, 3, 3))


def test_encoder_with_head_on_unet_depth4():
    torch.manual_seed(4)
    unet = UNet(in_ch=1, n_classes=2, base=8, depth=4)
    head = dense_head_for(unet)
    assert head.c_in == unet.encoder.widths[-1] == 128 and head.c_hidden == 128 and head.d_out == 128
    q = EncoderWithHead(unet.encoder, head)
    x = torch.randn(2, 1, 64, 48)
    z = q(x)
    assert z.shape == (2, 128, 64 // 16, 48 // 16)
    assert torch.allclose(z.norm(dim=1), torch.ones(2, 4, 3), atol=1e-5)
    z.pow(2).mul(torch.randn_like(z)).sum().backward()
    enc_grads = [p.grad for p in unet.encoder.parameters()]
    assert all(g is not None for g in enc_grads) and sum(g.abs().sum() for g in enc_grads) > 0
    assert all(p.grad is None for p in unet.decoder.parameters())


def test_encoder_with_head_options():
    unet = UNet(in_ch=1, n_classes=2, base=4, depth=3)
    x = torch.randn(2, 1, 32, 32)
    q = EncoderWithHead(unet, dense_head_for(unet, d_out=16, n_layers=1, pool_to=2, batch_norm=False))
    assert q.encoder is unet.encoder            # a UNet's encoder is shared, not copied
    z, feats = q(x, return_features=True)
    assert z.shape == (2, 16, 2, 2) and len(feats) == 4 and feats[-1].shape == (2, 32, 4, 4)
    q2 = EncoderWithHead(unet.encoder, dense_head_for(unet, level=1, batch_norm=True), level=1)
    assert q2(x).shape == (2, 128, 16, 16)
    g = EncoderWithHead(Encoder(1, (4, 8, 16)), GlobalProjectionHead(16, d_out=8))
    assert g(torch.randn(3, 1, 8, 8)).shape == (3, 8)
    q.eval(); k = copy.deepcopy(q)               # a key branch for MoCo / IDEAL (eval: no dropout, fixed BN stats)
    assert k.encoder is not q.encoder and torch.allclose(k(x), q(x), atol=1e-6)
    with pytest.raises(ValueError, match='c_in=32'): EncoderWithHead(unet, DenseProjectionHead(8))
    with pytest.raises(ValueError, match='out of range'): EncoderWithHead(unet, dense_head_for(unet), level=4)
    with pytest.raises(ValueError): dense_head_for(nn.Linear(2, 2))
