"""The method registry: every default defined once, the command line built from it, and the modules layered.

- For every registered method, each option's default equals the default of the same parameter of the method's learner
  function (the registry reads it from there), the parser leaves it unset (None) so that the registry decides, and the
  constructors a learner forwards the option to (callbacks and networks) have the same default or none.
- `semicontrast run METHOD --help` lists exactly that method's options.
- No module imports a module above it in the layering of the design (data -> blocks -> training glue -> methods ->
  front), so there is no import cycle either.
"""
import argparse, ast, contextlib, inspect, io
from pathlib import Path
import pytest

import semicontrast.learner  # noqa: F401  (registers every method)
from semicontrast.method import METHODS
from semicontrast.cli import build_parser
from semicontrast import ideal, mscs, mixcl, lrc, cps, callbacks

PKG = Path(semicontrast.learner.__file__).parent

# constructors each method's learner forwards its options to: the method's own callbacks and networks (generic blocks
# such as models.TwoStreamUNet keep neutral 'off' defaults, e.g. perturb=0.0, and the method sets its value)
FORWARDED = {
    'ideal': [ideal.DenseContrastivePretrain, ideal.pretrain_learner, callbacks.TwoStreamConsistency],
    'mscs': [mscs.MSCSConsistency, mscs.MSCSNet], 'mscs_cps': [mscs.MSCSConsistency, mscs.MSCSNet], 'cps': [cps.CPSNet],
    'mixcl': [mixcl.MixCLPretrain, mixcl.MixCLNet], 'identity': [mixcl.MixCLPretrain, mixcl.MixCLNet],
    'lrc': [lrc.RegionContrastPretrain, lrc.LRCNet], 'moco': [lrc.RegionContrastPretrain, lrc.LRCNet],
}

def _method_parser(name):
    sub = next(a for a in build_parser()._actions if a.dest == 'command').choices['run']
    return next(a for a in sub._actions if a.dest == 'method').choices[name]


def _drifts(m, parser_actions:dict, ctors) -> list:
    "Every place where method `m` defines an option's default a second time, or differently."
    sig = inspect.signature(m.learner).parameters
    bad = []
    for o in m.options:
        if o.name in sig and o.default != sig[o.name].default:
            bad.append(f"registry {o.name}={o.default!r} but {m.learner.__name__} says {sig[o.name].default!r}")
        if o.name in m.fixed:
            if o.name in parser_actions: bad.append(f"the fixed option {o.flag} can be set on the command line")
        elif parser_actions[o.name].default not in (None, argparse.SUPPRESS):   # SUPPRESS: absent unless typed ('not given')
            bad.append(f"the parser re-defines the default of {o.flag}")
        for ctor in ctors:
            p = inspect.signature(ctor).parameters.get(o.name)
            if p is not None and p.default is not inspect.Parameter.empty and p.default != o.default:
                bad.append(f"{ctor.__name__}({o.name}={p.default!r}) but the learner says {o.default!r}")
    return bad


@pytest.mark.parametrize('name', sorted(METHODS))
def test_each_default_is_defined_once(name):
    actions = {a.dest: a for a in _method_parser(name)._actions}
    assert _drifts(METHODS[name], actions, FORWARDED.get(name, [])) == []


def test_the_drift_check_reports_each_kind_of_drift():
    "The check above can fail: a fake method with every kind of drift gets every one reported."
    from types import SimpleNamespace
    from semicontrast.method import Method, learner_options
    def toy_learner(dls, w:float=0.1, # a weight
                    k:float=0.2, # another weight
                   ): pass
    def toy_callback(w:float=0.5): pass   # drifted from the learner's 0.1
    opts = learner_options(toy_learner, 'w', 'k')
    m = Method('toy', 'toy', stages=(), options=opts, fixed={'k': 0.0}, learner=toy_learner)
    actions = {'w': SimpleNamespace(default=0.3), 'k': SimpleNamespace(default=None)}   # parser re-defines w; k is settable
    bad = _drifts(m, actions, [toy_callback])
    assert any('re-defines the default of --w' in b for b in bad), bad
    assert any('fixed option --k' in b for b in bad), bad
    assert any('toy_callback(w=0.5)' in b for b in bad), bad
    assert _drifts(m, {'w': SimpleNamespace(default=None)}, []) == []


@pytest.mark.parametrize('name', sorted(METHODS))
def test_help_lists_the_methods_own_options(name):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        with pytest.raises(SystemExit): build_parser().parse_args(['run', name, '--help'])
    text = out.getvalue()
    own = {o.flag for o in METHODS[name].options if o.name not in METHODS[name].fixed}
    others = {o.flag for m in METHODS.values() for o in m.options} - own
    assert all(f in text for f in own), (name, own)
    assert not [f for f in others if f + ' ' in text or f + '\n' in text], (name, others)


METHOD_MODULES = {m.stages[0].run.__module__.rsplit('.', 1)[-1] for m in METHODS.values()} - {'supervised'}
LAYERS = [
    {'core'}, {'settings'}, {'data', 'splits', 'augment', 'protocols'}, {'loaders'}, {'superpixels'}, {'models', 'losses', 'metrics', 'viz'},
    {'heads'}, {'distributed'}, {'callbacks', 'checkpoint'}, {'method'}, {'supervised'},
    METHOD_MODULES,   # every module that registers a method (found through the registry); each draws with viz (`show`)
    {'learner'}, {'inference'}, {'report'}, {'runs'}, {'experiment'}, {'cli'},
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}

def _unit(path:Path) -> str:
    "The layer unit of a file: a top-level module's name, or the subpackage a file belongs to (viz/core.py -> 'viz')."
    rel = path.resolve().relative_to(PKG.resolve()) if path.resolve().is_relative_to(PKG.resolve()) else Path(path.name)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem

def _is_unit(parts:list) -> bool:
    "Whether semicontrast.a.b names a module or subpackage (rather than an attribute of a package's __init__)."
    p = PKG.joinpath(*parts[1:])
    return p.with_suffix('.py').exists() or (p/'__init__.py').exists()

def _imports(path:Path) -> set:
    "semicontrast units (top-level modules or subpackages) imported by a file, at any depth of its code (relative or absolute)."
    rel = path.resolve().relative_to(PKG.resolve()) if path.resolve().is_relative_to(PKG.resolve()) else Path(path.name)
    pkg = ['semicontrast', *rel.parts[:-1]]   # the package the file is in
    found = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom):
            if n.level:
                base = pkg[:len(pkg) - n.level + 1]
                full = base + (n.module.split('.') if n.module else [])
                names = [full + [a.name] for a in n.names if _is_unit(full + [a.name])] if not n.module else [full]   # `from . import __version__`: an attribute of the package, no unit
            else: names = [n.module.split('.')] if (n.module or '').startswith('semicontrast.') else []
            found.update(f[1] for f in names if len(f) > 1)
        elif isinstance(n, ast.Import):
            found.update(a.name.split('.')[1] for a in n.names if a.name.startswith('semicontrast.'))
    return found - {'_modidx'}

def _violations(mod:str, path:Path) -> set:
    "semicontrast units that `mod` (at `path`) imports from its own or a higher layer (a subpackage's files may import each other)."
    return {m for m in _imports(path) if m != mod and RANK.get(m, len(LAYERS)) >= RANK[mod]}

def _files(mod:str) -> list:
    "The files of a unit: `mod.py`, or every file of the subpackage `mod/`."
    return [PKG/f'{mod}.py'] if (PKG/f'{mod}.py').exists() else sorted((PKG/mod).glob('*.py'))

def test_every_module_has_a_layer():
    assert {'ideal', 'mscs', 'mixcl', 'lrc'} <= METHOD_MODULES, METHOD_MODULES
    mods = {p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_')} | {p.parent.name for p in PKG.glob('*/__init__.py')}
    assert mods == set(RANK), (mods - set(RANK), set(RANK) - mods)

@pytest.mark.parametrize('mod', sorted(RANK))
def test_no_module_imports_a_module_above_it(mod):
    bad = set().union(*(_violations(mod, f) for f in _files(mod)))
    assert not bad, f"{mod} (layer {RANK[mod]}) imports {bad} from its own or a higher layer"

def test_the_layer_check_can_fail(tmp_path):
    "A block importing the command line (relative, absolute, or inside a function) is reported; a downward import is not."
    p = tmp_path/'losses.py'
    p.write_text('from .core import IGNORE_INDEX\nfrom .cli import main\ndef f():\n    from semicontrast.learner import x\n')
    assert _violations('losses', p) == {'cli', 'learner'}
    vol = _imports(PKG/'viz'/'volumes.py')   # a subpackage's file: '.core' is viz.core, '..core' the package's core
    assert {'viz', 'core'} <= vol and 'cli' not in vol and _unit(PKG/'viz'/'volumes.py') == 'viz'


# ------------------------------------------------------------------------------------------------ each loss once
LOSS_OPS = {'cross_entropy', 'logsumexp', 'nll_loss', '_ChunkedInfoNCE'}   # what computing a contrastive or CE loss takes

def _loss_ops(path:Path) -> set:
    "Names in LOSS_OPS that a module's code calls (attribute or bare name)."
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, 'id', None)
            if name in LOSS_OPS: found.add(name)
        if isinstance(node, ast.Attribute) and node.attr == 'apply' and getattr(node.value, 'id', None) == '_ChunkedInfoNCE':
            found.add('_ChunkedInfoNCE')
    return found

def test_every_loss_is_written_in_losses_only():
    "No module but `losses` computes a loss itself: the distributed code supplies keys (`GatherKeys`), the methods call the losses."
    pkg = Path(ideal.__file__).parent
    offenders = {p.name: sorted(_loss_ops(p)) for p in pkg.glob('*.py') if p.name not in ('losses.py', '_modidx.py') and _loss_ops(p)}
    assert offenders == {}
    assert {'cross_entropy', 'logsumexp', '_ChunkedInfoNCE'} <= _loss_ops(pkg / 'losses.py')   # the check sees them where they are

def test_the_loss_check_can_fail(tmp_path):
    p = tmp_path / 'copy.py'
    p.write_text("import torch.nn.functional as F\ndef dist_info_nce(q, k): return F.cross_entropy(q @ k.T, k.argmax(1))\n")
    assert _loss_ops(p) == {'cross_entropy'}
