"Contract tests for semicontrast.models (2D U-Net with exposed encoder/decoder features)."
import pytest, torch
from torch import nn
from semicontrast.core import DataError
from semicontrast.models import unet_widths, ConvBlock, Encoder, Decoder, UNet

torch.set_num_threads(1)

def n_params(m): return sum(p.numel() for p in m.parameters())


def test_unet_widths():
    assert unet_widths() == (16, 32, 64, 128, 256)
    assert unet_widths(48) == (48, 96, 192, 384, 768)
    assert unet_widths(8, 3) == (8, 16, 32, 64)
    with pytest.raises(ValueError): unet_widths(0)


def test_convblock_layout_and_params():
    b = ConvBlock(2, 5, dropout=0.3)
    kinds = [type(m) for m in b]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU, nn.Dropout, nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU]
    assert b[3].p == 0.3 and b[0].kernel_size == (3, 3)
    # hand count: conv 9*ci*co + co, BN 2*co, twice
    assert n_params(b) == (9*2*5 + 5 + 10) + (9*5*5 + 5 + 10)
    assert b(torch.randn(2, 2, 7, 9)).shape == (2, 5, 7, 9)


@pytest.mark.parametrize("base,depth", [(8, 3), (8, 4), (16, 3), (16, 4), (48, 3)])
def test_unet_shapes(base, depth):
    torch.manual_seed(0)
    H, W = 2**depth * 2, 2**depth * 3          # small, non-square
    m = UNet(in_ch=2, n_classes=3, base=base, depth=depth).eval()
    x = torch.randn(2, 2, H, W)
    out = m.features(x)
    assert len(out['enc']) == depth + 1 and len(out['dec']) == depth
    for i, f in enumerate(out['enc']):
        assert f.shape == (2, base * 2**i, H // 2**i, W // 2**i)
    for i, f in enumerate(out['dec']):          # coarse -> fine
        lvl = depth - 1 - i
        assert f.shape == (2, base * 2**lvl, H // 2**lvl, W // 2**lvl)
    assert out['logits'].shape == (2, 3, H, W)
    with torch.no_grad():
        assert torch.allclose(m(x), out['logits'], atol=1e-5)
        assert torch.allclose(m.decode(m.encode(x)), out['logits'], atol=1e-5)
        logits, dec = m.decode(m.encode(x), return_features=True)
    assert len(dec) == depth


def test_default_is_ssl4mis_and_widths_override():
    m = UNet()
    assert m.widths == (16, 32, 64, 128, 256) and m.depth == 4
    assert m.encoder.dropout == (0.05, 0.1, 0.2, 0.3, 0.5)
    assert all(d == 0.0 for d in m.decoder.dropout)
    m48 = UNet(base=48, n_classes=4)
    assert m48.widths == (48, 96, 192, 384, 768)
    mw = UNet(widths=(4, 8, 12), base=99, depth=7)
    assert mw.widths == (4, 8, 12) and mw.depth == 2
    assert mw(torch.randn(1, 1, 8, 12)).shape == (1, 2, 8, 12)
    # dropout as a single number
    assert UNet(widths=(4, 8), dropout=0.2).encoder.dropout == (0.2, 0.2)
    with pytest.raises(ValueError): Encoder(1, (4, 8, 16), dropout=(0.1, 0.2))


def test_encoder_strides_and_bottleneck():
    e = Encoder(1, (4, 8, 16, 32))
    assert e.strides == (1, 2, 4, 8) and e.depth == 3
    fs = e(torch.randn(1, 1, 24, 16))
    assert [f.shape[-1] for f in fs] == [16, 8, 4, 2]
    assert [f.shape[1] for f in fs] == [4, 8, 16, 32]


def test_bilinear_vs_transpose_differ():
    w = (8, 16, 32, 64)
    dt, db = Decoder(w, 3, 'transpose'), Decoder(w, 3, 'bilinear')
    assert n_params(dt) != n_params(db)
    # 2x2 transposed conv: 4*ci*co + co ; 1x1 conv: ci*co + co ; co = ci // 2
    assert n_params(dt) - n_params(db) == sum(3 * ci * (ci // 2) for ci in (16, 32, 64))
    assert any(isinstance(m, nn.ConvTranspose2d) for m in dt.modules())
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in db.modules())
    assert any(isinstance(m, nn.Upsample) for m in db.modules())
    feats = Encoder(1, w)(torch.randn(2, 1, 16, 16))
    assert dt(feats).shape == db(feats).shape == (2, 3, 16, 16)
    assert UNet(up='bilinear', base=8, depth=3)(torch.randn(1, 1, 16, 16)).shape == (1, 2, 16, 16)
    with pytest.raises(ValueError): Decoder(w, 3, 'nearest')


@pytest.mark.parametrize("hw", [(100, 64), (64, 100), (30, 30)])
def test_bad_size_names_it(hw):
    m = UNet(base=4, depth=4)
    with pytest.raises(DataError) as ei: m(torch.randn(1, 1, *hw))
    msg = str(ei.value)
    assert f"({hw[0]}, {hw[1]})" in msg and "16" in msg and ("pad" in msg or "resize" in msg)
    with pytest.raises(DataError): m.encode(torch.randn(1, 1, *hw))
    # depth 3 needs multiples of 8 only
    assert UNet(base=4, depth=3)(torch.randn(1, 1, 24, 40)).shape == (1, 2, 24, 40)


def test_bad_channels_and_ndim():
    m = UNet(in_ch=1, base=4, depth=2)
    with pytest.raises(DataError, match="in_ch"): m(torch.randn(1, 3, 8, 8))
    with pytest.raises(DataError): m(torch.randn(1, 8, 8))


def test_gradients_flow_everywhere():
    torch.manual_seed(0)
    m = UNet(in_ch=1, n_classes=3, base=4, depth=3).train()
    x = torch.randn(2, 1, 16, 16)
    y = torch.randint(0, 3, (2, 16, 16))
    nn.functional.cross_entropy(m(x), y).backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_shared_encoder_two_decoders_gradients():
    e = Encoder(1, (4, 8, 16))
    d1, d2 = Decoder(e.widths, 2, 'transpose'), Decoder(e.widths, 2, 'bilinear')
    f = e(torch.randn(2, 1, 8, 8))
    d1(f).sum().backward(retain_graph=True)
    g1 = [p.grad.clone() for p in e.parameters()]
    d2(f).sum().backward()
    assert any(not torch.equal(a, p.grad) for a, p in zip(g1, e.parameters()))


def test_kaiming_init():
    torch.manual_seed(0)
    m = UNet(base=32, depth=2)
    conv = m.encoder.levels[1][1][0]          # 3x3 conv 32 -> 64
    fan_in = conv.in_channels * 9
    expected_std = (2 / (1 + 0.01**2) / fan_in) ** 0.5
    assert abs(conv.weight.std().item() / expected_std - 1) < 0.05
    assert torch.all(conv.bias == 0)
    bn = m.encoder.levels[0][1]
    assert torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
