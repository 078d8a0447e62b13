"""fastai habits on the pre-training learners: `get_preds(with_loss=True)` answers with one loss per item (each the
loss of its batch, since a contrastive loss belongs to the batch's pairs), as it does on the segmenting learners."""
import warnings
import numpy as np
import pytest
import torch
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, pretrain_dls, pooled_dls, PoolSource
from semicontrast.superpixels import region_dls
from semicontrast.learner import ideal_learner, lrc_learner, mixcl_learner

PREP = Preprocess(size=(32, 32), spatial='pad', intensity='zscore')

def _cases(): return synthetic_phantoms(n=4, shape=(4, 32, 32), n_classes=3, seed=0)

def _ideal():
    c = _cases(); return ideal_learner(pretrain_dls(c[:3], c[3:], PREP, bs=4), 3, stage='pretrain', base=8)

def _lrc():
    c = _cases(); return lrc_learner(region_dls(c[:3], c[3:], PREP, bs=4), stage='pretrain', base=8)

def _mixcl():
    c = _cases()
    src = lambda cs: [PoolSource('ph', cs, PREP, ['background', 'a', 'b'])]
    return mixcl_learner(pooled_dls(src(c[:3]), src(c[3:]), bs=4), stage='pretrain', base=8)

@pytest.mark.parametrize('make', [_ideal, _lrc, _mixcl], ids=['ideal', 'lrc', 'mixcl'])
def test_pretraining_learners_answer_get_preds_with_loss(make):
    torch.manual_seed(0)
    learn = make()
    with warnings.catch_warnings(), learn.no_bar():
        warnings.simplefilter('ignore')
        out = learn.get_preds(with_loss=True)
    losses = out[-1]
    assert losses.shape == (4,) and torch.isfinite(losses).all() and float(losses.abs().sum()) > 0
    assert torch.allclose(losses, losses[0].expand(4))   # one batch of 4 slices: its loss, once per item


def test_load_learner_predicts_a_scan_as_the_command_line_does(tmp_path, capsys):
    "A run's model file back as a Learner: predict on a NIfTI path gives the label map `semicontrast predict` writes; validate and get_preds on given cases."
    import json, nibabel as nib
    from semicontrast.cli import main
    from semicontrast.inference import load_learner
    from semicontrast.method import SegLearner
    root = tmp_path/'data'; (root/'imagesTr').mkdir(parents=True); (root/'labelsTr').mkdir()
    entries, cases = [], synthetic_phantoms(n=6, shape=(5, 32, 28), n_classes=3, seed=5)
    aff = np.diag([0.9, 1.1, 2.0, 1.0])
    for i, c in enumerate(cases):
        name = f'case_{i:03d}.nii.gz'
        nib.save(nib.Nifti1Image(c.image.transpose(2, 1, 0).astype(np.float32), aff), str(root/'imagesTr'/name))
        nib.save(nib.Nifti1Image(c.label.transpose(2, 1, 0).astype(np.uint8), aff), str(root/'labelsTr'/name))
        entries.append({'image': f'./imagesTr/{name}', 'label': f'./labelsTr/{name}'})
    (root/'dataset.json').write_text(json.dumps({'name': 'ph', 'modality': {'0': 'MRI'}, 'labels': {'0': 'background', '1': 'a', '2': 'b'},
                                                 'training': entries}))
    assert main(['run', 'supervised', '--data', str(root), '--smoke', '--quiet', '--out', str(tmp_path/'run')]) == 0
    scan = root/'imagesTr'/'case_000.nii.gz'
    assert main(['predict', '--model', str(tmp_path/'run'), '--input', str(scan), '--out', str(tmp_path/'pred'), '--quiet']) == 0
    written = np.asarray(nib.load(str(tmp_path/'pred'/'case_000.nii.gz')).dataobj).transpose(2, 1, 0)
    learn = load_learner(tmp_path/'run', cases=cases[:2])
    assert isinstance(learn, SegLearner) and learn.class_names == ['background', 'a', 'b']
    assert np.array_equal(learn.predict(str(scan)).numpy(), written)
    with learn.no_bar():
        preds, targs = learn.get_preds()
        loss, dice = learn.validate()
    assert preds.shape[0] == targs.shape[0] == sum(c.n_slices for c in cases[:2]) and 0 <= dice <= 1


@pytest.mark.parametrize('make', [_ideal, _lrc, _mixcl], ids=['ideal', 'lrc', 'mixcl'])
def test_pretraining_learners_export_their_encoder(make, tmp_path):
    "export() of a pre-training learner writes its encoder as an encoder file that the fine-tuning stage can load."
    from semicontrast.models import load_encoder
    learn = make()
    learn.path = tmp_path
    f = learn.export()
    assert f.name == 'encoder.pth' and f.exists()
    enc = load_encoder(f)
    prep = learn.dls.prep   # MixCL pools datasets, each with its own preprocessing: none is written
    assert enc.meta.get("preprocess") == (prep.to_dict() if hasattr(prep, "to_dict") else None)
    m = learn.model
    src = getattr(m, 'encoder', None) or m.unet.encoder
    assert all(torch.equal(a, b) for a, b in zip(enc.state_dict().values(), src.state_dict().values()))


def test_fastai_tensorboard_callback_with_its_defaults(tmp_path):
    "fastai's TensorBoardCallback() as it comes (model graph, scalars, predictions drawn) on a supervised and a two-stream learner."
    from fastai.callback.tensorboard import TensorBoardCallback
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from semicontrast.loaders import supervised_dls, two_stream_dls
    from semicontrast.learner import supervised_learner, cps_learner
    c = _cases() + synthetic_phantoms(n=2, shape=(4, 32, 32), n_classes=3, seed=9)
    learners = dict(supervised=supervised_learner(supervised_dls(c[:3], c[3:], PREP, bs=4), 3, base=8),
                    cps=cps_learner(two_stream_dls(c[:2], c[2:4], c[4:], PREP, bs_labelled=2, bs_unlabelled=2), 3, base=8))
    for name, learn in learners.items():
        with warnings.catch_warnings(), learn.no_bar(), learn.no_logging():
            warnings.simplefilter('ignore')
            learn.fit(1, 1e-3, cbs=TensorBoardCallback(tmp_path/name))
        acc = EventAccumulator(str(tmp_path/name)); acc.Reload()
        tags = acc.Tags()
        assert 'train_loss' in tags['scalars'] and 'valid_loss' in tags['scalars'], (name, tags['scalars'])
        assert tags['images'], (name, 'the predictions figure')
