"""Iteration budgets: `--iters` / `--pretrain-iters` give every method's stages exactly that many optimiser steps,
validated every `--valid-every` steps; `--schedule poly` follows SSL4MIS's curve step by step; `--opt sgd` is SGD
with momentum 0.9. Bad combinations are refused before any data is read."""
import math
import numpy as np
import pytest
import torch
from semicontrast.inference import load_model

from semicontrast.cli import run_experiment, main
from semicontrast.method import METHODS, RunContext, valid_cadence
from semicontrast.callbacks import poly_decay
from semicontrast.data import synthetic_phantoms
from semicontrast.loaders import Preprocess, supervised_dls, iteration_dl
from semicontrast.supervised import supervised_learner

ITERS, EVERY, PRE = 4, 2, 3


@pytest.mark.parametrize('method', sorted(METHODS))
def test_every_stage_takes_exactly_the_steps_asked_for(tmp_path, method):
    m = METHODS[method]
    kw = dict(pretrain_iters=PRE) if m.pretrains else {}
    res = run_experiment(method, data='phantom', smoke=True, iters=ITERS, valid_every=EVERY, quiet=True,
                         out=tmp_path/method, **kw)
    last = res['stages'][m.stages[-1].name]
    assert (last['steps'], last['epochs'], last['valid_every']) == (ITERS, ITERS // EVERY, EVERY)
    assert len(last['history']) == ITERS // EVERY                  # one validation every EVERY steps
    assert all(r['valid_loss'] is not None for r in last['history'])
    if m.pretrains:
        pre = res['stages']['pretrain']
        assert pre['steps'] == PRE and len(pre['history']) == pre['epochs'] == valid_cadence(PRE)[0]
    assert res['config']['iters'] == ITERS and res['config']['valid_every'] == EVERY



def _fit(tmp_path, **cfg):
    cases = synthetic_phantoms(n=3, shape=(6, 32, 32), seed=0)
    dls = supervised_dls(cases[:2], cases[2:], Preprocess(size=(32, 32)), bs=4, seed=0)   # 3 batches per pass
    learn = supervised_learner(dls, 3, base=4, depth=3)
    ctx = RunContext({}, None, None, dict(dict(out=str(tmp_path), quiet=True, seed=0), **cfg), out=tmp_path)
    ctx.fit(learn, 'train', 99, 0.01)                                # the epochs are ignored under an iteration budget
    return learn


def test_poly_schedule_and_sgd_follow_ssl4mis(tmp_path):
    learn = _fit(tmp_path, iters=7, valid_every=None, schedule='poly', opt='sgd')
    lrs = [float(v) for v in learn.recorder.lrs]
    assert len(lrs) == 7 and learn.n_epoch == 7                  # 7 is prime: 7 blocks of 1 step
    assert lrs == pytest.approx([0.01 * (1 - t / 7) ** 0.9 for t in range(7)], rel=1e-6)
    pg = learn.opt.hypers[0]
    assert pg['mom'] == 0.9 and 'sqr_mom' not in pg             # SGD with momentum (Adam would carry sqr_mom)
    assert poly_decay(1.0)(0.5) == pytest.approx(0.5 ** 0.9)


def test_iteration_blocks_are_longer_than_a_pass(tmp_path):
    "A block of 5 steps when a pass has 3 batches: the budget counts steps, not passes."
    learn = _fit(tmp_path, iters=10, valid_every=5)
    assert learn.n_epoch == 2 and len(learn.dls.train) == 5 and len(learn.recorder.lrs) == 10


@pytest.mark.parametrize('argv, says', [
    (['--iters', '100', '--valid-every', '30'], '--valid-every 30 does not divide --iters 100'),
    (['--valid-every', '10'], 'give it with --iters'),
    (['--iters', '10', '--epochs', '3'], '--epochs and --iters both size the same stage'),
    (['--iters', '0'], '--iters 0: give a whole number of 1 or more'),
])
def test_bad_budgets_are_refused_in_one_line(tmp_path, capsys, argv, says):
    rc = main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--out', str(tmp_path/'r')] + argv)
    err = capsys.readouterr().err
    assert rc == 2 and says in err and len(err.strip().splitlines()) == 1 and not (tmp_path/'r').exists()

def test_pretrain_iters_is_for_pretraining_methods(tmp_path, capsys):
    rc = main(['run', 'ideal', '--data', 'phantom', '--smoke', '--quiet', '--pretrain-iters', '2', '--pretrain-epochs', '2',
               '--out', str(tmp_path/'r')])
    assert rc == 2 and '--pretrain-epochs and --pretrain-iters' in capsys.readouterr().err
    rc = main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--pretrain-iters', '2', '--out', str(tmp_path/'s')])
    assert rc == 2 and 'unrecognized arguments: --pretrain-iters' in capsys.readouterr().err


def test_best_validation_epoch_is_kept_beside_the_last(tmp_path):
    "The card records both checkpoints and which one was tested; the best file holds the weights of the best validation Dice."
    res = run_experiment('supervised', data='phantom', smoke=True, iters=6, valid_every=1, quiet=True, out=tmp_path/'last')
    ck, hist = res['checkpoints'], res['stages']['train']['history']
    dice = [h['fg_dice'] for h in hist]
    assert ck['test_on'] == 'last' and ck['last'] == dict(file='model.pth', step=6)
    assert ck['best']['epoch'] == int(np.argmax(dice)) and ck['best']['fg_dice'] == pytest.approx(max(dice))
    assert ck['best']['step'] == ck['best']['epoch'] + 1 and (tmp_path/'last'/ck['best']['file']).is_file()
    best = run_experiment('supervised', data='phantom', smoke=True, iters=6, valid_every=1, quiet=True, out=tmp_path/'best', test_on='best')
    cb = best['checkpoints']
    assert cb['test_on'] == 'best' and cb['best'] == ck['best']                          # the same run, the same best epoch
    tested = torch.load(tmp_path/'best'/'model.pth', weights_only=True)['state_dict']
    kept_net, kept_info = load_model(tmp_path/'best'/cb['best']['file'])                  # a self-describing model file too
    kept = kept_net.state_dict()
    assert kept_info['method'] == 'supervised' and kept_info['class_names'] == best['dataset']['class_names']
    assert all(torch.equal(tested[k], kept[k]) for k in tested)                          # model.pth is the best epoch's
    last = load_model(tmp_path/'best'/cb['last']['file'])[0].state_dict()
    ref = torch.load(tmp_path/'last'/'model.pth', weights_only=True)['state_dict']
    assert all(torch.equal(last[k], ref[k]) for k in ref)                                # and the last epoch's are kept
