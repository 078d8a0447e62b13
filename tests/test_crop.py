"""`--crop H W`: training items are random H x W windows of the model-size slices (both streams of a two-stream batch,
image and label alike); validation and prediction stay on whole slices. Bad crops are refused with one line."""
import subprocess, sys
import pytest
import torch

from semicontrast.cli import run_experiment
from semicontrast.core import DataError
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess
from semicontrast.method import RunContext, two_stream_loaders
from semicontrast.supervised import _labelled_dls


def _ctx(crop, augment='flip_rot90'):
    cases = synthetic_phantoms(n=4, shape=(6, 32, 32), seed=0)
    parts = dict(labelled=cases[:2], unlabelled=cases[2:3], valid=cases[3:], test=[])
    return RunContext(parts, Preprocess(size=(32, 32)), None, dict(bs=4, seed=0, augment=augment, crop=crop, epochs=1))


@pytest.mark.parametrize('make', ['two_stream', 'supervised'])
def test_training_batches_are_crops_validation_is_whole(make):
    ctx = _ctx([16, 24])
    dls = two_stream_loaders(ctx)[0] if make == 'two_stream' else _labelled_dls(ctx)
    x, y = dls.train.one_batch()
    assert x.shape[-2:] == (16, 24) and y.shape[-2:] == (16, 24)
    assert dls.train_size == (16, 24)
    xv, yv = dls.valid.one_batch()
    assert xv.shape[-2:] == (32, 32) and yv.shape[-2:] == (32, 32)
    # each training item is a window of its slice, image and label cut at the same place (flips off to find it)
    ctx_plain = _ctx([16, 24], augment='none')
    d2 = _labelled_dls(ctx_plain).train.dataset
    x2, y2 = d2[0]
    found = [(i, j) for i in range(17) for j in range(9)
             if torch.equal(d2.x[0][:, i:i + 16, j:j + 24], x2) and torch.equal(d2.y[0].long()[i:i + 16, j:j + 24], y2)]
    assert found, 'a crop is not a window of its slice (or image and label were cut at different places)'


def test_crop_run_end_to_end(tmp_path):
    res = run_experiment('mscs', data='phantom', smoke=True, crop=(16, 16), quiet=True, out=tmp_path/'r')
    assert res['config']['crop'] == [16, 16]
    assert res['stages']['train']['patch_grid'] == [1, 1]   # the patch grid fits the bottleneck of a 16 x 16 crop
    assert res['mean']['dice'] == res['mean']['dice']       # evaluated (a number, not NaN) on whole volumes


def test_crop_larger_than_the_slices_is_refused(tmp_path):
    with pytest.raises(DataError, match='--crop 512 512: the slices are'):
        run_experiment('supervised', data='phantom', smoke=True, crop=(512, 512), quiet=True, out=tmp_path/'r')


def test_crop_not_a_multiple_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, '-m', 'semicontrast.cli', 'run', 'supervised', '--data', 'phantom', '--smoke',
                        '--crop', '20', '16', '--out', str(tmp_path/'r')], capture_output=True, text=True)
    assert r.returncode == 2 and 'Traceback' not in r.stderr and '--crop 20 16: give H W as positive multiples of' in r.stderr
