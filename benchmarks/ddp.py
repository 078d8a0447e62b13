"""Data-parallel training under torchrun: torch's DistributedDataParallel ('ddp', the default of `semicontrast run`)
against one all-reduce of every gradient after the backward pass ('allreduce'), and both against one process.

It launches `torchrun --standalone --nproc_per_node N benchmarks/ddp.py --worker ...` for each setting and prints,
per method, the mean training step time (after one warm-up step; data loading and validation excluded) and the
slices per second of the whole group (W processes x their batch / step time). On a CPU machine the processes share
its cores: one process gets `--threads` threads, each of W processes gets threads / W, so every setting uses the same
cores (gloo backend). On GPUs each process gets one GPU (nccl backend).

    python benchmarks/ddp.py [--size 128] [--steps 5] [--threads 2] [--methods supervised ideal mscs]
"""
import argparse, json, os, subprocess, sys, time

p = argparse.ArgumentParser()
p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS)
p.add_argument('--mode', default='ddp', choices=('ddp', 'allreduce', 'none'))
p.add_argument('--methods', nargs='+', default=['supervised', 'ideal', 'mscs'])
p.add_argument('--size', type=int, default=128, help='slices zoomed to size x size')
p.add_argument('--bs', type=int, default=12, help='labelled (and unlabelled) slices per batch and process')
p.add_argument('--steps', type=int, default=5, help='timed steps per setting (after one warm-up step)')
p.add_argument('--threads', type=int, default=2, help='CPU threads in all (split between the processes)')
p.add_argument('--nprocs', type=int, nargs='+', default=[2], help='process counts to compare with one process')
a = p.parse_args()


def worker():
    import numpy as np, torch
    from fastai.callback.core import Callback, CancelValidException
    from semicontrast.core import set_seed
    from semicontrast.data import load_dataset
    from semicontrast.splits import make_split
    from semicontrast.loaders import Preprocess, supervised_dls, two_stream_dls, iteration_dl
    from semicontrast.learner import supervised_learner, ideal_learner, mscs_learner
    from semicontrast.distributed import init_from_env, distrib_fit, rank, world_size
    init_from_env()
    dev = torch.device(f"cuda:{os.environ.get('LOCAL_RANK', 0)}") if torch.cuda.is_available() else torch.device('cpu')
    set_seed(0)
    cases, info = load_dataset('hippocampus')
    split = make_split(cases, n_labelled=4, n_valid=1, n_test=1, seed=0)
    parts = {k: split.cases(cases, k) for k in ('labelled', 'unlabelled', 'valid')}
    prep = Preprocess(size=(a.size, a.size), spatial='resize')
    K = info.n_classes

    class StepTimer(Callback):
        order = 99
        def before_fit(self): self.times = []
        def before_validate(self): raise CancelValidException()
        def before_batch(self):
            if dev.type == 'cuda': torch.cuda.synchronize()
            self.t0 = time.perf_counter()
        def after_batch(self):
            if dev.type == 'cuda': torch.cuda.synchronize()
            self.times.append(time.perf_counter() - self.t0)

    two = lambda: two_stream_dls(parts['labelled'], parts['unlabelled'], parts['valid'], prep, a.bs, a.bs, augment=False, seed=0, device=dev)
    make = {'supervised': lambda: supervised_learner(supervised_dls(parts['labelled'], parts['valid'], prep, bs=a.bs, augment=False,
                                                                    device=dev), K),
            'ideal': lambda: ideal_learner(two(), K, stage='finetune'),
            'mscs': lambda: mscs_learner(two(), K)}
    out = {}
    for m in a.methods:
        learn = make[m]()
        learn.model.to(dev)
        learn.dls.loaders[0] = iteration_dl(learn.dls.train, (a.steps + 1) * world_size())   # every process: steps + 1 batches
        timer = StepTimer()
        with learn.no_bar(), learn.no_logging():
            if a.mode == 'none': learn.fit(1, 1e-3, cbs=[timer])
            else:
                with distrib_fit(learn, a.mode): learn.fit(1, 1e-3, cbs=[timer])
        t = float(np.mean(timer.times[1:]))
        out[m] = dict(step_s=t, slices_per_s=world_size() * len(learn.dls.train.one_batch()[0]) / t)
    if rank() == 0: print('RESULT ' + json.dumps(out), flush=True)


def launch(n, mode):
    threads = max(1, a.threads // n)
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    args = ['--worker', '--mode', mode, '--size', str(a.size), '--bs', str(a.bs), '--steps', str(a.steps), '--methods', *a.methods]
    cmd = ([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', str(n), __file__] if n > 1
           else [sys.executable, __file__])
    r = subprocess.run(cmd + args, capture_output=True, text=True, env=env)
    line = next((l for l in r.stdout.splitlines() if l.startswith('RESULT ')), None)
    if line is None: sys.exit(f'{n} process(es), {mode}: no result\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}')
    return json.loads(line[7:]), threads


if a.worker: worker()
else:
    import torch
    print(f'torch {torch.__version__}; {"GPUs: " + str(torch.cuda.device_count()) if torch.cuda.is_available() else "CPU, gloo"}; '
          f'slices {a.size} x {a.size}, batch {a.bs} (+ {a.bs} unlabelled for two-stream methods) per process, {a.steps} timed steps')
    rows = [('1 process', *launch(1, 'none'))]
    for n in a.nprocs:
        for mode in ('ddp', 'allreduce'): rows.append((f'{n} processes, {mode}', *launch(n, mode)))
    base = rows[0][1]
    print(f"\n{'setting':28} {'threads each':>12} " + ' '.join(f'{m + " s/step":>17} {"slices/s":>9} {"x 1 proc":>8}' for m in a.methods))
    for name, res, th in rows:
        print(f'{name:28} {th:12d} ' + ' '.join(f"{res[m]['step_s']:17.3f} {res[m]['slices_per_s']:9.1f} "
                                             f"{res[m]['slices_per_s'] / base[m]['slices_per_s']:8.2f}" for m in a.methods))
