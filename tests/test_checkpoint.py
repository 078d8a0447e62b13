"Checkpoint and resume through the CLI: a killed run resumed with --resume ends like an uninterrupted one; determinism; refusals."
import json
import pytest, torch
from semicontrast.models import MODEL_FORMAT
import semicontrast.checkpoint as ck
from semicontrast.cli import run_experiment, main

ARGS = dict(data='phantom', smoke=True, quiet=True, seed=0)


def _kill_after(monkeypatch, stage, epoch):
    "Make the run die (like Ctrl-C or SIGTERM) right after the checkpoint of `stage` at `epoch` is written."
    orig = ck.Checkpoint.after_epoch
    def after_epoch(self):
        orig(self)
        if self.file.stem == stage and self.learn.epoch == epoch: raise KeyboardInterrupt
    monkeypatch.setattr(ck.Checkpoint, 'after_epoch', after_epoch)


def _weights(path):
    d = torch.load(path, weights_only=True)
    assert d['format'] == MODEL_FORMAT, path   # model.pth and models/*_best.pth are model files (weights + description)
    return d['state_dict']


def _same(a, b):
    assert a['per_case'] == b['per_case'] and a['history'] == b['history']
    wa, wb = _weights(a['_dir']/'model.pth'), _weights(b['_dir']/'model.pth')
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    ba, bb = a['checkpoints']['best'], b['checkpoints']['best']   # the best validation epoch, even if it was before the kill
    assert ba == bb and ba is not None
    wa, wb = _weights(a['_dir']/ba['file']), _weights(b['_dir']/bb['file'])
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _run(out, **kw):
    r = run_experiment(out=out, **{**ARGS, **kw}); r['_dir'] = out; return r


@pytest.mark.parametrize('method,kw,stage,epoch', [
    ('supervised', dict(epochs=3), 'train', 1),
    ('ideal', dict(epochs=2, pretrain_epochs=2), 'finetune', 0),     # killed in fine-tuning: pre-training is not redone
    ('ideal', dict(epochs=2, pretrain_epochs=2), 'pretrain', 0),     # killed in pre-training (momentum key branch restored)
    ('moco', dict(epochs=1, pretrain_epochs=2), 'pretrain', 0),      # MoCo: key network and queue restored
    ('mixcl', dict(epochs=1, pretrain_epochs=2), 'pretrain', 0),     # MixCL: view and corruption generators, loss terms
    ('mscs', dict(epochs=2), 'train', 0),                            # MSCS: the consistency ramp continues from train_iter
    ('supervised', dict(epochs=2, precision='fp16'), 'train', 0),   # fp16: the GradScaler's loss scale restored
])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, monkeypatch, method, kw, stage, epoch):
    full = _run(tmp_path/'full', method=method, **kw)
    assert not (tmp_path/'full'/'checkpoints').exists()                     # a finished run keeps no checkpoints
    with monkeypatch.context() as m:
        _kill_after(m, stage, epoch)
        with pytest.raises(KeyboardInterrupt): _run(tmp_path/'cut', method=method, **kw)
    assert not (tmp_path/'cut'/'result.json').exists() and (tmp_path/'cut'/'checkpoints'/f'{stage}.pth').exists()
    res = _run(tmp_path/'cut', method=method, resume=True, **kw)
    _same(full, res)
    assert res['resumed']['checkpoints'] and res['config']['resume'] is True


def test_same_seed_same_numbers_other_seed_not(tmp_path):
    a, b = _run(tmp_path/'a', method='supervised', epochs=2), _run(tmp_path/'b', method='supervised', epochs=2)
    _same(a, b)
    c = _run(tmp_path/'c', method='supervised', epochs=2, seed=1)
    assert c['per_case'] != a['per_case']
    card = json.loads((tmp_path/'a'/'result.json').read_text())
    for k in ('arguments', 'config', 'split', 'preprocessing', 'versions', 'device', 'seed'): assert card.get(k) is not None, k
    again = _run(tmp_path/'d', **{k: v for k, v in card['arguments'].items() if k not in ARGS and k != 'out'})   # rerun from the card alone
    assert card['arguments']['seed'] == 0 and card['arguments']['epochs'] == 2
    _same(a, again)
    assert card['device']['torch_threads'] >= 1                             # results on the CPU depend on the thread count


def test_refusals_name_the_folder_and_the_fix(tmp_path, monkeypatch, capsys):
    out = tmp_path/'r'
    with monkeypatch.context() as m:
        _kill_after(m, 'train', 0)
        with pytest.raises(KeyboardInterrupt): _run(out, method='supervised', epochs=2)
    base = ['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--epochs', '2', '--out', str(out)]
    assert main(base) == 2 and '--resume' in capsys.readouterr().err               # would silently start over
    assert main(base + ['--resume', '--lr', '0.01']) == 2
    err = capsys.readouterr().err; assert 'other settings' in err and 'lr' in err and 'train.pth' in err
    (out/'checkpoints'/'train.pth').write_bytes((out/'checkpoints'/'train.pth').read_bytes()[:1000])
    assert main(base + ['--resume']) == 2
    err = capsys.readouterr().err; assert 'train.pth' in err and 'could not be read safely' in err
    assert main(base + ['--overwrite']) == 0 and (out/'result.json').exists()      # start over
    assert main(base + ['--resume']) == 2 and 'nothing to resume' in capsys.readouterr().err
    assert main(['run', 'supervised', '--data', 'phantom', '--smoke', '--out', str(tmp_path/'new'), '--resume']) == 2
    assert 'no checkpoint' in capsys.readouterr().err


def test_fp16_loss_scale_is_restored(tmp_path):
    "The GradScaler's state (scale and steps since it last grew) continues across a resume; dropping it from the checkpoint breaks that."
    from fastai.callback.core import Callback
    from semicontrast.core import set_seed
    from semicontrast.data import synthetic_phantoms
    from semicontrast.loaders import Preprocess, supervised_dls
    from semicontrast.learner import supervised_learner
    from semicontrast.callbacks import DeviceMixedPrecision

    class KeepScaler(Callback):
        order = 5   # before MixedPrecision (10) drops the scaler in after_fit
        def after_fit(self): self.state = self.learn.scaler.state_dict()

    class Kill(Callback):
        order = 90  # after the Checkpoint (80) has written epoch 0
        def after_epoch(self):
            if self.epoch == 0: raise KeyboardInterrupt

    def fit(*cbs):
        set_seed(0)
        cases = synthetic_phantoms(n=3, shape=(6, 32, 32), n_classes=3, seed=0)
        learn = supervised_learner(supervised_dls(cases[:2], cases[2:], Preprocess(size=(32, 32)), bs=4, device='cpu'), 3, base=8, depth=3)
        keep = KeepScaler()
        with learn.no_logging(), learn.no_bar(): learn.fit_one_cycle(2, 3e-3, cbs=[DeviceMixedPrecision('fp16'), keep, *cbs])
        return keep.state

    full = fit()
    with pytest.raises(KeyboardInterrupt): fit(ck.Checkpoint(tmp_path/'c.pth'), Kill())
    state = ck.load_checkpoint(tmp_path/'c.pth')
    assert state['scaler'] is not None and state['scaler']['_growth_tracker'] > 0
    assert fit(ck.ResumeFrom(state)) == full
    state['scaler'] = None                                         # the control: without it the tracker restarts at 0
    assert fit(ck.ResumeFrom(state))['_growth_tracker'] != full['_growth_tracker']
