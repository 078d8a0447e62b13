"""Throughput at the papers' size: how fast the loaders feed slices, what one training step of each method costs, and
what each protocol preset would take end to end on this machine.

At full size (slices zoomed to 256 x 256, 12 labelled + 12 unlabelled slices per two-stream batch, U-Net base 16,
four poolings), on the embedded hippocampus data, it prints measured figures:
  1. each method's training loader: slices per second (the loader alone, main process, `--workers` 0);
  2. each method's training step (forward, losses, backward, optimiser step; data loading excluded), mean over
     `--steps` steps after one warm-up step (pre-training batches of `--pretrain-bs` slices), with the peak memory, and the SSL4MIS cross pseudo-supervision step written from its published
     description (two whole U-Nets, SGD 0.01, each trained on the 12 labelled slices and on the other's argmax on all
     24), timed side by side with the IDEAL, MSCS and mscs_cps steps in interleaved rounds: the ratio of each to it;
  3. a prediction pass (validation) in slices per second;
  4. the projected wall time of every shipped protocol preset: its steps x the measured step time of the method, plus
     its validations (iters / valid_every passes over `--valid-slices` slices, an assumption printed with it).
A projection is arithmetic on measured step costs, not a run: it says how long the preset would take on this machine.

    OMP_NUM_THREADS=2 python benchmarks/throughput.py [--steps 3] [--rounds 3] [--device cpu] [--valid-slices 1000]
"""
import argparse, gc, resource, time
import numpy as np
import torch
from fastai.callback.core import Callback, CancelValidException

from semicontrast.core import set_seed
from semicontrast.data import load_dataset
from semicontrast.splits import make_split
from semicontrast.loaders import Preprocess, supervised_dls, two_stream_dls, pretrain_dls, pooled_dls, PoolSource, iteration_dl
from semicontrast.superpixels import region_dls
from semicontrast.models import UNet
from semicontrast.losses import DiceCELoss, cross_pseudo_loss
from semicontrast.learner import (supervised_learner, ideal_learner, mscs_learner, cps_learner, meanteacher_learner, mixcl_learner,
                                  lrc_learner)
from semicontrast.protocols import load_protocols

p = argparse.ArgumentParser()
p.add_argument('--steps', type=int, default=3, help='timed training steps per method (after one warm-up step); per round for the two-stream steps')
p.add_argument('--rounds', type=int, default=3, help='rounds of the side-by-side two-stream step comparison')
p.add_argument('--device', default='cpu')
p.add_argument('--size', type=int, default=256, help='slices are zoomed to size x size')
p.add_argument('--bs', type=int, default=12, help='labelled (and unlabelled) slices per batch')
p.add_argument('--base', type=int, default=16)
p.add_argument('--pretrain-bs', type=int, default=12,
               help='slices per pre-training batch (the CLI default is 32; at 256 x 256 MixCL and LRC then need more than the 23 GiB of this CPU machine)')
p.add_argument('--valid-slices', type=int, default=1000, help='slices predicted per validation in the projections (an assumption)')
a = p.parse_args()
dev = torch.device(a.device)
set_seed(0)
print(f'torch {torch.__version__}, {torch.get_num_threads()} threads, device {dev}; slices {a.size} x {a.size}, '
      f'batches {a.bs} + {a.bs}, base {a.base}')

cases, info = load_dataset('hippocampus')
split = make_split(cases, n_labelled=4, n_valid=2, n_test=2, seed=0)
parts = {k: split.cases(cases, k) for k in ('labelled', 'unlabelled', 'valid', 'test')}
prep = Preprocess(size=(a.size, a.size), spatial='resize')
K = info.n_classes


def sync():
    if dev.type == 'cuda': torch.cuda.synchronize()


def loader_rate(dl, n_batches=4):
    "Slices per second of a training loader (its own augmentation and sampling included)."
    it = iter(iteration_dl(dl, n_batches))
    t = time.perf_counter(); n = 0
    for b in it: n += len(b[0])
    return n / (time.perf_counter() - t)


class StepTimer(Callback):
    "Seconds from `before_batch` to `after_batch` of each training step: the step without the data loading."
    order = 99
    def before_fit(self): self.times = []
    def before_validate(self): raise CancelValidException()   # steps only
    def before_batch(self): sync(); self.t = time.perf_counter()
    def after_batch(self):
        if self.training: sync(); self.times.append(time.perf_counter() - self.t)


def learner_times(learn, n):
    "Seconds of `n` training steps of `learn` (data loading and validation excluded)."
    base = learn.__dict__.setdefault('bench_train', learn.dls.train)   # its own loader; the timed ones are copies
    learn.dls.loaders[0] = iteration_dl(base, n)
    timer = StepTimer()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=[timer])
    return timer.times


def step_time(name, make):
    "Build a learner with `make()`, time `--steps` steps after one warm-up step (no validation), print and return the mean."
    t = float(np.mean(learner_times(make(), a.steps + 1)[1:]))
    peak = torch.cuda.max_memory_allocated() / 2**30 if dev.type == 'cuda' else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(f'   {name:28} {t:7.2f} s/step   (peak memory so far {peak:.1f} GiB)', flush=True)
    gc.collect()
    return t


def on(dls): dls.to(dev); return dls


tl = lambda: on(two_stream_dls(parts['labelled'], parts['unlabelled'], parts['valid'], prep, a.bs, a.bs, augment=False, seed=0))
sup = lambda: on(supervised_dls(parts['labelled'], parts['valid'], prep, bs=a.bs, augment=False))
unl = parts['labelled'] + parts['unlabelled']
pre = lambda bs: on(pretrain_dls(unl, parts['valid'], prep, bs=bs, seed=0))
pool = lambda: on(pooled_dls([PoolSource('hippocampus', unl, prep, info.class_names)], bs=2 * a.bs, seed=0))
t0 = time.perf_counter(); reg = on(region_dls(unl, parts['valid'], prep, bs=2 * a.bs, seed=0)); t_sp = time.perf_counter() - t0

print('\n1. training loaders (main process): slices per second')
rates = {'supervised': loader_rate(sup().train), 'two-stream (ideal, mscs, mscs_cps, cps, meanteacher)': loader_rate(tl().train),
         'pre-training (ideal)': loader_rate(pre(2 * a.bs).train), 'pooled (mixcl)': loader_rate(pool().train),
         'regions (lrc, moco)': loader_rate(reg.train)}
for k, v in rates.items(): print(f'   {k:45} {v:8.1f} slices/s')
print(f'   (the region loader computed the Felzenszwalb superpixels of {len(reg.train.dataset) + len(reg.valid.dataset)} slices in {t_sp:.1f} s first)')
del reg; gc.collect()

print(f'\n2. one training step (mean of {a.steps} after a warm-up), data loading excluded')
kw = dict(base=a.base, depth=4)
pb = a.pretrain_bs
step_time('(warm-up, not counted)', lambda: ideal_learner(tl(), K, stage='finetune', **kw))   # measured: the first large
# two-stream step timed in a process was about 1.3x slower than the same method timed again later (cause not measured)
steps = {'supervised': step_time('supervised', lambda: supervised_learner(sup(), K, **kw))}
steps['meanteacher'] = step_time('meanteacher', lambda: meanteacher_learner(tl(), K, **kw))
steps['ideal pretrain'] = step_time(f'ideal pretrain (bs {pb})', lambda: ideal_learner(pre(pb), stage='pretrain', **kw))
steps['mixcl pretrain'] = step_time(f'mixcl pretrain (bs {pb})', lambda: mixcl_learner(on(pooled_dls([PoolSource('hippocampus', unl, prep, info.class_names)], bs=pb, seed=0)), K, stage='pretrain', **kw))
steps['lrc pretrain'] = step_time(f'lrc pretrain (bs {pb})', lambda: lrc_learner(on(region_dls(unl, parts['valid'], prep, bs=pb, seed=0)), K, stage='pretrain', **kw))


class SSL4MISCPS:
    "SSL4MIS's CPS step as published: two U-Nets, SGD 0.01 momentum 0.9 wd 1e-4, sup on 12 labelled + 0.1 x CPS on 24."
    def __init__(self):
        self.nets = [UNet(in_ch=1, n_classes=K, base=a.base, depth=4).to(dev).train() for _ in range(2)]
        self.opts = [torch.optim.SGD(n.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4) for n in self.nets]
        self.sup_loss, x, y = DiceCELoss(), *[t.to(dev) for t in next(iter(tl().train))[:2]]
        self.x, self.y = x.as_subclass(torch.Tensor), y.as_subclass(torch.Tensor)
        self.lab = (self.y != 255).flatten(1).any(1)

    def times(self, n):
        out = []
        for i in range(n):
            sync(); t = time.perf_counter()
            la, lb = (net(self.x) for net in self.nets)
            loss = (self.sup_loss(la[self.lab], self.y[self.lab]) + self.sup_loss(lb[self.lab], self.y[self.lab])
                    + 0.1 * cross_pseudo_loss(la, lb))
            for o in self.opts: o.zero_grad()
            loss.backward()
            for o in self.opts: o.step()
            sync(); out.append(time.perf_counter() - t)
        return out


# The two-stream steps side by side: every model is built once, then the rounds take one warm-up and `--steps` timed
# steps of each in turn (the order rotated each round), so that drifts of the machine (other processes, caches, clock)
# fall on all of them alike; the figure is the median over all timed steps.
# BatchNorm choice: labelled and unlabelled items through BatchNorm apart (split_bn=True, the default: two passes) or together.
print(f'\n   two-stream steps side by side ({a.rounds} rounds of {a.steps} steps each, median):')
pairs = {'ideal finetune': lambda: ideal_learner(tl(), K, stage='finetune', **kw),
         'ideal finetune, split_bn=False': lambda: ideal_learner(tl(), K, stage='finetune', split_bn=False, **kw),
         'mscs': lambda: mscs_learner(tl(), K, **kw),
         'mscs, split_bn=False': lambda: mscs_learner(tl(), K, split_bn=False, **kw),
         'mscs_cps': lambda: mscs_learner(tl(), K, patch_weight=0., pixel_weight=0., **kw),
         'cps': lambda: cps_learner(tl(), K, **kw)}
runners = {k: (lambda n, L=make(): learner_times(L, n)) for k, make in pairs.items()}
ssl = SSL4MISCPS(); runners['SSL4MIS cps (two U-Nets)'] = ssl.times
got = {k: [] for k in runners}
names = list(runners)
for r in range(a.rounds):
    for k in names[r % len(names):] + names[:r % len(names)]:
        got[k] += runners[k](a.steps + 1)[1:]
for k in names:
    steps[k] = float(np.median(got[k]))
    print(f'   {k:32} {steps[k]:7.2f} s/step  (steps {min(got[k]):.2f} to {max(got[k]):.2f} s)', flush=True)
ref = steps['SSL4MIS cps (two U-Nets)']
print('   ratio to the SSL4MIS cps step: ' + ', '.join(f'{k} {steps[k] / ref:.2f}' for k in
      ('ideal finetune', 'mscs', 'mscs_cps', 'cps', 'ideal finetune, split_bn=False', 'mscs, split_bn=False')))
del runners, ssl; gc.collect()

print('\n3. prediction (validation and test): slices per second')
net = UNet(in_ch=1, n_classes=K, base=a.base, depth=4).to(dev).eval()
xb = torch.randn(2 * a.bs, 1, a.size, a.size, device=dev)
with torch.no_grad():
    net(xb); sync(); t = time.perf_counter(); net(xb); net(xb); sync()
pred_rate = 4 * a.bs / (time.perf_counter() - t)
print(f'   U-Net base {a.base}: {pred_rate:.1f} slices/s (two-stream models predict with both decoders: about half)')

print(f'\n4. projected wall time of each protocol preset on this machine (validation: {a.valid_slices} slices per pass, assumed)')
per_method = {'ideal': ('ideal pretrain', 'ideal finetune'), 'mscs': (None, 'mscs'), 'mscs_cps': (None, 'mscs_cps'), 'cps': (None, 'cps'),
              'mixcl': ('mixcl pretrain', 'supervised'), 'lrc': ('lrc pretrain', 'supervised')}
for name, pr in load_protocols().items():
    s = pr.settings
    method = pr.methods[0] if pr.methods else 'cps'
    pre_key, main_key = per_method.get(method, (None, 'supervised'))
    train = s.get('iters', 0) * steps[main_key] + (s.get('pretrain_iters', 0) * steps[pre_key] if pre_key else 0)
    n_valid = s.get('iters', 0) // max(1, s.get('valid_every') or s.get('iters', 1))
    valid = n_valid * a.valid_slices / pred_rate
    print(f'   {name:14} {method:6} {train / 3600:7.1f} h training + {valid / 3600:5.1f} h validation '
          f'({valid / max(train + valid, 1e-9):.0%} of the run)')
