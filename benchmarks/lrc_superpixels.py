"""What superpixels cost LRC pre-training, with and without the cache (embedded hippocampus data, default sizes).

Prints measured figures:
  1. Felzenszwalb per slice (scale 100, sigma 0.5, min_size 20) computed, and read back from a `SuperpixelCache`;
  2. building the pre-training loaders (`region_dls`, all training slices): no cache, cold cache, warm cache;
  3. one pre-training step at the CLI's default size (bs 32, base 16, MoCo + LRC), timed over `--steps` steps;
  4. the superpixels' share of a step: from the cache (read once per run, spread over the run's steps) and the
     alternative of computing them on the fly for every batch (bs slices per step).

    OMP_NUM_THREADS=2 python benchmarks/lrc_superpixels.py [--steps 20] [--epochs 10] [--device cpu]

The issue's target: with the cache, superpixels cost under 5% of a pre-training step at default sizes.
"""
import argparse, tempfile, time
from pathlib import Path
import numpy as np
import torch
from semicontrast.core import set_seed
from semicontrast.data import load_dataset
from semicontrast.splits import make_split
from semicontrast.loaders import auto_preprocess
from semicontrast.settings import DEFAULTS
from semicontrast.superpixels import SuperpixelCache, felzenszwalb_slice, region_dls, superpixels_for
from semicontrast.learner import lrc_learner

p = argparse.ArgumentParser()
p.add_argument('--steps', type=int, default=20, help='timed pre-training steps (after 3 warm-up steps)')
p.add_argument('--epochs', type=int, default=DEFAULTS['pretrain_epochs'], help='epochs of a run (spreads the one-off cost)')
p.add_argument('--device', default='cpu')
a = p.parse_args()
dev = torch.device(a.device)
print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}')

cases, info = load_dataset('hippocampus')
split = make_split(cases, n_labelled=4, n_valid=0.1, n_test=0.3, seed=0)
train = split.cases(cases, 'labelled') + split.cases(cases, 'unlabelled')
prep = auto_preprocess(cases, intensity=info.intensity)
n_slices = sum(c.n_slices for c in train)

# 1. per slice
vols = [prep.normalise(c.image) for c in train]
t = time.perf_counter()
for v in vols:
    for z in range(v.shape[0]): felzenszwalb_slice(v[z])
per_slice = (time.perf_counter() - t) / n_slices
root = Path(tempfile.mkdtemp(prefix='sp_bench_'))
cache = SuperpixelCache(root)
for c, v in zip(train, vols): cache.get(c.id, v)
t = time.perf_counter()
for c, v in zip(train, vols): cache.get(c.id, v)
per_slice_cached = (time.perf_counter() - t) / n_slices
print(f'superpixels per slice ({n_slices} slices, {prep.size[0]}x{prep.size[1]} model size): computed {per_slice*1e3:.2f} ms, '
      f'from the cache {per_slice_cached*1e3:.3f} ms')

# 2. loaders
timings = {}
for name, ch in (('no cache', None), ('cold cache', SuperpixelCache(Path(tempfile.mkdtemp(prefix='sp_cold_')))), ('warm cache', cache)):
    t = time.perf_counter()
    dls = region_dls(train, [], prep, bs=DEFAULTS['pretrain_bs'], cache=ch, seed=0, device=dev)
    timings[name] = time.perf_counter() - t
print('region_dls build (slices + superpixels): ' + ', '.join(f'{k} {v:.2f} s' for k, v in timings.items()))

# 3. steps
set_seed(0)
learn = lrc_learner(dls, n_classes=info.n_classes, base=DEFAULTS['base'], depth=DEFAULTS['depth'],
                    )   # MoCo's queue and momentum: lrc_learner's defaults
learn.model.to(dev)
from fastai.callback.core import Callback, CancelFitException
class StepTimer(Callback):
    order = 99
    def __init__(self, warm, n): self.warm, self.n, self.times, self.i = warm, n, [], 0
    def before_batch(self): self.t = time.perf_counter()
    def after_batch(self):
        if self.training:
            if dev.type == 'cuda': torch.cuda.synchronize()
            if self.i >= self.warm: self.times.append(time.perf_counter() - self.t)
            self.i += 1
            if len(self.times) >= self.n: raise CancelFitException()
timer = StepTimer(3, a.steps)
with learn.no_bar(), learn.no_logging(): learn.fit(100, 1e-3, cbs=[timer])
step = float(np.median(timer.times))
steps_per_epoch = len(dls.train)
print(f'pre-training step (bs {DEFAULTS["pretrain_bs"]}, base {DEFAULTS["base"]}, MoCo + LRC): median {step:.3f} s '
      f'over {len(timer.times)} steps; epoch of {steps_per_epoch} steps ~ {step*steps_per_epoch:.1f} s')

# 4. shares
bs = DEFAULTS['pretrain_bs']
run_steps = a.epochs * steps_per_epoch
one_off_cached = timings['warm cache'] / run_steps
on_the_fly = per_slice * bs
print(f'superpixels with the cache: {one_off_cached*1e3:.2f} ms per step (loader build {timings["warm cache"]:.2f} s over '
      f'{run_steps} steps) = {100*one_off_cached/step:.2f}% of a step (upper bound: the build also slices the volumes)')
print(f'superpixels computed once without a cache: {timings["no cache"]/run_steps*1e3:.2f} ms per step = '
      f'{100*timings["no cache"]/run_steps/step:.2f}% of a step')
print(f'superpixels computed on the fly per batch (no precomputation): {on_the_fly*1e3:.1f} ms per step = {100*on_the_fly/step:.1f}% of a step')
print(f'epoch time: {step*steps_per_epoch:.1f} s with precomputed/cached regions, '
      f'{(step+on_the_fly)*steps_per_epoch:.1f} s computing them per batch')
