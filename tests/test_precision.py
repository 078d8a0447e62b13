"Mixed precision: contrastive logits stay fp32 under autocast (losses.fp32_logits); bf16/fp16 training through the CLI on the CPU."
import json
import pytest, torch
from semicontrast import losses as L
from semicontrast.cli import main

torch.manual_seed(0)
Z = {n: torch.randn(*s, dtype=torch.float32) for n, s in dict(q=(16, 32), k=(16, 32), dq=(2, 32, 4, 4), dk=(2, 32, 4, 4),
                                                             r1=(2, 6, 32), r2=(2, 6, 32), queue=(64, 32)).items()}
Y = torch.randint(0, 3, (16,))
CASES = {
    'info_nce': lambda z, f=L.info_nce: f(z['q'], z['k'], 0.1),
    'nt_xent': lambda z, f=L.nt_xent: f(z['q'], z['k'], 0.1),
    'supcon_loss': lambda z, f=L.supcon_loss: f(z['q'], Y, 0.1),
    'patch_info_nce': lambda z, f=L.patch_info_nce: f(z['dq'], z['dk'], 0.1),
    'moco_loss': lambda z, f=L.moco_loss: f(z['q'], z['k'], z['queue'], 0.2),
    'DenseInfoNCE': lambda z, f=None: L.DenseInfoNCE(0.1)(z['dq'], z['dk']),
    'RegionInfoNCE': lambda z, f=None: L.RegionInfoNCE(0.1)(z['r1'], z['r2']),
}
UNGUARDED = {'info_nce': L.info_nce.__wrapped__, 'nt_xent': L.nt_xent.__wrapped__, 'supcon_loss': L.supcon_loss.__wrapped__,
             'moco_loss': L.moco_loss.__wrapped__}   # (patch_info_nce calls the guarded info_nce inside)


def _value_and_grads(fn, dtype=None, **kw):
    z = {k: v.clone().requires_grad_() for k, v in Z.items()}
    if dtype is None: loss = fn(z, **kw)
    else:
        with torch.autocast('cpu', dtype=dtype): loss = fn(z, **kw)
    loss.backward()
    return loss.detach(), {k: (v.grad if v.grad is not None else torch.zeros_like(v)) for k, v in z.items()}


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16], ids=['bf16', 'fp16'])
@pytest.mark.parametrize('name', list(CASES))
def test_contrastive_loss_under_autocast_equals_fp32(name, dtype):
    ref, gref = _value_and_grads(CASES[name])
    val, g = _value_and_grads(CASES[name], dtype)
    assert val.dtype == torch.float32
    torch.testing.assert_close(val, ref, rtol=1e-5, atol=1e-6)
    for k in g: torch.testing.assert_close(g[k], gref[k], rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize('name', list(UNGUARDED))
def test_without_the_guard_bf16_changes_the_loss(name):
    "The control: the same loss with autocast left on computes its logits in bf16 and misses the fp32 value."
    ref, _ = _value_and_grads(CASES[name])
    val, _ = _value_and_grads(CASES[name], torch.bfloat16, f=UNGUARDED[name])
    assert abs(float(val) - float(ref)) > 1e-4


@pytest.mark.parametrize('method,precision', [('supervised', 'bf16'), ('supervised', 'fp16'), ('mixcl', 'bf16')])
def test_cli_trains_in_mixed_precision_on_the_cpu(tmp_path, method, precision):
    out = tmp_path/'r'
    assert main(['run', method, '--data', 'phantom', '--smoke', '--quiet', '--precision', precision, '--out', str(out)]) == 0
    card = json.loads((out/'result.json').read_text())
    assert card['config']['precision'] == precision and 0 <= card['mean']['dice'] <= 1
    assert all(v.dtype == torch.float32 for v in torch.load(out/'model.pth', weights_only=True)['state_dict'].values() if v.is_floating_point())
    if method == 'mixcl': assert all(torch.isfinite(torch.tensor(v)) for t in card['stages']['pretrain']['terms'] for v in t.values())


def test_unknown_precision_is_refused(capsys):
    assert main(['run', 'supervised', '--smoke', '--precision', 'fp8']) == 2   # one line, no usage block
    err = capsys.readouterr().err
    assert 'fp8' in err and len(err.strip().splitlines()) == 1, err
