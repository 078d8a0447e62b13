"""Why two-stream batches need separate BatchNorm statistics: test Dice of short runs on the embedded hippocampus data.

Seed-0 split (4 labelled patients), about 145 optimiser steps each, no augmentation. Each experiment is named on the
command line; every run prints its test Dice (per volume, mean) and its validation Dice per epoch. These are the
runs behind the figures in the `learner` notebook (issue 3's closing note):

    OMP_NUM_THREADS=1 python benchmarks/bn_mixed_batches.py sup ts_on_sup unet_mixed_same unet_mixed_4other \
        unet_on_mixed unet_mixed_splitbn ts_scratch ts_scratch_nocps_noperturb

Measured (2 shared CPU cores): sup 0.760, ts_on_sup 0.757, unet_mixed_same 0.739, unet_mixed_same_2ep 0.748,
unet_mixed_4other 0.429, unet_on_mixed 0.224, unet_mixed_splitbn 0.738. The plain-U-Net runs do not use
`TwoStreamConsistency`, so they reproduce as they were. ts_scratch (0.190) and ts_scratch_nocps_noperturb (0.232)
were measured before `split_bn` existed; `ideal_learner` now defaults to `split_bn=True`, so rerunning them measures
the fixed pipeline (pass split_bn=False in their kwargs to see the old behaviour).

What the single pass is not (measured with the current code, seed 0, 148 steps, 1 or 2 threads):

    OMP_NUM_THREADS=1 python benchmarks/bn_mixed_batches.py unet_on_mixed mixed_minmax mixed_squared mixed_ssl4net mixed_recalibrated

unet_on_mixed 0.171 (z-scored slices, the current padding), against sup 0.595 and unet_mixed_splitbn 0.611 with the
same code; the intensities scaled to [0, 1] instead (mixed_minmax) 0.134; SSL4MIS's squared Dice (mixed_squared)
0.206; SSL4MIS's U-Net, 3x3 classifier, bilinear decoder, PyTorch's initialisation (mixed_ssl4net) 0.234. Not the running statistics either: the unet_on_mixed network with its BatchNorm
statistics recomputed over the whole training epoch (mixed_recalibrated) scores 0.171 with the joint batches, 0.052
with their labelled halves and 0.212 with their unlabelled halves. The inputs of the two halves have the same mean
and spread (about -0.9 and 1.3). What fails is what the network learns when the labelled slices of 4 patients are
normalised beside slices of 34 others.
"""
import time, torch, sys
from semicontrast.core import set_seed
from semicontrast.data import load_dataset
from semicontrast.splits import make_split
from semicontrast.loaders import auto_preprocess
from semicontrast.loaders import supervised_dls, two_stream_dls
from semicontrast.learner import supervised_learner, ideal_learner, history
from semicontrast.metrics import evaluate
cases, info = load_dataset('hippocampus')
split = make_split(cases, n_labelled=4, n_valid=0.1, n_test=0.3, seed=0)
P = {p: split.cases(cases, p) for p in ('labelled','unlabelled','valid','test')}
prep = auto_preprocess(cases, intensity=info.intensity)
def report(tag, learn, t, pp=None):   # pp: the run's Preprocess when it is not `prep`
    ev = evaluate(learn.model, P['test'], pp or prep, info.n_classes)
    print(tag, 'test dice %.3f' % ev['mean']['dice'], 'valid', [round(r['fg_dice'], 3) for r in history(learn)], '%.0fs' % (time.time()-t), flush=True)
which = sys.argv[1:]
if 'sup' in which:
    set_seed(0); t=time.time()
    l = supervised_learner(supervised_dls(P['labelled'], P['valid'], prep, bs=16, augment=False, seed=0), n_classes=info.n_classes)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(16, 3e-3)
    report('supervised 144 steps', l, t)
for tag, kw in [('ts_scratch', {}), ('ts_scratch_nocps_noperturb', dict(cps_weight=0.0, perturb=0.0)), ('ts_scratch_noperturb', dict(perturb=0.0))]:
    if tag not in which: continue
    set_seed(0); t=time.time()
    dls = two_stream_dls(P['labelled'], P['unlabelled'], P['valid'], prep, 16, 16, augment=False, seed=0)
    l = ideal_learner(dls, n_classes=info.n_classes, **kw)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(2, 3e-3)
    report(tag + ' 148 steps', l, t)
if 'ts_on_sup' in which:   # two-stream model + callback, labelled-only batches
    set_seed(0); t=time.time()
    l = ideal_learner(supervised_dls(P['labelled'], P['valid'], prep, bs=16, augment=False, seed=0), n_classes=info.n_classes, cps_weight=0.0, perturb=0.0)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(16, 3e-3)
    report('two-stream model, labelled-only batches, 144 steps', l, t)
if 'unet_on_mixed' in which:   # plain UNet, mixed batches (unlabelled targets IGNORE)
    set_seed(0); t=time.time()
    dls = two_stream_dls(P['labelled'], P['unlabelled'], P['valid'], prep, 16, 16, augment=False, seed=0)
    l = supervised_learner(dls, n_classes=info.n_classes)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(2, 3e-3)
    report('UNet on mixed batches 148 steps', l, t)
if 'unet_mixed_same' in which:   # plain UNet, mixed batches whose unlabelled half is the labelled cases again
    set_seed(0); t=time.time()
    dls = two_stream_dls(P['labelled'], P['labelled'], P['valid'], prep, 16, 16, augment=False, seed=0)
    l = supervised_learner(dls, n_classes=info.n_classes)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(16, 3e-3)
    report('UNet on mixed batches (unlabelled = labelled cases) %d steps' % (16*len(dls.train)), l, t)
if 'unet_sup_bs32' in which:   # plain UNet, labelled-only, bs 32
    set_seed(0); t=time.time()
    l = supervised_learner(supervised_dls(P['labelled'], P['valid'], prep, bs=32, augment=False, seed=0), n_classes=info.n_classes)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(32, 3e-3)
    report('UNet sup bs32 %d steps' % (32*len(l.dls.train)), l, t)
if 'unet_mixed_4other' in which:
    set_seed(0); t=time.time()
    dls = two_stream_dls(P['labelled'], P['unlabelled'][:4], P['valid'], prep, 16, 16, augment=False, seed=0)
    l = supervised_learner(dls, n_classes=info.n_classes)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(16, 3e-3)
    report('UNet mixed, unlabelled = 4 other patients, %d steps' % (16*len(dls.train)), l, t)
if 'unet_mixed_same_2ep' in which:
    set_seed(0); t=time.time()
    dls = two_stream_dls(P['labelled'], P['labelled'] * 8, P['valid'], prep, 16, 16, augment=False, seed=0)
    l = supervised_learner(dls, n_classes=info.n_classes)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(2, 3e-3)
    report('UNet mixed, unlabelled = labelled x8, 2 epochs %d steps' % (2*len(dls.train)), l, t)
class SplitBN(torch.nn.Module):
    def __init__(self, m, k): super().__init__(); self.m, self.k = m, k
    def forward(self, x):
        if self.training and x.shape[0] > self.k: return torch.cat([self.m(x[:self.k]), self.m(x[self.k:])])
        return self.m(x)
if 'unet_mixed_splitbn' in which:
    from semicontrast.models import UNet
    set_seed(0); t=time.time()
    dls = two_stream_dls(P['labelled'], P['unlabelled'], P['valid'], prep, 16, 16, augment=False, seed=0)
    l = supervised_learner(dls, n_classes=info.n_classes, model=SplitBN(UNet(1, info.n_classes), 16))
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(2, 3e-3)
    report('UNet mixed 34 others, split BN, 148 steps', l, t)
from semicontrast.losses import DiceCELoss
for tag, kw, pp in [('mixed_minmax', {}, auto_preprocess(cases, intensity='minmax')),
                    ('mixed_squared', dict(loss_func=DiceCELoss(dice_form='squared')), prep),
                    ('mixed_ssl4net', dict(init='pytorch', head=3, up='bilinear_corners'), prep)]:
    if tag not in which: continue
    set_seed(0); t=time.time()
    dls = two_stream_dls(P['labelled'], P['unlabelled'], P['valid'], pp, 16, 16, augment=False, seed=0)
    l = supervised_learner(dls, n_classes=info.n_classes, **kw)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(2, 3e-3)
    report(tag, l, t, pp)
if 'mixed_recalibrated' in which:   # the single-pass network, its BatchNorm statistics recomputed from chosen batches
    import copy
    set_seed(0); t=time.time()
    dls = two_stream_dls(P['labelled'], P['unlabelled'], P['valid'], prep, 16, 16, augment=False, seed=0)
    l = supervised_learner(dls, n_classes=info.n_classes)
    with l.no_bar(), l.no_logging(): l.fit_one_cycle(2, 3e-3)
    report('UNet on mixed batches 148 steps', l, t)
    def recalibrated(batches):
        m = copy.deepcopy(l.model)
        for mod in m.modules():
            if isinstance(mod, torch.nn.BatchNorm2d): mod.reset_running_stats(); mod.momentum = None   # a plain average over the batches
        m.train()
        with torch.no_grad():
            for xb in batches: m(xb)
        return m.eval()
    xs = [b[0] for b in dls.train]
    for tag, bs in [('joint batches', xs), ('labelled halves', [x[:16] for x in xs]), ('unlabelled halves', [x[16:] for x in xs])]:
        ev = evaluate(recalibrated(bs), P['test'], prep, info.n_classes)
        print('statistics recomputed over the', tag, 'test dice %.3f' % ev['mean']['dice'], flush=True)
