"""One description of a run's settings (`semicontrast.settings`): what the user states wins, ranges are checked before
anything is loaded, the learners' defaults are the command line's, and the card records what was used."""
import contextlib, inspect, io, json, subprocess, sys
from pathlib import Path
import pytest
from semicontrast.settings import RUN_SETTINGS, DEFAULTS, PRESETTABLE, NOT_GIVEN, Option
from semicontrast.protocols import Protocol, apply_protocol
from semicontrast.method import METHODS
from semicontrast.experiment import run_settings
from semicontrast.cli import main, build_parser
from semicontrast.core import DataError


def _other(o:Option):
    "A valid value of run setting `o` that differs from its default."
    d = o.default
    if o.choices: return next(c for c in o.choices if c != d)
    if o.name in ('input_size', 'crop'): return [32, 32]
    if o.name == 'window': return [-100.0, 200.0]
    if o.name == 'spacing': return [2.0, 1.0, 1.0]
    if o.name in ('fmt',): return 'nifti'
    if o.name == 'split_file': return 'lists'
    if o.name in ('labeled', 'valid', 'test', 'unlabeled'): return 3 if d != 3 else 5
    if o.type is int: return (d or 1) + 1
    if o.type is float: return d * 2
    raise AssertionError(o.name)

@pytest.mark.parametrize('name', PRESETTABLE)
def test_a_stated_setting_beats_a_protocol_even_at_its_default(name):
    "A protocol that sets every setting to another value: the one the user states (its default, when it has one) wins and is listed."
    o = RUN_SETTINGS[name]
    p = Protocol('every', 'sets everything', {}, {k: _other(RUN_SETTINGS[k]) for k in PRESETTABLE}, {})
    stated = o.default if o.default is not None else _other(o)
    values, rec = apply_protocol(p, 'supervised', {'data': '/d', name: stated})
    assert name not in values and name in rec['overridden'], (name, rec['overridden'])
    assert {k for k in PRESETTABLE if k != name} - set(values) <= {'iters', 'valid_every', 'epochs', 'pretrain_iters', 'pretrain_epochs'}

def _parse(argv):
    kw = vars(build_parser().parse_args(argv))
    kw.pop('command'); return kw.pop('method'), kw

@pytest.mark.parametrize('name', ['labeled', 'bs', 'lr', 'opt', 'schedule', 'test_on', 'augment', 'base', 'depth'])
def test_a_flag_equal_to_its_default_beats_the_preset_on_the_command_line(name):
    "ssl4mis-acdc sets these to other values; typing the default keeps the default, and the card's protocol record lists it."
    o = RUN_SETTINGS[name]
    method, kw = _parse(['run', 'cps', '--data', '/d', '--protocol', 'ssl4mis-acdc', o.flag, str(o.default)])
    cfg, rec = run_settings(METHODS[method], kw)
    assert cfg[name] == o.default and name in rec['overridden']
    others = [k for k in rec['settings'] if k != name and k not in ('fmt', 'split_file')]
    assert all(cfg[k] == rec['settings'][k] for k in others)   # the rest of the protocol still applies

def test_split_and_format_replace_the_protocols_and_say_so():
    method, kw = _parse(['run', 'cps', '--data', '/d', '--protocol', 'ssl4mis-acdc', '--split', 's.json', '--format', 'nifti'])
    cfg, rec = run_settings(METHODS[method], kw)
    assert (cfg['split_file'], cfg['fmt']) == ('s.json', 'nifti') and {'split_file', 'fmt'} <= set(rec['overridden'])

def test_epochs_given_drops_the_protocols_iteration_budget():
    method, kw = _parse(['run', 'cps', '--data', '/d', '--protocol', 'ssl4mis-acdc', '--epochs', '3'])
    cfg, rec = run_settings(METHODS[method], kw)
    assert (cfg['epochs'], cfg['iters'], cfg['valid_every']) == (3, None, None) and {'iters', 'valid_every'} <= set(rec['overridden'])


def _out_of_range(o:Option):
    "Values of option `o` outside its declared range or choices (None when it declares none)."
    if o.choices is not None: return ['not-a-choice']
    bad = []
    if o.low is not None: bad.append(o.low - 1)
    if o.high is not None: bad.append(o.high + 0.5 if o.type is float else o.high + 1)
    if o.above is not None: bad.append(o.above)
    if o.below is not None: bad.append(o.below)
    return bad

OPTIONS = sorted({(m.name, o.name) for m in METHODS.values() for o in m.options if o.name not in m.fixed})

@pytest.mark.parametrize('method,name', OPTIONS)
def test_every_method_option_declares_its_range(method, name):
    o = next(o for o in METHODS[method].options if o.name == name)
    if o.type in (int, float, str) and not o.many and name not in ('superpixel_cache', 'pool'):
        assert _out_of_range(o), f"{method} --{name}: declare its range (low/high/above/below) or its choices beside the default"

@pytest.mark.parametrize('method,name', [mo for mo in OPTIONS if _out_of_range(next(o for o in METHODS[mo[0]].options if o.name == mo[1]))])
def test_out_of_range_option_is_one_line_and_exit_2_before_loading(method, name, tmp_path):
    o = next(o for o in METHODS[method].options if o.name == name)
    for v in _out_of_range(o):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            rc = main(['run', method, '--data', str(tmp_path/'no-such-data'), '--smoke', '--out', str(tmp_path/'out'), o.flag, str(v)])
        lines = [l for l in err.getvalue().splitlines() if l.strip()]
        assert rc == 2 and len(lines) == 1 and o.flag in lines[0] and 'Traceback' not in err.getvalue(), (v, err.getvalue())
        assert 'no-such-data' not in lines[0] and not (tmp_path/'out').exists()   # refused before the data or the folder

@pytest.mark.parametrize('argv,flag', [(['--momentum', '1.5'], '--momentum'), (['--threshold', '1.5'], '--threshold'),
                                        (['--bs', '0'], '--bs'), (['--lr', '-1'], '--lr'), (['--labeled', '1.5'], '--labeled')])
def test_issue_examples_are_one_line(argv, flag, tmp_path):
    err = io.StringIO()
    with contextlib.redirect_stderr(err): rc = main(['run', 'ideal', '--data', 'phantom', '--out', str(tmp_path/'o')] + argv)
    assert rc == 2 and err.getvalue().count('\n') == 1 and flag in err.getvalue(), err.getvalue()


# ---------------------------------------------------------------------------------------- learner defaults = CLI defaults
def _dls():
    from types import SimpleNamespace
    from semicontrast.data import synthetic_phantoms
    from semicontrast.loaders import auto_preprocess, supervised_dls, two_stream_dls, pretrain_dls
    cases, info = synthetic_phantoms(n=6, shape=(4, 32, 32), n_classes=3, seed=0), SimpleNamespace(n_classes=3)
    prep = auto_preprocess(cases)
    lab, unl, val = cases[:2], cases[2:4], cases[4:5]
    return info, dict(sup=supervised_dls(lab, val, prep, bs=2), two=two_stream_dls(lab, unl, val, prep, bs_labelled=2, bs_unlabelled=2),
                      pre=pretrain_dls(lab + unl, val, prep, bs=2))

LOADER_DEFAULTS = {'bs': 'bs', 'bs_labelled': 'bs', 'bs_unlabelled': 'bs', 'augment': 'augment'}

def test_loader_and_learner_signatures_take_the_run_defaults():
    "Every run-level parameter of a loader or learner function defaults to the run setting (or to None: the stage's run default)."
    from semicontrast import loaders, supervised
    fns = [loaders.supervised_dls, loaders.two_stream_dls, supervised.supervised_learner, supervised.finetune_learner] + \
          [m.learner for m in METHODS.values()]
    checked = 0
    for f in dict.fromkeys(fns):
        for n, p in inspect.signature(f).parameters.items():
            key = LOADER_DEFAULTS.get(n, n) if f.__module__.endswith('loaders') else n
            if key in ('lr', 'base', 'depth', 'bs', 'augment') and p.default is not inspect.Parameter.empty:
                assert p.default == DEFAULTS[key] or (key == 'lr' and p.default is None), (f.__name__, n, p.default, DEFAULTS[key])
                checked += 1
    assert inspect.signature(loaders.pretrain_dls).parameters['bs'].default == DEFAULTS['pretrain_bs']
    assert checked >= 12, checked

def test_learners_built_with_no_arguments_use_the_run_learning_rates():
    info, d = _dls()
    from semicontrast.learner import (supervised_learner, ideal_learner, mscs_learner, meanteacher_learner, mixcl_learner,
                                      lrc_learner, pretrain_learner)
    from semicontrast.loaders import pooled_dls, PoolSource
    n = info.n_classes
    finetune = [supervised_learner(d['sup'], n), ideal_learner(d['two'], n), mscs_learner(d['two'], n), meanteacher_learner(d['two'], n),
                mixcl_learner(d['sup'], n, stage='finetune'), lrc_learner(d['sup'], n, stage='finetune')]
    assert [l.lr for l in finetune] == [DEFAULTS['lr']] * len(finetune)
    assert ideal_learner(d['pre'], stage='pretrain').lr == DEFAULTS['pretrain_lr'] == pretrain_learner(d['pre']).lr
    assert finetune[0].model.widths[0] == DEFAULTS['base']

def test_loaders_do_not_augment_by_default_like_the_command_line():
    info, d = _dls()
    assert DEFAULTS['augment'] == 'none' and d['sup'].train.dataset.augment is None
    assert len(d['two'].train.dataset.datasets[0]) and d['two'].train.dataset.datasets[0].augment is None


# ---------------------------------------------------------------------------------------- the card records what was used
def _card(tmp_path, *argv):
    out = tmp_path/'run'
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(['run', *argv, '--data', 'phantom', '--smoke', '--quiet', '--out', str(out)]) == 0
    return json.loads((out/'result.json').read_text())

def test_an_iters_run_records_no_epochs_and_no_unused_settings(tmp_path):
    card = _card(tmp_path, 'cps', '--iters', '4')
    cfg = card['config']
    assert 'epochs' not in cfg and cfg['iters'] == 4 and 'pretrain_epochs' not in cfg and 'pretrain_bs' not in cfg
    assert 'supervised_steps' not in card['stages']['train'] and card['stages']['train']['steps'] == 4
    assert card['arguments'] == {'method': 'cps', 'iters': 4, 'data': 'phantom', 'smoke': True, 'quiet': True, 'out': str(tmp_path/'run')}

def test_a_run_from_a_split_file_records_no_split_fractions(tmp_path):
    first = _card(tmp_path, 'supervised', '--epochs', '1')
    split = tmp_path/'split.json'; split.write_text((tmp_path/'run'/'split.json').read_text())
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--split', str(split), '--iters', '2',
                     '--out', str(tmp_path/'again')]) == 0
    cfg = json.loads((tmp_path/'again'/'result.json').read_text())['config']
    assert not {'epochs', 'valid', 'test', 'unlabeled', 'labeled', 'max_cases'} & set(cfg) and cfg['split_file'] == str(split)
    assert {'valid', 'test', 'epochs'} <= set(first['config'])


# ---------------------------------------------------------------------------------------- imports
def test_star_import_gives_every_learner():
    ns = {}
    exec('from semicontrast.learner import *', ns)
    want = {m.learner.__name__ for m in METHODS.values() if m.learner is not None} | {'supervised_learner', 'finetune_learner'}
    assert want <= set(ns), want - set(ns)

def test_importing_the_learners_loads_no_plotting_library():
    code = ("import sys, semicontrast.learner, semicontrast.inference\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('plotly', 'ipywidgets') or m == 'semicontrast.viz'))")
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == '[]', out

def test_the_plotting_check_can_fail():
    code = "import sys, semicontrast.viz\nprint('plotly' in sys.modules)"
    assert subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, check=True).stdout.strip() == 'True'

def test_the_datasets_own_lists_keep_labeled_and_valid_in_the_card():
    "With --split lists the dataset's lists take --labeled and --valid (they shape the split); only the rest is left out."
    from semicontrast.settings import unused_settings
    lists = unused_settings(dict(DEFAULTS, split_file='lists'), pretrains=False)
    saved = unused_settings(dict(DEFAULTS, split_file='split.json'), pretrains=False)
    assert not {'labeled', 'valid'} & lists and {'test', 'unlabeled', 'max_cases'} <= lists
    assert {'labeled', 'valid', 'test', 'unlabeled', 'max_cases'} <= saved
