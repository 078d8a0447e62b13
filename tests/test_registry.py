"""The method registry: every default defined once, the command line built from it, and the modules layered.

- For every registered method, each option's default equals the default of the same parameter of the method's learner
  function (the registry reads it from there), the parser leaves it unset (None) so that the registry decides, and the
  constructors a learner forwards the option to (callbacks and networks) have the same default or none.
- `semicontrast run METHOD --help` lists exactly that method's options.
- No module imports a module above it in the layering of the design (data -> blocks -> training glue -> methods ->
  front), so there is no import cycle either.
"""
import ast, contextlib, inspect, io
from pathlib import Path
import pytest

import semicontrast.learner  # noqa: F401  (registers every method)
from semicontrast.method import METHODS
from semicontrast.cli import build_parser
from semicontrast import ideal, mscs, mixcl, lrc, callbacks

PKG = Path(semicontrast.learner.__file__).parent

# constructors each method's learner forwards its options to: the method's own callbacks and networks (generic blocks
# such as models.TwoStreamUNet keep neutral 'off' defaults, e.g. perturb=0.0, and the method sets its value)
FORWARDED = {
    'ideal': [ideal.DenseContrastivePretrain, ideal.pretrain_learner, callbacks.TwoStreamConsistency],
    'mscs': [mscs.MSCSConsistency, mscs.MSCSNet], 'cps': [mscs.MSCSConsistency, mscs.MSCSNet],
    'mixcl': [mixcl.MixCLPretrain, mixcl.MixCLNet], 'identity': [mixcl.MixCLPretrain, mixcl.MixCLNet],
    'lrc': [lrc.RegionContrastPretrain, lrc.LRCNet], 'moco': [lrc.RegionContrastPretrain, lrc.LRCNet],
}

def _method_parser(name):
    sub = next(a for a in build_parser()._actions if a.dest == 'command').choices['run']
    return next(a for a in sub._actions if a.dest == 'method').choices[name]


@pytest.mark.parametrize('name', sorted(METHODS))
def test_each_default_is_defined_once(name):
    m = METHODS[name]
    sig = inspect.signature(m.learner).parameters
    parser = {a.dest: a for a in _method_parser(name)._actions}
    for o in m.options:
        if o.name in sig: assert o.default == sig[o.name].default, (name, o.name, o.default, sig[o.name].default)
        if o.name in m.fixed: assert o.name not in parser, f"{name}: the fixed option {o.flag} must not be settable"
        else: assert parser[o.name].default is None, f"{name}: the parser re-defines the default of {o.flag}"
        for ctor in FORWARDED.get(name, []):
            p = inspect.signature(ctor).parameters.get(o.name)
            if p is not None and p.default is not inspect.Parameter.empty:
                assert p.default == o.default, f"{name}: {ctor.__name__}({o.name}={p.default!r}) but the learner says {o.default!r}"


def test_a_drifted_default_would_be_caught():
    "The check above can fail: a constructor whose default differs from the learner's is reported."
    def learner(dls, w:float=0.1): pass   # noqa
    def ctor(w:float=0.5): pass           # noqa
    assert inspect.signature(ctor).parameters['w'].default != inspect.signature(learner).parameters['w'].default


@pytest.mark.parametrize('name', sorted(METHODS))
def test_help_lists_the_methods_own_options(name):
    with contextlib.redirect_stdout(io.StringIO()) as out:
        with pytest.raises(SystemExit): build_parser().parse_args(['run', name, '--help'])
    text = out.getvalue()
    own = {o.flag for o in METHODS[name].options if o.name not in METHODS[name].fixed}
    others = {o.flag for m in METHODS.values() for o in m.options} - own
    assert all(f in text for f in own), (name, own)
    assert not [f for f in others if f + ' ' in text or f + '\n' in text], (name, others)


LAYERS = [
    {'core'}, {'data', 'splits', 'augment'}, {'loaders'}, {'superpixels'}, {'models', 'losses', 'metrics'}, {'heads'},
    {'distributed'}, {'callbacks', 'checkpoint'}, {'method'}, {'supervised'}, {'ideal', 'mscs', 'mixcl', 'lrc'},
    {'learner', 'viz'}, {'report'}, {'cli'},
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}

def _imports(path:Path) -> set:
    "semicontrast modules imported by a module, at any depth of its code (relative or absolute)."
    found = set()
    for n in ast.walk(ast.parse(path.read_text())):
        if isinstance(n, ast.ImportFrom):
            mod = n.module or ''
            if n.level == 1 and mod: found.add(mod.split('.')[0])
            elif n.level == 1: found.update(a.name for a in n.names)
            elif mod.startswith('semicontrast.'): found.add(mod.split('.')[1])
        elif isinstance(n, ast.Import):
            found.update(a.name.split('.')[1] for a in n.names if a.name.startswith('semicontrast.'))
    return found - {'_modidx'}

def test_every_module_has_a_layer():
    mods = {p.stem for p in PKG.glob('*.py') if not p.stem.startswith('_')}
    assert mods == set(RANK), (mods - set(RANK), set(RANK) - mods)

@pytest.mark.parametrize('mod', sorted(RANK))
def test_no_module_imports_a_module_above_it(mod):
    bad = {m for m in _imports(PKG/f'{mod}.py') if RANK.get(m, -1) >= RANK[mod] and m != mod}
    assert not bad, f"{mod} (layer {RANK[mod]}) imports {bad} from its own or a higher layer"

def test_the_layer_check_can_fail(tmp_path):
    p = tmp_path/'losses.py'; p.write_text('from .cli import main\nfrom semicontrast.learner import x\n')
    assert _imports(p) == {'cli', 'learner'}
