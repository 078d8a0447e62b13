"""Several processes: the gathered contrastive losses and a data-parallel step equal one process over the global batch.

Two CPU processes talk through torch.distributed's gloo backend (no GPU needed). One spawn runs every distributed
computation (the workers return their results through files in tmp_path); the single-process references are computed
here, in the test process, on the same fixed global batch. A step of W processes must give:
(a) losses whose mean over ranks is the single-process loss, (b) gradients that, averaged over ranks as DDP does,
are the single-process gradients, (c) after an optimiser step (a bare DDP model, and fastai `Learner`s with
`DDPTrainer` in both modes), the single-process parameters. The naive gather without gradient is checked to be wrong,
so that the comparison can fail. A last test runs `semicontrast run` under torchrun.
"""
import json
import datetime, os, socket, subprocess, sys, time
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from semicontrast import distributed as D
from semicontrast.losses import (nt_xent, patch_info_nce, supcon_loss, label_contrast_loss, pixel_contrast_loss,
                                 DenseInfoNCE, IGNORE_INDEX)

W = 2
RTOL, ATOL = 1e-5, 1e-6
SHARES = {'equal': [4, 4], 'unequal': [3, 5]}    # rows of the global batch of 8 held by rank 0 and rank 1


# ------------------------------------------------------------------------------------------------ fixed inputs
def _data() -> dict:
    "The global batch, the same in the workers and in the test process."
    g = torch.Generator().manual_seed(0)
    r = lambda *s: torch.randn(*s, generator=g)
    d = dict(z1=r(8, 16), z2=r(8, 16), za=r(8, 6, 2, 3), zb=r(8, 6, 2, 3),
             sz=r(8, 5), sy=torch.tensor([0, 1, 0, 2, 1, 1, 0, 3]), sg=torch.tensor([0, 0, 1, 1, 0, 1, 0, 1]),
             emb=r(8, 5, 3, 3), lab=torch.randint(0, 3, (8, 3, 3), generator=g), spaces=torch.tensor([0, 1, 0, 1, 1, 0, 0, 1]),
             eb=r(8, 5, 3, 3), labb=torch.randint(0, 3, (8, 3, 3), generator=g),
             q=r(8, 6, 3, 3), k=r(8, 6, 3, 3), valid=torch.rand(8, 3, 3, generator=g) > 0.3,
             x=r(8, 6), x2=r(8, 6))
    d['lab'][0, :2] = IGNORE_INDEX; d['lab'][5] = IGNORE_INDEX       # unlabelled pixels, a wholly unlabelled image
    d['labb'][2, 1:] = IGNORE_INDEX
    d['x2'] = d['x'] + 0.3 * d['x2']
    return d

def _rows(sizes, r): return slice(sum(sizes[:r]), sum(sizes[:r + 1]))

# the losses checked, each as (global inputs that get a gradient, other inputs, the loss with keys from every process,
# the same loss in one process): one implementation per loss, two sources of keys
LOSSES = {
    'nt_xent': (('z1', 'z2'), (), lambda a, b: nt_xent(a, b, 0.2, keys=D.GATHER), lambda a, b: nt_xent(a, b, 0.2)),
    'patch_info_nce': (('za', 'zb'), (), lambda a, b: patch_info_nce(a, b, 0.1, keys=D.GATHER), lambda a, b: patch_info_nce(a, b, 0.1)),
    'supcon': (('sz',), ('sy', 'sg'), lambda z, y, g: supcon_loss(z, y, 0.1, g, keys=D.GATHER), lambda z, y, g: supcon_loss(z, y, 0.1, g)),
    'supcon_nogroups': (('sz',), ('sy',), lambda z, y: supcon_loss(z, y, 0.1, keys=D.GATHER), lambda z, y: supcon_loss(z, y, 0.1)),
    'label_contrast': (('emb',), ('lab', 'spaces'), lambda e, l, s: label_contrast_loss(e, l, s, max_per_class=10**6, keys=D.GATHER),
                       lambda e, l, s: label_contrast_loss(e, l, s, max_per_class=10**6)),
    'pixel_contrast': (('emb', 'eb'), ('lab', 'labb'), lambda a, b, la, lb: pixel_contrast_loss(a, b, la, lb, 10**6, keys=D.GATHER),
                       lambda a, b, la, lb: pixel_contrast_loss(a, b, la, lb, 10**6)),
    'dense_info_nce': (('q', 'k'), ('valid',), lambda q, k, v: DenseInfoNCE(0.1, chunk_size=7, keys=D.GATHER)(q, k, v),
                       lambda q, k, v: DenseInfoNCE(0.1, chunk_size=7)(q, k, v)),
}

def _naive_nt_xent(z1, z2, t=0.2):
    "The common mistake: keys gathered without gradient, the local rows put back with theirs."
    B, N = z1.shape[0], 0
    a = F.normalize(torch.cat([z1, z2]), dim=1)
    keys = []
    for part in (a[:B], a[B:]):
        k = D.gather_nograd(part.detach()).clone()
        r0 = [4, 4][:D.rank()]
        k[sum(r0):sum(r0) + B] = part
        keys.append(k); N = k.shape[0]
    off = 4 * D.rank()
    i = torch.arange(B)
    sim = (a @ torch.cat(keys).T / t).masked_fill(F.one_hot(torch.cat([off + i, N + off + i]), 2 * N).bool(), float('-inf'))
    return F.cross_entropy(sim, torch.cat([N + off + i, off + i]), reduction='sum') * (W / (2 * N))

def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 8))

class _TwoViewNet(nn.Module):
    "(B, 2, 6) -> (B, 2, 8): the MLP on both views of every item."
    def __init__(self): super().__init__(); self.net = _mlp()
    def forward(self, x): return self.net(x.reshape(-1, 6)).reshape(x.shape[0], 2, -1)

def _contrastive_loss(pred, *_): return nt_xent(pred[:, 0], pred[:, 1], 0.2, keys=D.GATHER)

def _learner(bs:int, cbs=()):
    "A fastai Learner over 8 two-view items, SGD, the gathered NT-Xent as loss (the same function in one process)."
    from fastai.data.core import DataLoaders
    from fastai.data.load import DataLoader
    from fastai.learner import Learner
    from fastai.optimizer import SGD
    import fastai.callback.progress  # noqa: F401  (Learner.no_bar)
    d = _data()
    items = [(torch.stack([d['x'][i], d['x2'][i]]), torch.tensor(0.)) for i in range(8)]
    dls = DataLoaders(DataLoader(items, bs=bs, shuffle=False, drop_last=True), DataLoader(items[:4], bs=bs // 2), device='cpu')
    return Learner(dls, _TwoViewNet(), loss_func=_contrastive_loss, opt_func=SGD, lr=0.5, wd=0., cbs=list(cbs))

def _fit_one(learn):
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 0.5)
    return {n: p.detach().clone() for n, p in learn.model.named_parameters()}


# ------------------------------------------------------------------------------------------------ the workers
def _job(r:int) -> dict:
    "Everything a rank computes; returned to the test process."
    d, out = _data(), {}
    for name, (diff, other, dist_fn, _) in LOSSES.items():
        for share, sizes in SHARES.items():
            s = _rows(sizes, r)
            xs = [d[n][s].clone().requires_grad_(True) for n in diff]
            loss = dist_fn(*xs, *[d[n][s] for n in other])
            loss.backward()
            out[f'{name}/{share}'] = (loss.detach(), [x.grad for x in xs])
    # under bf16 autocast the gathered losses keep their logits in fp32 (losses.fp32_logits), like the one-process ones
    s = _rows(SHARES['equal'], r)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        for name, (diff, other, dist_fn, _) in LOSSES.items():
            out[f'bf16/{name}'] = dist_fn(*[d[n][s] for n in diff], *[d[n][s] for n in other]).detach()
        out['bf16/nt_xent/unguarded'] = nt_xent.__wrapped__(d['z1'][s], d['z2'][s], 0.2, keys=D.GATHER).detach()
    # the naive gather: the same loss value, other gradients
    s = _rows(SHARES['equal'], r)
    z1, z2 = (d[n][s].clone().requires_grad_(True) for n in ('z1', 'z2'))
    loss = _naive_nt_xent(z1, z2)
    loss.backward()
    out['naive'] = (loss.detach(), [z1.grad, z2.grad])
    # gather_with_grad on its own, unequal sizes: forward = all rows, backward = sum over ranks of the incoming gradient
    t = torch.full((r + 1, 2), float(r), requires_grad=True)
    g = D.gather_with_grad(t)
    (g * torch.arange(1, g.shape[0] + 1.)[:, None] * (r + 1)).sum().backward()
    out['gather'] = (g.detach(), t.grad)
    # shard_dl: rank 0's shuffled order, split between the ranks, padded by repetition; attributes set on the loader kept
    from fastai.data.load import DataLoader
    for n in (10, 9):
        dl = DataLoader(list(range(n)), bs=2, shuffle=True)
        dl.n_inp = 1
        sh = D.shard_dl(dl)
        out[f'shard/{n}'] = (list(sh.get_idxs()), sh.n_inp, len(sh))
    # (c) one SGD step of a DDP-wrapped MLP with the gathered NT-Xent, both views in one forward
    from torch.nn.parallel import DistributedDataParallel
    model = DistributedDataParallel(_mlp())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    x = torch.cat([d['x'][s], d['x2'][s]])
    z = model(x)
    nt_xent(z[:4], z[4:], 0.2, keys=D.GATHER).backward()
    opt.step()
    out['ddp_step'] = {n: p.detach().clone() for n, p in model.module.named_parameters()}
    # fastai Learners: DDPTrainer shards the loader (bs 4 per rank = the global batch of 8) and averages the gradients
    for mode in ('allreduce', 'ddp'):
        learn = _learner(4, [D.DDPTrainer(mode)])
        out[f'learner/{mode}'] = _fit_one(learn)
        out[f'learner/{mode}/restored'] = type(learn.model).__name__ + f' {len(learn.dls.train)}'
    return out

def _worker(r:int, port:int, out:str):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(r), WORLD_SIZE=str(W), LOCAL_RANK=str(r))
    torch.set_num_threads(1)
    import torch.distributed as dist
    dist.init_process_group('gloo', rank=r, world_size=W, timeout=datetime.timedelta(seconds=60))
    try:
        assert D.is_distributed() and D.world_size() == W and D.rank() == r
        res = _job(r)
    finally: dist.destroy_process_group()
    torch.save(res, Path(out)/f'rank{r}.pt')

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]

@pytest.fixture(scope='module')
def ranks(tmp_path_factory) -> list:
    "Run `_job` in W gloo processes; their results, rank by rank."
    out = tmp_path_factory.mktemp('ddp')
    ctx = torch.multiprocessing.get_context('spawn')
    port = _free_port()
    ps = [ctx.Process(target=_worker, args=(r, port, str(out)), daemon=True) for r in range(W)]
    for p in ps: p.start()
    deadline = time.time() + 150
    for p in ps: p.join(max(1, deadline - time.time()))
    alive = [p for p in ps if p.is_alive()]
    for p in alive: p.kill(); p.join(5)
    assert not alive, 'the distributed workers did not finish within 150 s (a collective waiting for a rank that never came?)'
    assert all(p.exitcode == 0 for p in ps), f'a worker failed: exit codes {[p.exitcode for p in ps]} (traceback above)'
    return [torch.load(out/f'rank{r}.pt', weights_only=False) for r in range(W)]


# ------------------------------------------------------------------------------------------------ the checks
def _single(name:str):
    "Single-process loss and input gradients of LOSSES[name] on the whole global batch."
    d = _data()
    diff, other, _, fn = LOSSES[name]
    xs = [d[n].clone().requires_grad_(True) for n in diff]
    loss = fn(*xs, *[d[n] for n in other])
    loss.backward()
    return loss.detach(), [x.grad for x in xs]

@pytest.mark.parametrize('share', list(SHARES))
@pytest.mark.parametrize('name', list(LOSSES))
def test_gathered_loss_and_gradients_equal_one_process(ranks, name, share):
    loss, grads = _single(name)
    per_rank = [rk[f'{name}/{share}'] for rk in ranks]
    # (a) the mean of the rank losses is the loss over the global batch, also with unequal shares
    torch.testing.assert_close(sum(l for l, _ in per_rank) / W, loss, rtol=RTOL, atol=ATOL)
    # (b) each rank's gradient w.r.t. its own rows, averaged over ranks as DDP does (/W), is the global gradient
    for i, g in enumerate(grads):
        torch.testing.assert_close(torch.cat([gs[i] for _, gs in per_rank]) / W, g, rtol=RTOL, atol=ATOL)

@pytest.mark.parametrize('name', list(LOSSES))
def test_gathered_losses_keep_fp32_logits_under_autocast(ranks, name):
    for rk in ranks:
        val, ref = rk[f'bf16/{name}'], rk[f'{name}/equal'][0]
        assert val.dtype == torch.float32
        torch.testing.assert_close(val, ref, rtol=RTOL, atol=ATOL)

def test_without_the_guard_bf16_changes_the_gathered_loss(ranks):
    "The control: the same gathered NT-Xent with autocast left on computes its logits in bf16 and misses the fp32 value."
    assert any(abs(float(rk['bf16/nt_xent/unguarded']) - float(rk['nt_xent/equal'][0])) > 1e-4 for rk in ranks)

def test_equal_shares_give_the_local_mean(ranks):
    "With equal shares each rank's loss is an ordinary mean over its anchors: the two ranks' losses differ, their mean is global."
    l0, l1 = ranks[0]['nt_xent/equal'][0], ranks[1]['nt_xent/equal'][0]
    assert not torch.allclose(l0, l1)

def test_gather_without_gradient_is_wrong(ranks):
    "The teaching check: the naive gather gives the right loss but not the right gradient."
    loss, grads = _single('nt_xent')
    naive = [rk['naive'] for rk in ranks]
    torch.testing.assert_close(sum(l for l, _ in naive) / W, loss, rtol=RTOL, atol=ATOL)
    g = torch.cat([gs[0] for _, gs in naive]) / W
    assert (g - grads[0]).abs().max() > 1e-3, 'the naive gather matched the exact gradient: the test cannot tell them apart'

def test_gather_with_grad_sizes_and_backward(ranks):
    # rank 0 holds 1 row of 0s, rank 1 two rows of 1s; loss_r = (r+1) * sum_i i * row_i (rows numbered from 1)
    for r, rk in enumerate(ranks):
        g, grad = rk['gather']
        torch.testing.assert_close(g, torch.tensor([[0., 0.], [1., 1.], [1., 1.]]))
        # d(sum_r loss_r)/d row_i = i * (1 + 2) = 3 i, for this rank's rows
        rows = torch.arange(1., 4.)[:1] if r == 0 else torch.arange(1., 4.)[1:]
        torch.testing.assert_close(grad, (3 * rows)[:, None].expand(-1, 2))

@pytest.mark.parametrize('n', [10, 9])
def test_shard_dl_splits_rank0s_order(ranks, n):
    shares = [rk[f'shard/{n}'] for rk in ranks]
    idxs = [i for s, _, _ in shares for i in s]
    assert all(len(s) == 5 and n_inp == 1 and length == 3 for s, n_inp, length in shares)
    assert sorted(set(idxs)) == list(range(n)) and len(idxs) == 10        # every item, one repeated when n = 9
    assert idxs != list(range(n))[:10] or n == 9                          # shuffled (by rank 0, for both ranks)

def test_ddp_step_equals_one_process_step(ranks):
    d = _data()
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    z = model(torch.cat([d['x'], d['x2']]))
    nt_xent(z[:8], z[8:], 0.2).backward()
    opt.step()
    for rk in ranks:
        for n, p in model.named_parameters(): torch.testing.assert_close(rk['ddp_step'][n], p.detach(), rtol=RTOL, atol=ATOL)
    moved = sum((p.detach() - q.detach()).abs().sum() for p, q in zip(model.parameters(), _mlp().parameters()))
    assert moved > 1e-3   # the step did something

@pytest.mark.parametrize('mode', ['allreduce', 'ddp'])
def test_fastai_learner_step_equals_one_process(ranks, mode):
    ref = _fit_one(_learner(8))
    for rk in ranks:
        assert rk[f'learner/{mode}/restored'] == '_TwoViewNet 2'   # bare model and unsharded loader (2 batches of 4) back after the fit
        for n, p in ref.items(): torch.testing.assert_close(rk[f'learner/{mode}'][n], p, rtol=RTOL, atol=ATOL)

def test_single_process_path_is_unchanged():
    "Without a process group the distributed functions are the plain losses and the callback refuses to run."
    assert not D.is_distributed() and D.world_size() == 1 and D.rank() == 0
    for name in LOSSES:
        d = _data()
        diff, other, dist_fn, fn = LOSSES[name]
        args = [d[n] for n in diff] + [d[n] for n in other]
        assert torch.equal(dist_fn(*args), fn(*args)), name
    t = torch.randn(3, 2)
    assert D.gather_with_grad(t) is t and D.gather_nograd(t) is t
    learn = _learner(8)
    with D.distrib_fit(learn): assert not any(isinstance(c, D.DDPTrainer) for c in learn.cbs)
    learn.add_cb(D.DDPTrainer())
    with pytest.raises(RuntimeError, match='torchrun'): _fit_one(learn)


# ------------------------------------------------------------------------------------------------ torchrun end to end
@pytest.mark.slow
@pytest.mark.parametrize('launch', ['module', 'console-script'])
def test_torchrun_cli_writes_one_result(tmp_path, launch):
    "torchrun ... -m semicontrast.cli run ..., and torchrun --no-python semicontrast run ... (the console script)."
    out, tmp = tmp_path/'run', tmp_path/'tmp'
    tmp.mkdir()
    env = dict(os.environ, OMP_NUM_THREADS='1', TMPDIR=str(tmp))
    prog = ['-m', 'semicontrast.cli'] if launch == 'module' else ['--no-python', str(Path(sys.executable).parent/'semicontrast')]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', *prog,
           'run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--out', str(out)]
    t0 = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob('result.json')) == ['run/result.json']
    assert (out/'report.html').exists() and (out/'model.pth').exists()
    assert json.loads((out/'result.json').read_text())['device']['processes'] == 2   # the card records the world size
    assert not any(p.name.startswith('semicontrast_rank') for p in tmp.iterdir()), 'rank 1 left its temporary output'
    assert r.stdout.count('wrote ') == 1            # only rank 0 prints its summary
    print(f'torchrun supervised smoke, 2 processes: {time.time() - t0:.0f} s')


@pytest.mark.slow
@pytest.mark.parametrize('method, sync', [('cps', 'ddp'), ('supervised', 'allreduce')])
def test_torchrun_grad_sync(tmp_path, method, sync):
    "DDP is the default under torchrun, also for a model with heads its configuration leaves unused (cps); allreduce stays selectable."
    out = tmp_path/'run'
    env = dict(os.environ, OMP_NUM_THREADS='1', TMPDIR=str(tmp_path))
    flag = [] if sync == 'ddp' else ['--grad-sync', sync]
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', '-m', 'semicontrast.cli',
           'run', method, '--data', 'phantom', '--smoke', '--quiet', '--out', str(out), *flag]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    card = json.loads((out/'result.json').read_text())
    assert card['config']['grad_sync'] == sync and card['device']['processes'] == 2
