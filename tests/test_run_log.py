"""`--log csv --log tensorboard`: every loss term of every step, the learning rate and the validation metrics, per stage,
as a long CSV table and as TensorBoard scalars (one tag per term)."""
import csv
from pathlib import Path
import pytest
from semicontrast.cli import main


def _csv(path:Path) -> dict:
    "{(split, name): [(step, value)]} of a RunLog CSV file."
    out = {}
    with open(path) as f:
        for r in csv.DictReader(f): out.setdefault((r['split'], r['name']), []).append((int(r['step']), float(r['value'])))
    return out


def _scalars(folder:Path) -> dict:
    "{tag: [(step, value)]} of the TensorBoard event files in `folder`."
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder)); acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()['scalars']}


def test_cps_logs_each_loss_term(tmp_path, capsys):
    out = tmp_path/'run'
    assert main(['run', 'cps', '--data', 'phantom', '--smoke', '--quiet', '--out', str(out), '--log', 'csv', '--log', 'tensorboard']) == 0
    log = _csv(out/'logs'/'train.csv')
    steps = [s for s, _ in log[('train', 'loss')]]
    assert steps == list(range(1, len(steps) + 1)) and len(steps) > 1
    for term in ('sup_a', 'sup_b', 'cps', 'weight', 'lr'):   # cross pseudo supervision's terms, each step
        assert [s for s, _ in log[('train', term)]] == steps, term
    assert ('train', 'iter') not in log and ('valid', 'valid_loss') in log and ('valid', 'fg_dice') in log
    tb = _scalars(out/'logs'/'tensorboard')
    for term in ('loss', 'sup_a', 'sup_b', 'cps', 'lr'):
        assert [s for s, _ in tb[f'train/train/{term}']] == steps
        assert [v for _, v in tb[f'train/train/{term}']] == pytest.approx([v for _, v in log[('train', term)]], rel=1e-4)
    assert 'train/valid/fg_dice' in tb


def test_each_stage_has_its_log(tmp_path, capsys):
    out = tmp_path/'run'
    assert main(['run', 'ideal', '--data', 'phantom', '--smoke', '--quiet', '--out', str(out), '--log', 'csv']) == 0
    assert sorted(p.name for p in (out/'logs').glob('*.csv')) == ['finetune.csv', 'pretrain.csv']
    pre = _csv(out/'logs'/'pretrain.csv')
    assert ('train', 'loss') in pre and ('train', 'dense') in pre   # the dense contrastive term of IDEAL's pre-training


def test_a_wrong_log_kind_is_one_line(tmp_path, capsys):
    rc = main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--out', str(tmp_path/'r'), '--log', 'wandb'])
    err = capsys.readouterr().err
    assert rc == 2 and '--log' in err and 'csv' in err and 'Traceback' not in err and not (tmp_path/'r').exists()
