"""The reference's settings as named options (issue: faithful to SSL4MIS): each one against a slow, obvious reading of
what the reference's code does, and wired from the command line into the run."""
import contextlib, io, json, math
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import zoom
from semicontrast.cli import main
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, SliceDataset, supervised_dls
from semicontrast.losses import DiceCELoss, soft_dice_loss

def _ssl4mis_dice(probs, target, n_classes):
    "SSL4MIS's DiceLoss (utils/losses.py:156-195) read literally: per class over every pixel of the batch, squared sums, mean over classes."
    total = 0.0
    for c in range(n_classes):
        s = probs[:, c].reshape(-1).tolist(); g = (target.reshape(-1) == c).float().tolist()
        inter = sum(a * b for a, b in zip(s, g)); zz = sum(a * a for a in s); yy = sum(b * b for b in g)
        total += 1 - (2 * inter + 1e-5) / (zz + yy + 1e-5)
    return total / n_classes

def test_squared_dice_is_ssl4mis_dice_loss():
    g = torch.Generator().manual_seed(1)
    logits, target = torch.randn(3, 4, 6, 5, generator=g), torch.randint(0, 3, (3, 6, 5), generator=g)   # class 3 absent
    want = _ssl4mis_dice(logits.softmax(1), target, 4)
    assert float(soft_dice_loss(logits, target, form='squared')) == pytest.approx(want, abs=1e-5)
    ce = F.cross_entropy(logits, target).item()
    assert float(DiceCELoss(dice_form='squared')(logits, target)) == pytest.approx(0.5 * ce + 0.5 * want, abs=1e-5)   # 0.5 CE + 0.5 Dice
    assert float(DiceCELoss()(logits, target)) != pytest.approx(0.5 * ce + 0.5 * want, abs=1e-3)          # our form differs

def test_squared_dice_leaves_unlabelled_pixels_out():
    g = torch.Generator().manual_seed(2)
    logits, target = torch.randn(2, 3, 4, 4, generator=g), torch.randint(0, 3, (2, 4, 4), generator=g)
    masked = target.clone(); masked[1] = 255                           # the second item has no label
    want = _ssl4mis_dice(logits[:1].softmax(1), target[:1], 3)
    assert float(soft_dice_loss(logits, masked, form='squared')) == pytest.approx(want, abs=1e-5)
    with pytest.raises(ValueError, match="'present' or 'squared'"): soft_dice_loss(logits, target, form='cubed')

def test_nearest_zoom_is_scipy_order_0_both_ways():
    "val_2D.py:25 and :33: each slice zoomed to the patch with order 0, the argmax zoomed back with order 0."
    rng = np.random.default_rng(0)
    img = rng.normal(size=(3, 37, 45)).astype(np.float32); lbl = rng.integers(0, 4, (3, 37, 45)).astype(np.uint8)
    from semicontrast.data import Case
    p = Preprocess(size=(32, 32), spatial='resize', intensity='none', interp='nearest')
    ds = SliceDataset([Case('a', img, lbl)], p)
    for z in range(3):
        assert np.array_equal(ds.x[z, 0].numpy(), zoom(img[z], (32 / 37, 32 / 45), order=0))   # intensities as stored, order 0
        assert np.array_equal(ds.y[z].numpy(), zoom(lbl[z], (32 / 37, 32 / 45), order=0))
    logits = torch.randn(3, 4, 32, 32)
    back = p.logits_to_volume(logits, (3, 37, 45))
    assert np.array_equal(back, np.stack([zoom(logits[z].argmax(0).numpy(), (37 / 32, 45 / 32), order=0) for z in range(3)]))
    assert not np.array_equal(back, Preprocess(size=(32, 32), spatial='resize', intensity='none').logits_to_volume(logits, (3, 37, 45)))
    assert Preprocess.from_dict(p.to_dict()) == p and Preprocess.from_dict({'size': [32, 32], 'spatial': 'resize'}).interp == 'linear'

def test_keeping_the_last_batch():
    cases = synthetic_phantoms(3, seed=0)
    n = sum(c.n_slices for c in cases); bs = next(b for b in range(3, n) if n % b)   # a batch size that leaves a remainder
    p = Preprocess(size=(32, 32))
    assert len(supervised_dls(cases, [], p, bs=bs).train) == n // bs
    assert len(supervised_dls(cases, [], p, bs=bs, drop_last=False).train) == math.ceil(n / bs)

class Stop(Exception): "Raised by a patched `Learner.fit` once it has looked at the learner a run built."

def test_the_settings_reach_the_learner(tmp_path, monkeypatch):
    "--dice squared sets the loss's Dice form and --decay all decays BatchNorm and biases, at the moment the learner fits."
    import fastai.learner
    seen = {}
    def fit(self, *a, **k):
        seen.update(dice=self.loss_func.dice_form, decay_bn_bias=self.wd_bn_bias); raise Stop
    monkeypatch.setattr(fastai.learner.Learner, 'fit', fit)
    with pytest.raises(Stop):
        main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--out', str(tmp_path/'a'), '--dice', 'squared', '--decay', 'all'])
    assert seen == dict(dice='squared', decay_bn_bias=True)
    with pytest.raises(Stop): main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--out', str(tmp_path/'b')])
    assert seen == dict(dice='present', decay_bn_bias=False)

def test_a_run_records_the_reference_settings(tmp_path):
    out = tmp_path/'run'
    rc = main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--out', str(out), '--size', '32', '32', '--interp', 'nearest',
               '--intensity', 'none', '--dice', 'squared', '--decay', 'all', '--last-batch', 'keep', '--valid-dice', 'volume', '--test-on', 'best'])
    assert rc == 0
    card = json.loads((out/'result.json').read_text())
    assert {k: card['config'][k] for k in ('interp', 'intensity', 'dice', 'decay', 'last_batch')} == dict(
        interp='nearest', intensity='none', dice='squared', decay='all', last_batch='keep')
    assert card['preprocessing']['interp'] == 'nearest' and card['preprocessing']['intensity'] == 'none'
    hist = card['stages']['train']['history']
    assert all('vol_dice' in h and 'fg_dice' not in h for h in hist)   # the validation quantity is named as what it is

def test_window_with_another_intensity_is_one_line(tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(['run', 'supervised', '--data', 'phantom', '--smoke', '--out', str(tmp_path/'o'), '--intensity', 'zscore', '--window=-160,240'])
    assert rc == 2 and err.getvalue().count('\n') == 1 and '--window' in err.getvalue() and '--intensity' in err.getvalue()

def test_ssl4mis_protocol_labels_the_first_lines_of_train_slices_list(tmp_path):
    "--protocol ssl4mis-acdc labels the first patients in file order: their slices are the first lines of train_slices.list."
    from semicontrast.data.acdc import write_acdc_h5
    ph = synthetic_phantoms(9, seed=3)
    for c, n in zip(ph, [9, 4, 6, 1, 8, 2, 3, 5, 7]): c.id = c.patient = f'patient{n:03d}'   # not sorted
    root = write_acdc_h5(tmp_path/'acdc', train=ph[:6], val=ph[6:7], test=ph[7:])
    out = tmp_path/'run'
    assert main(['run', 'supervised', '--protocol', 'ssl4mis-acdc', '--smoke', '--quiet', '--data', str(root), '--out', str(out)]) == 0
    card = json.loads((out/'result.json').read_text())
    labelled = card['split']['labelled'] if 'labelled' in card['split'] else json.loads((out/'split.json').read_text())['labelled']
    assert labelled == ['patient004', 'patient009']                    # the smoke variant labels 2: patients 9 and 4, in that order in the list
    n = sum(c.n_slices for c in ph[:2])
    lines = (root/'train_slices.list').read_text().split()
    assert {l.rsplit('_slice_', 1)[0] for l in lines[:n]} == set(labelled) and lines[n].rsplit('_slice_', 1)[0] not in labelled

def test_ssl4mis_augmentation_is_drawn_as_the_reference_draws_it():
    "dataloaders/dataset.py:75-92, 147-166: p 0.5 rot90 + one flip (a reflection, never the identity), else an integer angle in [-20, 20), order 0."
    from scipy.ndimage import rotate
    from semicontrast.loaders import ssl4mis_augment
    torch.manual_seed(0)
    img = torch.arange(12 * 12, dtype=torch.float32).reshape(1, 12, 12)
    reflections = [torch.rot90(img, k, (-2, -1)).flip(a) for k in range(4) for a in (-2, -1)]
    rotations = {a: torch.from_numpy(rotate(img.numpy(), a, axes=(2, 1), order=0, reshape=False)) for a in range(-20, 20)}
    n_flip, angles = 0, []
    for _ in range(300):
        out, lab = ssl4mis_augment(img, img[0].long())
        assert torch.equal(out[0].long(), lab)
        if any(torch.equal(out, r) for r in reflections): n_flip += 1; continue
        hits = [a for a, r in rotations.items() if torch.equal(out, r)]
        assert hits, 'neither a rot90 + flip nor an integer rotation'
        angles.append(hits[0])
    assert 0.4 < n_flip / 300 < 0.6 and set(angles) <= set(range(-20, 20)) and len(set(angles)) > 15
    assert set(torch.unique(out).tolist()) <= set(img.unique().tolist())   # order 0: no new intensities

def test_ssl4mis_augmentation_turns_non_square_slices_as_the_reference():
    "SSL4MIS turns the slice at its own size and then zooms it to the patch, so a quarter turn of a non-square slice happens as"
    " often as on a square one; here the turn is made at the model size and zoomed back with order 0: nearly the same pixels."
    import numpy as np
    from scipy.ndimage import gaussian_filter
    from semicontrast.loaders import ssl4mis_augment, _zoom0
    torch.manual_seed(0)
    cols = torch.arange(48, dtype=torch.float32).expand(64, 48)[None].clone()   # varies along the columns only
    turned = 0
    for _ in range(400):
        out, _ = ssl4mis_augment(cols)
        assert out.shape == cols.shape
        if bool((out[0, :, 24] != out[0, 0, 24]).any()) and bool((out[0, 32] == out[0, 32, 0]).all()): turned += 1   # varies along rows now
    assert 0.18 < turned / 400 < 0.32                                   # p 0.5 for the turn-and-flip, k odd half of those
    rng = np.random.default_rng(0)
    for _ in range(10):                                                  # the reference's order against ours, on smooth label maps
        h0, w0 = int(rng.integers(30, 45)), int(rng.integers(40, 56))
        lab = torch.from_numpy((gaussian_filter(rng.standard_normal((h0, w0)), 4) > 0).astype(np.int64))
        for k in (1, 3):
            ref = _zoom0(torch.rot90(lab, k).flip(-1), (64, 48))                      # turn at its own size, then zoom
            ours = _zoom0(torch.rot90(_zoom0(lab, (64, 48)), k).flip(-1), (64, 48))   # zoom, turn, zoom back
            assert float((ref == ours).float().mean()) > 0.9

def test_ssl4mis_supervised_trains_on_24_labelled_slices():
    "train_fully_supervised_2D.py:40: batch 24; the semi-supervised scripts: 12 labelled + 12 unlabelled."
    from semicontrast.protocols import get_protocol, apply_protocol
    p = get_protocol('ssl4mis-acdc')
    assert apply_protocol(p, 'supervised', {'data': 'x'})[0]['bs'] == 24
    assert apply_protocol(p, 'cps', {'data': 'x'})[0]['bs'] == 12
    values, record = apply_protocol(p, 'supervised', {'data': 'x', 'bs': 6})
    assert 'bs' not in values and 'bs' in record['overridden']          # what the user says still wins

def test_volume_validation_dice_is_val_2d():
    "--valid-dice volume: each slice's argmax zoomed back with order 0, Dice per class per volume, 0 for an empty prediction (val_2D.py)."
    from types import SimpleNamespace
    from fastai.data.load import DataLoader
    from semicontrast.callbacks import ForegroundDice
    cases = synthetic_phantoms(2, seed=5)
    p = Preprocess(size=(32, 32), spatial='resize', intensity='none', interp='nearest')
    ds = SliceDataset(cases, p); dl = DataLoader(ds, bs=5, shuffle=False)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(len(ds), 3, 32, 32, generator=g); logits[ds.index.index((cases[1].id, 0)):, 2] -= 100   # case 2 never predicts class 2
    m = ForegroundDice(3, geometry='volume', empty='zero'); m.reset()
    for s in range(0, len(ds), 5):
        m.accumulate(SimpleNamespace(pred=logits[s:s + 5], yb=(ds.y[s:s + 5].long(),), dl=dl, dls=SimpleNamespace(prep=p)))
    want, start = [], 0
    for c in cases:
        Z, H, W = c.spatial_shape
        pred = np.stack([zoom(logits[start + z].argmax(0).numpy(), (H / 32, W / 32), order=0) for z in range(Z)]); start += Z
        per = []
        for k in (1, 2):
            a, b = pred == k, c.label == k
            per.append(0.0 if a.sum() == 0 else 2 * (a & b).sum() / (a.sum() + b.sum()))   # medpy's dc, guarded as val_2D.py guards it
        want.append(per)
    assert want[1][1] == 0.0
    got = m.per_volume_dice
    for c, w in zip(cases, want): assert got[c.id] == pytest.approx(w)
    assert m.value == pytest.approx(np.mean(want))

def test_cps_is_ssl4mis_cps(tmp_path):
    "`run cps`: two independent U-Nets (a model file of CPSNet), cross-supervision on the unlabelled half, the reference's ramp, model1 tested."
    from semicontrast.cps import CPSNet, cps_learner
    from semicontrast.loaders import two_stream_dls
    from semicontrast.inference import load_model
    out = tmp_path/'cps'
    assert main(['run', 'cps', '--data', 'phantom', '--smoke', '--quiet', '--out', str(out)]) == 0
    card = json.loads((out/'result.json').read_text())
    assert card['config']['ramp'] == 'ssl4mis' and card['config']['test_with'] == 'a' and 'cps' in card['stages']['train']['terms'][0]
    net, info = load_model(out)
    assert isinstance(net, CPSNet) and net.test_with == 'a' and info['method'] == 'cps'
    cases = synthetic_phantoms(4, seed=0)
    learn = cps_learner(two_stream_dls(cases[:2], cases[2:], [], Preprocess(size=(32, 32)), bs_labelled=2, bs_unlabelled=2), 3, base=4, depth=2)
    cb = learn.two_stream_consistency
    assert (cb.on_labelled, cb.split_bn, cb.weak, cb.strong, cb.ramp, cb.ramp_step) == (False, True, None, None, 200, 150)
    assert cb.weight(150 * 200) == pytest.approx(0.1) and cb.weight(2000) == pytest.approx(0.1 * math.exp(-5 * (1 - 13 / 200) ** 2))

def test_medpy_definitions_against_brute_force():
    "HD95 pooled over both directions, ASD directed (prediction -> label), surfaces by face neighbours; an empty mask 0, 0, 0."
    from semicontrast.metrics import medpy_metrics, volume_metrics
    rng = np.random.default_rng(7)
    a = rng.random((5, 8, 7)) > 0.6; b = np.roll(a, 1, axis=1) | (rng.random(a.shape) > 0.9)
    sp = np.array([2.0, 1.0, 0.7])
    def surf(m):
        pts = [i for i in zip(*np.nonzero(m)) if any(not (0 <= i[ax] + s < m.shape[ax]) or not m[tuple(i[k] + (s if k == ax else 0) for k in range(3))]
                                                  for ax in range(3) for s in (-1, 1))]
        return np.array(pts, float) * sp
    def d(x, y): X, Y = surf(x), surf(y); return np.sqrt(((X[:, None] - Y[None]) ** 2).sum(-1)).min(1)
    m = medpy_metrics(a, b, sp)
    assert m['hd95'] == pytest.approx(np.percentile(np.hstack([d(a, b), d(b, a)]), 95))
    assert m['asd'] == pytest.approx(d(a, b).mean()) and m['dice'] == pytest.approx(2 * (a & b).sum() / (a.sum() + b.sum()))
    assert medpy_metrics(a, np.zeros_like(a), sp) == dict(dice=0.0, hd95=0.0, asd=0.0)
    two = volume_metrics(np.zeros((3, 4, 4), np.uint8), np.ones((3, 4, 4), np.uint8), (1, 1, 1), 2, definition='medpy')
    assert two[1] == dict(dice=0.0, hd95=0.0, asd=0.0)                  # the reference's rule for an empty prediction

def test_the_card_names_the_metric_definition(tmp_path):
    out = tmp_path/'m'
    assert main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--out', str(out), '--metrics', 'medpy']) == 0
    assert json.loads((out/'result.json').read_text())['config']['metrics'] == 'medpy'

def test_resident_memory_stops_growing(tmp_path, monkeypatch):
    "Many iterations: the resident memory at each validation after the first few stays within a few MB (no per-iteration leak)."
    import psutil
    import fastai.learner
    marks, orig = [], fastai.learner.Learner._do_epoch_validate
    def spy(self, *a, **k):
        marks.append(psutil.Process().memory_info().rss); return orig(self, *a, **k)
    monkeypatch.setattr(fastai.learner.Learner, '_do_epoch_validate', spy)
    assert main(['run', 'cps', '--data', 'phantom', '--quiet', '--out', str(tmp_path/'o'), '--iters', '160', '--valid-every', '16',
                 '--bs', '4', '--size', '32', '32', '--base', '8', '--labeled', '3', '--valid', '1', '--test', '1']) == 0
    assert len(marks) == 10
    growth = (max(marks[3:]) - marks[3]) / 2**20
    assert growth < 40, f'resident memory grew {growth:.0f} MB over 96 iterations: {[round(m / 2**20) for m in marks]}'

def _up_kind(net):
    "How a UNet's decoder upsamples, read from its modules: 'transpose', 'bilinear' or 'bilinear_corners'."
    up = net.decoder.blocks[0].up
    if isinstance(up, torch.nn.ConvTranspose2d): return 'transpose'
    return 'bilinear_corners' if up[1].align_corners else 'bilinear'

def _bilinear_corners_slow(x, scale=2):
    "Bilinear upsampling with the corner pixels aligned, read literally: output pixel i samples input position i (n_in - 1) / (n_out - 1)."
    n_in_h, n_in_w = x.shape[-2:]; n_h, n_w = n_in_h * scale, n_in_w * scale
    out = torch.zeros(x.shape[:-2] + (n_h, n_w))
    for i in range(n_h):
        for j in range(n_w):
            u = i * (n_in_h - 1) / (n_h - 1); v = j * (n_in_w - 1) / (n_w - 1)
            i0, j0 = int(math.floor(u)), int(math.floor(v)); i1, j1 = min(i0 + 1, n_in_h - 1), min(j0 + 1, n_in_w - 1)
            a, b = u - i0, v - j0
            out[..., i, j] = ((1 - a) * (1 - b) * x[..., i0, j0] + (1 - a) * b * x[..., i0, j1]
                              + a * (1 - b) * x[..., i1, j0] + a * b * x[..., i1, j1])
    return out

def test_bilinear_corners_upsampling_is_ssl4mis_upblock():
    "up='bilinear_corners': a 1x1 convolution then bilinear upsampling with corners aligned (SSL4MIS networks/unet.py:65-86); 'bilinear' differs."
    from semicontrast.models import UpBlock, UNet
    torch.manual_seed(0)
    blk = UpBlock(4, 3, 3, up='bilinear_corners')
    x = torch.randn(2, 4, 5, 3)
    with torch.no_grad():
        y = blk.up(x)
        z = blk.up[0](x)   # the 1x1 convolution alone
    assert torch.allclose(y, _bilinear_corners_slow(z), atol=1e-5)
    plain = UpBlock(4, 3, 3, up='bilinear'); plain.load_state_dict(blk.state_dict())
    with torch.no_grad(): assert not torch.allclose(plain.up(x), y, atol=1e-3)   # align_corners=False samples elsewhere
    ref_params = 1813619   # SSL4MIS's UNet(in_chns=1, class_num=3) has this many parameters (networks/unet.py:304-320)
    assert sum(p.numel() for p in UNet(1, 3, base=16, depth=4, head=3, up='bilinear_corners').parameters()) == ref_params
    with pytest.raises(ValueError, match='bilinear_corners'): UpBlock(4, 3, 3, up='nearest')

@pytest.fixture
def acdc_root(tmp_path):
    "Eight phantom patients written in SSL4MIS's ACDC h5 layout (5 training, 1 validation, 2 test)."
    from semicontrast.data.acdc import write_acdc_h5
    ph = synthetic_phantoms(8, seed=4)
    for i, c in enumerate(ph): c.id = c.patient = f'patient{i + 1:03d}'
    return write_acdc_h5(tmp_path/'acdc', train=ph[:5], val=ph[5:6], test=ph[6:])

def test_the_preset_builds_the_reference_unet(tmp_path, monkeypatch, acdc_root):
    "ssl4mis-acdc builds supervised, cps and meanteacher's U-Nets as SSL4MIS does: a 3x3 classifier, 1x1 conv + corner-aligned bilinear up steps, PyTorch's default init (networks/unet.py)."
    import fastai.learner
    from semicontrast.models import UNet
    root, seen = acdc_root, []
    def fit(self, *a, **k):
        nets = [m for m in self.model.modules() if isinstance(m, UNet)]
        conv = [n.encoder.levels[1][1][0].weight for n in nets]   # a 3x3 convolution of each U-Net
        seen.append(dict(n=len(nets), heads={n.decoder.head.kernel_size for n in nets}, ups={_up_kind(n) for n in nets},
                         bounded=all(float(w.abs().max()) <= 1 / math.sqrt(w[0].numel()) for w in conv))); raise Stop
    monkeypatch.setattr(fastai.learner.Learner, 'fit', fit)
    for method, n in (('supervised', 1), ('cps', 2), ('meanteacher', 1)):
        with pytest.raises(Stop):
            main(['run', method, '--protocol', 'ssl4mis-acdc', '--smoke', '--quiet', '--data', str(root), '--out', str(tmp_path/method)])
        assert seen[-1] == dict(n=n, heads={(3, 3)}, ups={'bilinear_corners'}, bounded=True), method   # uniform within 1/sqrt(fan_in): PyTorch's default
    with pytest.raises(Stop):   # what the user says wins over the preset
        main(['run', 'cps', '--protocol', 'ssl4mis-acdc', '--smoke', '--quiet', '--data', str(root), '--out', str(tmp_path/'o'), '--head', '1', '--init', 'kaiming', '--up', 'transpose'])
    assert seen[-1] == dict(n=2, heads={(1, 1)}, ups={'transpose'}, bounded=False)
    with pytest.raises(Stop):   # without the preset: this package's defaults
        main(['run', 'supervised', '--smoke', '--quiet', '--data', str(root), '--out', str(tmp_path/'d')])
    assert seen[-1] == dict(n=1, heads={(1, 1)}, ups={'transpose'}, bounded=False)

def test_batchnorm_one_pass_under_the_preset_groups_apart_by_default(tmp_path, monkeypatch, acdc_root):
    "cps and meanteacher normalise the labelled and unlabelled items apart by default; ssl4mis-acdc makes SSL4MIS's one pass (train_cross_pseudo_supervision_2D.py:174), and the flag wins over both."
    import fastai.learner
    root, seen = acdc_root, []
    def fit(self, *a, **k):
        cb = getattr(self, 'two_stream_consistency', None) or self.mean_teacher
        seen.append(cb.split_bn); raise Stop
    monkeypatch.setattr(fastai.learner.Learner, 'fit', fit)
    def run(method, *extra):
        with pytest.raises(Stop):
            main(['run', method, '--smoke', '--quiet', '--data', str(root), '--out', str(tmp_path/f'{method}{len(seen)}'), *extra])
        return seen[-1]
    for method in ('cps', 'meanteacher'):
        assert run(method) is True, method
        assert run(method, '--protocol', 'ssl4mis-acdc') is False, method
        assert run(method, '--no-split-bn') is False, method
        assert run(method, '--protocol', 'ssl4mis-acdc', '--split-bn') is True, method

def test_every_run_hands_freed_memory_back(tmp_path, monkeypatch):
    "RunContext.fit adds ReleaseMemory: without it glibc keeps freed activations and the resident memory creeps up (callbacks notebook)."
    import fastai.learner
    from semicontrast.callbacks import ReleaseMemory
    seen = []
    def fit(self, n_epoch, lr=None, wd=None, cbs=None, **k):
        seen.append([type(c).__name__ for c in (cbs or [])]); raise Stop
    monkeypatch.setattr(fastai.learner.Learner, 'fit', fit)
    for method in ('supervised', 'cps'):
        with pytest.raises(Stop):
            main(['run', method, '--data', 'phantom', '--smoke', '--quiet', '--out', str(tmp_path/method), '--schedule', 'poly'])
        assert 'ReleaseMemory' in seen[-1], seen[-1]
