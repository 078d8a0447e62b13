"""Every shipped protocol runs end to end in its smoke variant on data the test writes in the layout the protocol
expects; `semicontrast protocols` lists them; a protocol is printed and recorded in the card, and the settings the
user gives win over it (and are listed as overrides)."""
import json
import pytest

from semicontrast.cli import main
from semicontrast.protocols import load_protocols
from test_units_and_lists import _ssl4mis, _la
from test_data import write_acdc
from test_data_btcv import write_msd_spleen, write_btcv

PROTOCOLS = load_protocols()


def _data(name, root):
    "A folder in the layout protocol `name` reads, and the method to run it with."
    fmt = PROTOCOLS[name].data['format']
    if fmt == 'acdc_h5': return _ssl4mis(root), 'cps'
    if fmt == 'acdc': return write_acdc(root, n=5), 'ideal'
    if fmt == 'la_h5': return _la(root)[0], 'mscs'
    if fmt == 'msd': return write_msd_spleen(root, n=6), 'mixcl'
    if fmt == 'btcv':
        write_btcv(root, train=tuple(f'{i:04d}' for i in range(1, 7)), test=())
        return root, PROTOCOLS[name].methods[0]
    raise AssertionError(f'no fixture for format {fmt}')


@pytest.mark.parametrize('name', sorted(PROTOCOLS))
def test_every_protocol_runs_in_its_smoke_variant(tmp_path, name, capsys):
    data, method = _data(name, tmp_path/'data')
    out = tmp_path/'run'
    assert main(['run', method, '--data', str(data), '--protocol', name, '--smoke', '--out', str(out)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert f'protocol {name}:' in printed                                   # printed at the start of the run
    card = json.loads((out/'result.json').read_text())
    p = PROTOCOLS[name]
    assert card['protocol']['name'] == name and card['protocol']['smoke'] is True and card['protocol']['overridden'] == []
    smoke = dict(p.settings, **p.smoke)
    for k in ('iters', 'valid_every', 'bs', 'base'):
        if k in smoke: assert card['config'][k] == smoke[k], k
    assert card['stages'][list(card['stages'])[-1]]['steps'] == smoke['iters']
    assert card['config']['fmt'] == p.data['format'] and 'fmt' not in card['arguments']   # the protocol's reader, not the user's
    if p.data.get('split') == 'lists': assert 'train.list' in card['config']['split_convention']


def test_the_user_wins_and_the_card_says_so(tmp_path):
    root = _ssl4mis(tmp_path/'acdc')
    assert main(['run', 'cps', '--data', str(root), '--protocol', 'ssl4mis-acdc', '--smoke', '--quiet', '--bs', '3',
                 '--out', str(tmp_path/'r')]) == 0
    card = json.loads((tmp_path/'r'/'result.json').read_text())
    assert card['config']['bs'] == 3 and card['protocol']['overridden'] == ['bs'] and card['config']['opt'] == 'sgd'


def test_listing_and_refusals(tmp_path, capsys):
    assert main(['protocols']) == 0
    listed = capsys.readouterr().out
    assert all(n in listed for n in PROTOCOLS)
    assert main(['protocols', 'ssl4mis-acdc']) == 0 and 'V: SSL4MIS max_iterations 30000' in capsys.readouterr().out
    assert main(['run', 'cps', '--protocol', 'ssl4mis-acdc', '--smoke', '--quiet', '--out', str(tmp_path/'a')]) == 2
    assert 'give its path with --data' in capsys.readouterr().err                # the embedded data is not ACDC
    assert main(['run', 'ideal', '--data', str(tmp_path), '--protocol', 'mscs-la', '--smoke', '--quiet', '--out', str(tmp_path/'b')]) == 2
    assert 'a protocol of mscs, cps, not ideal' in capsys.readouterr().err
    assert main(['run', 'cps', '--protocol', 'nope', '--out', str(tmp_path/'c')]) == 2 and 'the protocols are' in capsys.readouterr().err
