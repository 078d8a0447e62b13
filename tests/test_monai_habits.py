"""MONAI's losses and metrics in this package's learners, through the one-line adapters `losses.MonaiLoss` and
`callbacks.MonaiMetric`: a supervised and a two-stream learner train with MONAI's DiceCELoss and report its DiceMetric."""
import math, warnings
import pytest
import torch
from monai.losses import DiceCELoss as MonaiDiceCE
from monai.metrics import DiceMetric
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, supervised_dls, two_stream_dls
from semicontrast.losses import MonaiLoss
from semicontrast.callbacks import MonaiMetric, ForegroundDice
from semicontrast.learner import supervised_learner, cps_learner

PREP = Preprocess(size=(32, 32), spatial='pad')


def _fit(learn):
    with warnings.catch_warnings(), learn.no_bar(), learn.no_logging():
        warnings.simplefilter('ignore')
        learn.fit(2, 1e-3)
    return learn.recorder.values[-1]


def test_supervised_with_monai_loss_and_metric():
    torch.manual_seed(0)
    c = synthetic_phantoms(n=5, shape=(4, 32, 32), n_classes=3, seed=0)
    dls = supervised_dls(c[:3], c[3:], PREP, bs=4)
    learn = supervised_learner(dls, 3, base=8, loss_func=MonaiLoss(MonaiDiceCE(to_onehot_y=True, softmax=True)),
                               metrics=[ForegroundDice(3), MonaiMetric(DiceMetric(include_background=False), 3)])
    train_loss, valid_loss, fg, monai_dice = _fit(learn)
    assert all(math.isfinite(v) for v in (train_loss, valid_loss, fg, monai_dice)) and 0 <= monai_dice <= 1
    assert learn.recorder.metric_names[-2] == 'DiceMetric'


def test_two_stream_learner_with_monai_loss():
    "CPS calls its loss on batches whose second half is unlabelled: MonaiLoss leaves those items out."
    torch.manual_seed(0)
    c = synthetic_phantoms(n=6, shape=(4, 32, 32), n_classes=3, seed=1)
    dls = two_stream_dls(c[:2], c[2:4], c[4:], PREP, bs_labelled=2, bs_unlabelled=2)
    learn = cps_learner(dls, 3, base=8, loss_func=MonaiLoss(MonaiDiceCE(to_onehot_y=True, softmax=True)))
    train_loss, valid_loss, fg = _fit(learn)
    assert math.isfinite(train_loss) and math.isfinite(valid_loss)


def test_a_monai_network_in_a_model_file_predicts(tmp_path):
    "MONAI's own UNet, trained by a learner here, is saved with its constructor arguments and used by `semicontrast predict` and `load_learner`."
    import nibabel as nib, numpy as np
    from monai.networks.nets import UNet as MonaiUNet
    from semicontrast.cli import main
    from semicontrast.inference import load_learner, load_model
    from semicontrast.models import save_model
    from semicontrast.core import DataError
    torch.manual_seed(0)
    c = synthetic_phantoms(n=5, shape=(4, 32, 32), n_classes=3, seed=0)
    kw = dict(spatial_dims=2, in_channels=1, out_channels=3, channels=(8, 16, 32), strides=(2, 2))
    net = MonaiUNet(**kw)
    learn = supervised_learner(supervised_dls(c[:3], c[3:], PREP, bs=4), 3, model=net)
    _fit(learn)
    with pytest.raises(DataError, match='constructor='): learn.export('plain.pth')   # no description, no file
    f = learn.export(tmp_path/'monai.pth', class_names=['background', 'a', 'b'], constructor=kw)
    back, info = load_model(f)
    assert type(back) is MonaiUNet and info['arch']['arch'] == 'monai.networks.nets.unet:UNet'
    x = torch.randn(2, 1, 32, 32)
    net.eval()
    with torch.no_grad(): assert torch.allclose(back(x), net(x), atol=1e-6)
    nib.save(nib.Nifti1Image(c[4].image.transpose(2, 1, 0).astype(np.float32), np.eye(4)), str(tmp_path/'scan.nii.gz'))
    assert main(['predict', '--model', str(f), '--input', str(tmp_path/'scan.nii.gz'), '--out', str(tmp_path/'p'), '--quiet']) == 0
    written = np.asarray(nib.load(str(tmp_path/'p'/'scan.nii.gz')).dataobj).transpose(2, 1, 0)
    assert np.array_equal(load_learner(f).predict(str(tmp_path/'scan.nii.gz')).numpy(), written)
