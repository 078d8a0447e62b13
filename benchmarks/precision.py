"""What mixed precision buys: time per training step (forward, backward, Adam) in fp32, bf16 and fp16 for the
supervised U-Net and for MixCL pre-training (whose contrastive logits stay fp32 inside `losses.fp32_logits`),
at the CLI's default size on the embedded hippocampus data, plus peak memory on a GPU.

Prints measured figures only; on a CPU without native bf16/fp16 support, half precision is usually *slower*.

    OMP_NUM_THREADS=2 python benchmarks/precision.py [--steps 10] [--device cpu|cuda] [--base 16] [--bs 16]
"""
import argparse, time
import torch
from fastai.callback.core import Callback, CancelFitException
from semicontrast.core import set_seed
from semicontrast.data import load_dataset
from semicontrast.splits import make_split
from semicontrast.loaders import auto_preprocess
from semicontrast.settings import DEFAULTS
from semicontrast.mixcl import pool_sources
from semicontrast.loaders import supervised_dls, pooled_dls, PoolSource
from semicontrast.learner import supervised_learner, mixcl_learner
from semicontrast.callbacks import DeviceMixedPrecision

p = argparse.ArgumentParser()
p.add_argument('--steps', type=int, default=10, help='timed training steps (after 2 warm-up steps)')
p.add_argument('--device', default='cpu')
p.add_argument('--base', type=int, default=DEFAULTS['base'])
p.add_argument('--bs', type=int, default=DEFAULTS['bs'])
p.add_argument('--precisions', nargs='+', default=['fp32', 'bf16', 'fp16'])
a = p.parse_args()
dev = torch.device(a.device)
print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}'
      + (f' ({torch.cuda.get_device_name(dev)})' if dev.type == 'cuda' else ''))


class StepTimer(Callback):
    "Times `n` optimiser steps after `warm` warm-up steps, then stops the fit."
    order = 99
    def __init__(self, n, warm=2): self.n, self.warm, self.times = n, warm, []
    def before_batch(self):
        if dev.type == 'cuda': torch.cuda.synchronize()
        self.t = time.perf_counter()
    def after_step(self):
        if dev.type == 'cuda': torch.cuda.synchronize()
        if self.learn.train_iter >= self.warm: self.times.append(time.perf_counter() - self.t)
        if len(self.times) >= self.n: raise CancelFitException


def timed(make, precision):
    set_seed(0)
    learn = make()
    timer = StepTimer(a.steps)
    cbs = [timer] + ([DeviceMixedPrecision(precision)] if precision != 'fp32' else [])
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    with learn.no_logging(), learn.no_bar(): learn.fit(1000, 1e-3, cbs=cbs)
    t = sorted(timer.times)[len(timer.times) // 2]
    mem = torch.cuda.max_memory_allocated() / 2**20 if dev.type == 'cuda' else float('nan')
    return t, mem


cases, info = load_dataset('hippocampus')
split = make_split(cases, n_labelled=DEFAULTS['labeled'], n_valid=DEFAULTS['valid'], n_test=DEFAULTS['test'], seed=0)
parts = {k: split.cases(cases, k) for k in ('labelled', 'unlabelled', 'valid', 'test')}
prep = auto_preprocess(cases, intensity=info.intensity, depth=4)
print(f'hippocampus, slices {prep.size}, base {a.base}, batch {a.bs} (supervised) / {2 * a.bs} (MixCL pre-training)')

def supervised():
    dls = supervised_dls(parts['labelled'], parts['valid'], prep, bs=a.bs, seed=0, device=dev)
    return supervised_learner(dls, info.n_classes, base=a.base, depth=4)

def mixcl():
    pdls = pooled_dls(pool_sources(parts, prep, info, []), [PoolSource(info.name, parts['valid'], prep, info.class_names)],
                      bs=2 * a.bs, seed=0, device=dev)
    return mixcl_learner(pdls, n_classes=info.n_classes, base=a.base, depth=4)

print(f'\n{"model":<24} {"precision":>9} {"s/step (median)":>16} {"vs fp32":>8} {"peak MiB":>9}')
for name, make in (('supervised U-Net', supervised), ('MixCL pre-training', mixcl)):
    base_t = None
    for prec in a.precisions:
        try: t, mem = timed(make, prec)
        except Exception as e:
            print(f'{name:<24} {prec:>9}   failed: {type(e).__name__}: {str(e)[:80]}'); continue
        base_t = t if prec == 'fp32' else base_t
        rel = f'{base_t / t:.2f}x' if base_t else '-'
        print(f'{name:<24} {prec:>9} {t:>16.3f} {rel:>8} {mem:>9.0f}')
