"""Does resident memory grow with the number of iterations? Prints the RSS before every validation of one run.

A leak that grows with the iterations shows as a rising column; a flat one after the first validations means the
memory a run needs is set by its data and batch, not by its length. Usage (CPU, one thread, a few minutes):

    OMP_NUM_THREADS=1 python benchmarks/memory_growth.py supervised --iters 400 --size 64 --bs 12
    OMP_NUM_THREADS=1 python benchmarks/memory_growth.py cps --iters 400 --size 64 --bs 12 --data PATH --protocol ssl4mis-acdc

Everything after the method is passed to `semicontrast run` as it is, except that --valid-every is set to --iters / 8
(unless given) and the output goes to a temporary folder.
"""
import argparse, sys, tempfile, time
import psutil
import fastai.learner
from semicontrast.cli import main

ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
ap.add_argument('method')
ap.add_argument('--iters', type=int, default=400)
ap.add_argument('--size', type=int, default=64, help='slices zoomed to SIZE x SIZE')
a, rest = ap.parse_known_args()

marks, validate = [], fastai.learner.Learner._do_epoch_validate
def _spy(self, *args, **kw):   # the resident memory just before each validation pass
    marks.append((int(self.train_iter), psutil.Process().memory_info().rss / 2**30))
    return validate(self, *args, **kw)
fastai.learner.Learner._do_epoch_validate = _spy

argv = ['run', a.method, '--iters', str(a.iters), '--size', str(a.size), str(a.size), '--quiet', '--overwrite', *rest]
if '--valid-every' not in rest: argv += ['--valid-every', str(max(1, a.iters // 8))]
t0 = time.time()
with tempfile.TemporaryDirectory() as out:
    rc = main(argv + ['--out', out])
if rc: sys.exit(rc)
print(f"semicontrast {' '.join(argv)}")
print(f"{'iteration':>10} {'RSS GB':>8}")
for it, gb in marks: print(f'{it:>10} {gb:8.3f}')
later = [gb for _, gb in marks[2:]] or [gb for _, gb in marks]
print(f'peak {max(gb for _, gb in marks):.3f} GB; growth after the second validation {1024 * (max(later) - later[0]):+.0f} MB; '
      f'wall {time.time() - t0:.0f} s')
