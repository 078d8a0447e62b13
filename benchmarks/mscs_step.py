"""What MSCS's terms cost: the pixel-level SupCon with bounded sampling against the naive all-pixels form, and one
training step of supervised / MSCS's cross-supervision ablation (mscs_cps) / full MSCS at the CLI's default size.

Prints measured figures:
  1. `pixel_contrast_loss` (M pixels per class and stream, forward + backward) at growing image sizes: time and peak
     memory stay flat because the anchor count is bounded by classes x M, not by pixels;
  2. the naive form (SupCon over every pixel of the batch) at the same sizes until it passes `--naive-cap-gib`
     (its N x N similarity matrix is estimated first and not run past the cap);
  3. one optimiser step (forward, backward, Adam) of the supervised U-Net, of mscs_cps and of MSCS on the embedded
     hippocampus data at the CLI's default size (bs 16 labelled + 16 unlabelled, base 16), over `--steps` steps.

    OMP_NUM_THREADS=2 python benchmarks/mscs_step.py [--steps 10] [--device cpu]
"""
import argparse, time
import torch
from semicontrast.core import set_seed
from semicontrast.data import load_dataset
from semicontrast.splits import make_split
from semicontrast.loaders import auto_preprocess
from semicontrast.settings import DEFAULTS
from semicontrast.loaders import supervised_dls, two_stream_dls
from semicontrast.learner import supervised_learner, mscs_learner
from semicontrast.losses import pixel_contrast_loss, supcon_loss
from fastai.callback.core import Callback, CancelFitException

p = argparse.ArgumentParser()
p.add_argument('--steps', type=int, default=10, help='timed training steps (after 2 warm-up steps)')
p.add_argument('--device', default='cpu')
p.add_argument('--naive-cap-gib', type=float, default=2.0, help='do not run the naive SupCon past this estimated memory')
a = p.parse_args()
dev = torch.device(a.device)
print(f'torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}')


def peak(fn):
    "(seconds, peak MiB) of fn(); the peak is measured on a GPU only (NaN on the CPU)."
    if dev.type == 'cuda':
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        t = time.perf_counter(); fn(); torch.cuda.synchronize()
        return time.perf_counter() - t, torch.cuda.max_memory_allocated() / 2**20
    t = time.perf_counter(); fn()
    return time.perf_counter() - t, float('nan')


# 1-2. pixel contrast, bounded vs naive
B, D, K, M = 16, 64, 3, 256
print(f'\npixel-level SupCon, B={B} per stream, D={D}, {K} classes, M={M} pixels per class and stream (fwd + bwd)')
print(f'{"H x W":>10} {"pixels":>9} {"sampled s":>10} {"anchors":>8} {"naive s":>9} {"naive N x N GiB":>16}')
for side in (8, 16, 32, 64, 128, 256):
    g = torch.Generator().manual_seed(side)
    ea = torch.randn(B, D, side, side, generator=g).to(dev).requires_grad_()
    eb = torch.randn(B, D, side, side, generator=g).to(dev).requires_grad_()
    la = torch.randint(0, K, (B, side, side), generator=g).to(dev)
    lb = torch.randint(0, K, (B, side, side), generator=g).to(dev)
    def bounded(): pixel_contrast_loss(ea, eb, la, lb, max_per_class=M).backward()
    bounded()                                                     # warm-up
    t_s, _ = peak(bounded)
    n = 2 * B * side * side
    gib = 3 * n * n * 4 / 2**30                                   # sim, log-prob and mask-sized temporaries, fp32
    if gib <= a.naive_cap_gib:
        z = torch.cat([ea, eb]).permute(0, 2, 3, 1).reshape(-1, D); y = torch.cat([la, lb]).reshape(-1)
        t_n, _ = peak(lambda: supcon_loss(z, y).backward())
        naive = f'{t_n:9.3f}'
    else: naive = f'{"not run":>9}'
    print(f'{side:>4} x {side:<4} {n:>9} {t_s:>10.4f} {2 * K * M:>8} {naive} {gib:>16.2f}')

# 3. one training step at the CLI's default size
cfg = DEFAULTS
cases, info = load_dataset('hippocampus')
split = make_split(cases, n_labelled=cfg['labeled'], n_valid=cfg['valid'], n_test=cfg['test'], seed=0)
parts = {q: split.cases(cases, q) for q in ('labelled', 'unlabelled', 'valid')}
prep = auto_preprocess(cases, intensity=info.intensity)
print(f'\none training step on the embedded data, model input {tuple(prep.size)}, bs {cfg["bs"]} (+ {cfg["bs"]} unlabelled), base {cfg["base"]}')


class _Timer(Callback):
    "Time from before_batch to after_step of each training batch; stop the fit after n batches."
    order = 100
    def __init__(self, n): self.n, self.times = n, []
    def before_batch(self):
        if dev.type == 'cuda': torch.cuda.synchronize()
        self.t = time.perf_counter()
    def after_step(self):
        if dev.type == 'cuda': torch.cuda.synchronize()
        self.times.append(time.perf_counter() - self.t)
        if len(self.times) >= self.n: raise CancelFitException()


def step_time(learn):
    "Mean seconds per training step (forward, losses, backward, Adam) over `--steps` steps after 2 warm-up steps."
    timer = _Timer(2 + a.steps)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3, cbs=[timer])
    return sum(timer.times[2:]) / a.steps


set_seed(0)
sup = supervised_learner(supervised_dls(parts['labelled'], parts['valid'], prep, bs=cfg['bs'], device=dev), info.n_classes,
                         base=cfg['base'])
two = lambda: two_stream_dls(parts['labelled'], parts['unlabelled'], parts['valid'], prep, bs_labelled=cfg['bs'],
                             bs_unlabelled=cfg['bs'], augment=False, device=dev)
rows = [('supervised (16 labelled slices)', step_time(sup))]
for name, kw in (('mscs_cps (16 + 16, two perturbed streams)', dict(patch_weight=0, pixel_weight=0)), ('mscs (mscs_cps + patch + pixel)', {})):
    set_seed(0)
    rows.append((name, step_time(mscs_learner(two(), info.n_classes, base=cfg['base'], **kw))))
for name, s in rows: print(f'  {name:<34} {1000 * s:8.1f} ms per step  ({s / rows[0][1]:.1f} x supervised)')
