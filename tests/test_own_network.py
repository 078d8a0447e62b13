"""Bring your own network: MONAI's BasicUNet encoder (through `BasicUNetEncoder`) is pre-trained and fine-tuned by
IDEAL, and the same pre-trained encoder, in a `FeatureUNet`, is trained by Mean Teacher; every stage changes MONAI's own
weights, and the results are model files that rebuild the MONAI network."""
import copy
import pytest
import torch

from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, two_stream_dls, pretrain_dls
from semicontrast.models import BasicUNetEncoder, FeatureUNet, TwoStreamUNet
from semicontrast.learner import ideal_learner, meanteacher_learner
from semicontrast.inference import load_model

PREP = Preprocess(size=(32, 32))


def _changed(before, module):
    return any(not torch.equal(before[k], v) for k, v in module.state_dict().items() if v.is_floating_point())


def test_monai_encoder_through_ideal_and_mean_teacher(tmp_path):
    cases = synthetic_phantoms(n=6, shape=(6, 32, 32), seed=0)
    enc = BasicUNetEncoder(1, features=(8, 8, 16, 32, 64))
    w0 = copy.deepcopy(enc.state_dict())
    pre = ideal_learner(pretrain_dls(cases[:4], [], PREP, bs=8, seed=0), stage='pretrain', encoder=enc)
    pre.fit(1, 1e-3)
    assert pre.model.encoder is enc and _changed(w0, enc)             # MONAI's convolutions were pre-trained
    w1 = copy.deepcopy(enc.state_dict())
    ts = two_stream_dls(cases[:2], cases[2:4], cases[4:], PREP, 4, 4, augment=False, seed=0)
    ft = ideal_learner(ts, 3, encoder=pre, path=tmp_path)              # stage 2 on the pre-trained MONAI encoder
    assert isinstance(ft.model, TwoStreamUNet) and ft.model.encoder is enc
    ft.fit(1, 1e-3)
    assert _changed(w1, enc) and 0 <= ft.validate()[1] <= 1
    net, info = load_model(ft.export('ideal.pth', class_names=['bg', 'a', 'b']))
    assert isinstance(net.encoder, BasicUNetEncoder)
    x = ts.valid.dataset[0][0][None]
    with torch.no_grad(): torch.testing.assert_close(net(x), ft.model.eval()(x))

    student = FeatureUNet(copy.deepcopy(enc), n_classes=3)             # the same pre-trained encoder, another method
    w2 = copy.deepcopy(student.state_dict())
    mt = meanteacher_learner(ts, 3, model=student, path=tmp_path)
    mt.fit(1, 1e-3)
    assert _changed(w2, student) and 0 <= mt.validate()[1] <= 1
    net2, _ = load_model(mt.export('mt.pth', class_names=['bg', 'a', 'b']))
    with torch.no_grad(): torch.testing.assert_close(net2(x), mt.model.eval()(x))


@pytest.mark.parametrize('shared', [True, False])
def test_monai_encoder_through_mscs(tmp_path, shared):
    from semicontrast.learner import mscs_learner
    from semicontrast.mscs import MSCSNet
    cases = synthetic_phantoms(n=6, shape=(6, 32, 32), seed=0)
    ts = two_stream_dls(cases[:2], cases[2:4], cases[4:], PREP, 4, 4, augment=False, seed=0)
    enc = BasicUNetEncoder(1, features=(8, 8, 16, 32, 64))
    learn = mscs_learner(ts, 3, encoder=enc, shared_encoder=shared, path=tmp_path)
    assert learn.model.encoders[0] is enc and len(learn.model.encoders) == (1 if shared else 2)
    if not shared:   # stream b: the same MONAI architecture, its own weights
        a, b = (e.state_dict() for e in learn.model.encoders)
        assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a if a[k].is_floating_point())
    w0 = copy.deepcopy(enc.state_dict())
    learn.fit(1, 1e-3)
    assert _changed(w0, enc)
    net, _ = load_model(learn.export('mscs.pth', class_names=['bg', 'a', 'b']))
    assert isinstance(net, MSCSNet) and isinstance(net.encoders[0], BasicUNetEncoder)
    x = ts.valid.dataset[0][0][None]
    with torch.no_grad(): torch.testing.assert_close(net(x), learn.model.eval()(x))


@pytest.mark.parametrize('method', ['mixcl', 'lrc'])
def test_monai_encoder_through_mixcl_and_lrc(tmp_path, method):
    "MixCL and LRC pre-train a FeatureUNet around MONAI's encoder (`model=`) and fine-tune that same network."
    from semicontrast.learner import mixcl_learner, lrc_learner
    from semicontrast.loaders import PoolSource, pooled_dls, supervised_dls
    from semicontrast.superpixels import region_dls
    cases = synthetic_phantoms(n=6, shape=(6, 32, 32), seed=0)
    enc = BasicUNetEncoder(1, features=(8, 8, 16, 32, 64))
    net = FeatureUNet(enc, n_classes=3)
    w0 = copy.deepcopy(enc.state_dict())
    if method == 'mixcl':
        pre = mixcl_learner(pooled_dls([PoolSource('phantom', cases[:4], PREP, ['bg', 'a', 'b'])], bs=8, seed=0), 3, model=net)
    else:
        pre = lrc_learner(region_dls(cases[:4], cases[4:], PREP, bs=8, seed=0), 3, model=net)
    assert pre.model.unet is net
    pre.fit(1, 1e-3)
    assert _changed(w0, enc)                                           # MONAI's convolutions were pre-trained
    w1 = copy.deepcopy(net.state_dict())
    learner = mixcl_learner if method == 'mixcl' else lrc_learner
    ft = learner(supervised_dls(cases[:4], cases[4:], PREP, bs=4, augment=False), 3, stage='finetune', pretrained=pre, path=tmp_path)
    assert ft.model is net                                             # the pre-trained network itself is fine-tuned
    ft.fit(1, 1e-3)
    assert _changed(w1, net) and 0 <= ft.validate()[1] <= 1
    again, _ = load_model(ft.export(f'{method}.pth', class_names=['bg', 'a', 'b']))
    assert isinstance(again, FeatureUNet) and isinstance(again.encoder, BasicUNetEncoder)
    x = ft.dls.valid.dataset[0][0][None]
    with torch.no_grad(): torch.testing.assert_close(again(x), ft.model.eval()(x))
    with pytest.raises(ValueError, match='encoder-decoder'): learner(ft.dls, 3, model=torch.nn.Conv2d(1, 3, 1))
