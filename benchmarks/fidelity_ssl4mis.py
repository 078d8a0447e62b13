"""Side by side with SSL4MIS: its own training and test scripts against `semicontrast run`, same data, same budget.

The reference is not copied into this project: this script makes a scratch copy of SSL4MIS's code (the snapshot you
give with --reference, e.g. the anchors folder a workplace keeps), applies its CPU patch there, makes the few edits
listed in EDITS (each printed), runs it, and reads what its test script prints. Both sides read the same files: the
embedded hippocampus written in SSL4MIS's h5 layout by `semicontrast.data.write_acdc_h5`.

Each (method, seed) runs as a pair, the reference and ours at the same time on one thread each, so both see the same
machine. Per run it records the test Dice and HD95 per class (medpy's definitions on both sides: SSL4MIS's
`test_2D_fully.py`, ours `--metrics medpy`), the wall time (training + test) and the peak resident memory of the
processes (`os.wait4`). The table it prints is the one in the README.

    # an environment for the reference: its extra packages beside this project's torch (see the anchors' README)
    python benchmarks/fidelity_ssl4mis.py --reference PATH/ssl4mis --ref-python PATH/bin/python \\
        --work /tmp/fidelity --methods supervised cps meanteacher --seeds 0 1 2 --iters 2000
    python benchmarks/fidelity_ssl4mis.py --work /tmp/fidelity --table      # the table again from the saved runs

Data: the 65 embedded hippocampus volumes, each scaled to [0, 1] (as SSL4MIS's ACDC h5 files are stored), 20 test,
5 validation, 40 training patients in a shuffled list order; the first --labeled of them labelled.
"""
import argparse, dataclasses, json, os, re, shutil, subprocess, sys, threading, time
from pathlib import Path
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = dict(supervised='train_fully_supervised_2D.py', cps='train_cross_pseudo_supervision_2D.py',
               meanteacher='train_mean_teacher_2D.py')
EXP = dict(supervised='Fully_Supervised', cps='Cross_Pseudo_Supervision', meanteacher='Mean_Teacher')

def prepare_data(folder:Path, seed=0):
    "The embedded hippocampus in SSL4MIS's h5 layout: 40 training patients (list order shuffled), 5 validation, 20 test."
    from semicontrast.data import load_dataset, write_acdc_h5
    cases, info = load_dataset('hippocampus')
    scaled = [dataclasses.replace(c, image=((c.image - c.image.min()) / (c.image.max() - c.image.min())).astype(np.float32)) for c in cases]
    order = np.random.default_rng(seed).permutation(len(scaled))
    cs = [scaled[i] for i in order]
    write_acdc_h5(folder, train=cs[:40], val=cs[40:45], test=cs[45:], classes=info.class_names)
    return folder

def labelled_slices(data:Path, n:int) -> int:
    "How many lines of train_slices.list belong to the first `n` patients of train.list (what SSL4MIS's table holds for ACDC)."
    first = (data/'train.list').read_text().split()[:n]
    return sum(1 for l in (data/'train_slices.list').read_text().split() if l.rsplit('_slice_', 1)[0] in first)

# The edits made to the scratch copy after `cpu.patch`, besides its own: (file, old, new, why). Nothing else changes.
def edits(size, n_labelled, n_slices):
    h, w = size
    ed = []
    for f in ('train_fully_supervised_2D.py', 'train_cross_pseudo_supervision_2D.py'):
        ed.append((f, 'default=[128, 128]', f'default=[{h}, {w}]', 'patch size (cpu.patch sets 128; --patch_size cannot be given on the command line)'))
    for f in SCRIPTS.values():
        ed.append((f, '    return ref_dict[str(patiens_num)]', f'    return {{{n_labelled}: {n_slices}}}[patiens_num]',
                   f'patients_to_slices: {n_labelled} hippocampus patients are {n_slices} slices (its table knows ACDC and Prostate)'))
    ed += [('test_2D_fully_guarded.py', '(128 / x, 128 / y)', f'({h} / x, {w} / y)', 'test zoom to the patch size'),
           ('test_2D_fully_guarded.py', '(x / 128, y / 128)', f'(x / {h}, y / {w})', 'test zoom back'),
           # train_mean_teacher_2D.py is not in cpu.patch: the same CPU changes it makes to the other two scripts
           ('train_mean_teacher_2D.py', 'default=[256, 256]', f'default=[{h}, {w}]', 'patch size'),
           ('train_mean_teacher_2D.py', 'volume_batch, label_batch = volume_batch.cuda(), label_batch.cuda()', 'pass', 'CPU (as cpu.patch)'),
           ('train_mean_teacher_2D.py', 'num_workers=4', 'num_workers=0', 'no worker processes (as cpu.patch)'),
           ('train_mean_teacher_2D.py', 'num_workers=1', 'num_workers=0', 'no worker processes (as cpu.patch)'),
           ('train_mean_teacher_2D.py', 'transform=transforms.Compose([\n        RandomGenerator(args.patch_size)\n    ]))',
            'transform=RandomGenerator(args.patch_size))', 'one transform without torchvision (as cpu.patch)'),
           ('train_mean_teacher_2D.py', 'from torchvision import transforms\n', '', 'as cpu.patch'),
           ('train_mean_teacher_2D.py', 'from torchvision.utils import make_grid\n', '', 'as cpu.patch'),
           ('train_mean_teacher_2D.py', 'model, classes=num_classes)', 'model, classes=num_classes, patch_size=args.patch_size)', 'validation at the patch size (as cpu.patch)'),
           ('train_mean_teacher_2D.py', '    torch.cuda.manual_seed(args.seed)\n', '    torch.cuda.manual_seed(args.seed)\n    torch.set_num_threads(1)\n', 'one thread (as cpu.patch)')]
    return ed

def prepare_reference(reference:Path, code:Path, size, n_labelled, n_slices):
    "A scratch copy of SSL4MIS's code with its CPU patch, the test guard and `edits` applied."
    shutil.copytree(reference/'code', code)
    subprocess.run(['patch', '-p1', '-s', '-i', str(reference/'cpu.patch')], cwd=code, check=True)
    shutil.copy(code/'test_2D_fully.py', code/'test_2D_fully_guarded.py')
    subprocess.run(['patch', '-s', 'test_2D_fully_guarded.py', str(reference/'test_guard.patch')], cwd=code, check=True)
    for f, old, new, why in edits(size, n_labelled, n_slices):
        src = (code/f).read_text()
        if src.count(old) < 1: raise SystemExit(f'edit not applicable to {f}: {old!r} not found (another SSL4MIS commit?)')
        (code/f).write_text(src.replace(old, new))
        print(f'  edit {f}: {why}')
    if '.cuda()' in (code/'train_mean_teacher_2D.py').read_text(): raise SystemExit('train_mean_teacher_2D.py still calls .cuda()')

def _launch(cmd, cwd, log, env=None):
    return subprocess.Popen(cmd, cwd=cwd, stdout=open(log, 'w'), stderr=subprocess.STDOUT, env=env)

def _wait(p):
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    return ru.ru_maxrss / 2**20   # KiB -> GiB

def _watch(p, t0:float) -> dict:
    "Wait for `p` in a thread, so that its end is seen when it happens: the dict gets 'rss' (GB) and 'wall' (seconds since t0)."
    box = {}
    def wait(): box['rss'] = _wait(p); box['wall'] = time.time() - t0
    box['thread'] = threading.Thread(target=wait, daemon=True); box['thread'].start()
    return box

def run_pair(a, method, seed, data, code, n_slices):
    """The reference (train then test) and ours, started together; each side's metrics, wall time and peak RSS.

    Each side's result is kept in its own file (ref.json, ours.json) in the run's folder and is not run again. With
    --rerun-ours, ours runs again alone beside the kept reference result (after a change to ours): its wall time is then
    measured alone, and the pair says so (`paired: false`)."""
    out = a.work/'runs'/f'{method}_s{seed}'
    out.mkdir(parents=True, exist_ok=True)
    _split_old_pair(out)
    if a.rerun_ours and (out/'ours.json').exists(): (out/'ours.json').unlink()
    exp = f'hippo/{EXP[method]}_s{seed}'
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    ref_train = [str(a.ref_python), SCRIPTS[method], '--root_path', str(data), '--exp', exp, '--max_iterations', str(a.iters),
                 '--labeled_num', str(a.labeled), '--num_classes', '3', '--seed', str(seed)]
    ours = [sys.executable, '-m', 'semicontrast.cli', 'run', method, '--data', str(data), '--format', 'acdc_h5', '--protocol', 'ssl4mis-acdc',
            '--labeled', str(a.labeled), '--iters', str(a.iters), '--size', *map(str, a.size), '--seed', str(seed),
            '--out', str(out/'ours'), '--quiet', '--overwrite', '--device', 'cpu']
    need_ref, need_ours = not (out/'ref.json').exists(), not (out/'ours.json').exists()
    t0 = time.time()
    po = _launch(ours, ROOT, out/'ours.log', env) if need_ours else None
    ow = _watch(po, t0) if need_ours else None   # ours' own end time, even when it ends while the reference still runs
    if need_ref:
        pr = _launch(ref_train, code, out/'ref_train.log', env)
        rss_rt = _wait(pr); t_rt = time.time() - t0
        if pr.returncode: raise SystemExit(f'reference training failed: see {out/"ref_train.log"}')
        model_dir = a.work/'model'/(f'{exp}_{a.labeled}' + ('' if method == 'cps' else '_labeled'))/'unet'
        if method == 'cps':   # the test script reads {exp}_{n}_labeled/unet/unet_best_model.pth; CPS saves model1's best as unet_best_model1.pth
            tdir = a.work/'model'/f'{exp}_{a.labeled}_labeled'/'unet'; tdir.mkdir(parents=True, exist_ok=True)
            shutil.copy(model_dir/'unet_best_model1.pth', tdir/'unet_best_model.pth')
        t1 = time.time()
        pt = _launch([str(a.ref_python), 'test_2D_fully_guarded.py', '--root_path', str(data), '--exp', exp, '--model', 'unet',
                      '--num_classes', '3', '--labeled_num', str(a.labeled)], code, out/'ref_test.log', env)
        rss_rtest = _wait(pt); t_rtest = time.time() - t1
        if pt.returncode: raise SystemExit(f'reference test failed: see {out/"ref_test.log"}')
        ref = _ref_metrics((out/'ref_test.log').read_text())
        (out/'ref.json').write_text(json.dumps(dict(dice=ref['dice'], hd95=ref['hd95'], wall_s=t_rt + t_rtest, train_s=t_rt,
                                                    peak_rss_gb=max(rss_rt, rss_rtest), command=' '.join(ref_train[1:])), indent=1))
    if need_ours:
        ow['thread'].join(); rss_o, t_o = ow['rss'], ow['wall']
        if po.returncode: raise SystemExit(f'semicontrast failed: see {out/"ours.log"}')
        res = json.loads((out/'ours'/'result.json').read_text())
        pc = res['per_class']
        names = [n for n in pc]   # anterior, posterior: mean over the test volumes
        ours_m = {k: [float(pc[n][k]['mean']) for n in names] for k in ('dice', 'hd95')}
        (out/'ours.json').write_text(json.dumps(dict(dice=ours_m['dice'], hd95=ours_m['hd95'], wall_s=t_o, peak_rss_gb=rss_o, classes=names,
                                                     metrics=res.get('settings', {}).get('metrics'), paired=need_ref,
                                                     command=' '.join(ours[3:])), indent=1))
    ref, mine = json.loads((out/'ref.json').read_text()), json.loads((out/'ours.json').read_text())
    pair = dict(method=method, seed=seed, iters=a.iters, size=list(a.size), labeled=a.labeled, labelled_slices=n_slices,
                classes=mine.get('classes'), ref=ref, ours=mine, paired=bool(mine.get('paired', True)),
                commands=dict(ref_train=ref.get('command'), ours=mine.get('command')))
    (out/'pair.json').write_text(json.dumps(pair, indent=1))
    return pair

def _split_old_pair(out:Path):
    "A run folder from before ref.json / ours.json: split its pair.json into the two (both sides ran together)."
    if (out/'pair.json').exists() and not (out/'ref.json').exists():
        p = json.loads((out/'pair.json').read_text())
        (out/'ref.json').write_text(json.dumps(dict(p['ref'], command=p['commands']['ref_train']), indent=1))
        (out/'ours.json').write_text(json.dumps(dict(p['ours'], classes=p['classes'], paired=True, command=p['commands']['ours']), indent=1))

def _ref_metrics(log:str):
    "The per-class [dice, hd95, asd] SSL4MIS's test script prints as a list of arrays (classes 1 and 2; its class 3 is empty here)."
    rows = re.findall(r'array\(\[([^\]]*)\]\)', log)
    if len(rows) < 2: raise SystemExit('could not read the reference test output')
    vals = [[float(x) for x in r.split(',')] for r in rows[-3:]]
    return dict(dice=[vals[0][0], vals[1][0]], hd95=[vals[0][1], vals[1][1]])

def table(pairs):
    "Markdown: per method and side, mean ± sd over seeds; then ours minus the reference against the seed sd."
    lines = ['| method | side | seeds | anterior Dice | posterior Dice | mean Dice | mean HD95 (vox) | wall per seed (min) | peak RSS per seed (GB) |',
             '|---|---|---|---|---|---|---|---|---|']
    verdicts = []
    for m in SCRIPTS:
        ps = sorted((p for p in pairs if p['method'] == m), key=lambda p: p['seed'])
        if not ps: continue
        stats = {}
        for side in ('ref', 'ours'):
            d = np.array([p[side]['dice'] for p in ps]); hd = np.array([p[side]['hd95'] for p in ps])
            md = d.mean(1); wall = np.array([p[side]['wall_s'] for p in ps]) / 60; rss = np.array([p[side]['peak_rss_gb'] for p in ps])
            f = lambda x: f'{x.mean():.3f} ± {x.std(ddof=1):.3f}' if len(x) > 1 else f'{x.mean():.3f}'
            lines.append(f"| {m} | {'SSL4MIS' if side == 'ref' else 'semicontrast'} | {len(ps)} | {f(d[:, 0])} | {f(d[:, 1])} | {f(md)} | "
                         f"{hd.mean(1).mean():.2f} | {' / '.join(f'{w:.1f}' + ('' if side == 'ref' or p.get('paired', True) else '*') for w, p in zip(wall, ps))} | {' / '.join(f'{r:.2f}' for r in rss)} |")
            stats[side] = dict(md=md, wall=wall, rss=rss)
        diff = stats['ours']['md'].mean() - stats['ref']['md'].mean()
        sd = stats['ref']['md'].std(ddof=1) if len(ps) > 1 else float('nan')
        verdicts.append(f"- {m}: mean Dice ours − reference {diff:+.3f} (reference seed sd {sd:.3f}: "
                        f"{'within one sd or better' if diff >= -sd else 'NOT within one sd'}); wall per seed "
                        f"{' / '.join(f'{x:.2f}x' for x in stats['ours']['wall'] / stats['ref']['wall'])}; peak RSS per seed "
                        f"{' / '.join(f'{x:.2f}x' for x in stats['ours']['rss'] / stats['ref']['rss'])}")
    alone = ["* ours ran alone beside the kept reference result (--rerun-ours); every other wall time was measured with both sides "
             "running at once, one thread each"] if any(not p.get('paired', True) for p in pairs) else []
    return '\n'.join(lines + [''] + verdicts + alone)

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split('\n\n', 1)[1])
    ap.add_argument('--reference', type=Path, help="SSL4MIS snapshot folder holding code/, cpu.patch and test_guard.patch")
    ap.add_argument('--ref-python', type=Path, help='a Python that has torch, h5py, scipy, medpy, tensorboardX, opencv and SimpleITK')
    ap.add_argument('--work', type=Path, required=True, help='scratch folder: data, the reference copy, runs (kept: rerunning skips finished pairs)')
    ap.add_argument('--methods', nargs='+', default=list(SCRIPTS), choices=list(SCRIPTS))
    ap.add_argument('--seeds', nargs='+', type=int, default=[0, 1, 2])
    ap.add_argument('--iters', type=int, default=2000)
    ap.add_argument('--size', nargs=2, type=int, default=[64, 48], metavar=('H', 'W'))
    ap.add_argument('--labeled', type=int, default=4, help='labelled patients (the first of train.list)')
    ap.add_argument('--rerun-ours', action='store_true', help="run ours again (alone) beside the kept reference results, e.g. after a change to ours")
    ap.add_argument('--table', action='store_true', help='print the table of the finished pairs in --work and stop')
    a = ap.parse_args()
    a.work = a.work.resolve()
    if a.table:
        print(table([json.loads(p.read_text()) for p in sorted(a.work.glob('runs/*/pair.json'))])); return
    if not (a.reference and a.ref_python): ap.error('--reference and --ref-python are needed to run the pairs')
    data, code = a.work/'data', a.work/'code'
    if not (data/'train.list').exists(): prepare_data(data)
    n_slices = labelled_slices(data, a.labeled)
    if not code.exists(): prepare_reference(a.reference.resolve(), code, a.size, a.labeled, n_slices)
    pairs = []
    for seed in a.seeds:   # seed by seed, so that an interrupted benchmark has every method at the first seeds
        for method in a.methods:
            p = run_pair(a, method, seed, data, code, n_slices); pairs.append(p)
            print(f"{method} seed {seed}: reference Dice {np.mean(p['ref']['dice']):.3f} ({p['ref']['wall_s'] / 60:.1f} min, {p['ref']['peak_rss_gb']:.2f} GB); "
                  f"ours {np.mean(p['ours']['dice']):.3f} ({p['ours']['wall_s'] / 60:.1f} min, {p['ours']['peak_rss_gb']:.2f} GB)", flush=True)
    print(table(pairs))

if __name__ == '__main__':
    main()
