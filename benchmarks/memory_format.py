"""Step time of the U-Net with its tensors in NCHW ('contiguous') and NHWC ('channels_last') memory order.

`--memory-format channels_last` (the default) adds fastai's `ChannelsLast` callback: the network's weights are stored
channels last, so every convolution takes the NHWC path. The arithmetic is the same; only the order of the summations,
hence the last bits of the floats, differs. This script times one optimiser step (forward, cross-entropy, backward, SGD)
of two copies of the same network, one in each memory order, alternating step by step so that both see the same
machine, and prints the median of each and their ratio:

    python benchmarks/memory_format.py                          # SSL4MIS's U-Net at 64 x 48, batch 24, one thread
    python benchmarks/memory_format.py --size 256 256 --bs 8 --threads 2 --steps 10
    python benchmarks/memory_format.py --device cuda --size 256 256 --bs 24 --steps 50

Measured on this project's 2-core CPU (torch 2.13; no GPU was available to measure), contiguous / channels last:
- 64 x 48, batch 24, 1 thread, 30 steps: 450 / 403 ms (0.90x), with the documentation renderer on the other core;
- 256 x 256, batch 8, 2 threads, 10 steps: 7362 / 7091 ms (0.96x), sharing both cores with the renderer;
- the same two sizes with the same alternating measurement on a quieter machine, before this script existed:
  458 / 405 ms (0.88x) and 2527 / 2043 ms (0.81x).
"""
import argparse, copy, statistics, time
import torch, torch.nn.functional as F
from semicontrast.models import UNet, UPS

p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
p.add_argument('--size', type=int, nargs=2, default=(64, 48), metavar=('H', 'W'))
p.add_argument('--bs', type=int, default=24)
p.add_argument('--threads', type=int, default=1)
p.add_argument('--steps', type=int, default=30, help='timed steps per memory order (after 2 warm-up steps)')
p.add_argument('--up', default='bilinear_corners', choices=UPS)
p.add_argument('--device', default='cpu')
a = p.parse_args()
torch.set_num_threads(a.threads); torch.manual_seed(0)
dev = torch.device(a.device)
nets = {'contiguous': UNet(1, 3, up=a.up, head=3, init='pytorch').to(dev)}
nets['channels_last'] = copy.deepcopy(nets['contiguous']).to(memory_format=torch.channels_last)   # what fastai's ChannelsLast does
opts = {k: torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4) for k, m in nets.items()}
x, y = torch.randn(a.bs, 1, *a.size, device=dev), torch.randint(0, 3, (a.bs, *a.size), device=dev)

def step(k):
    sync = torch.cuda.synchronize if dev.type == 'cuda' else (lambda: None)
    sync(); t0 = time.perf_counter()
    loss = F.cross_entropy(nets[k](x), y); loss.backward(); opts[k].step(); opts[k].zero_grad()
    sync(); return time.perf_counter() - t0

times = {k: [] for k in nets}
for i in range(a.steps + 2):
    for k in nets: times[k].append(step(k))
med = {k: statistics.median(v[2:]) * 1e3 for k, v in times.items()}
print(f"U-Net (up={a.up}) {a.size[0]} x {a.size[1]}, batch {a.bs}, {a.threads} thread(s), {a.device}, {a.steps} steps each:")
for k, v in med.items(): print(f"  {k:14s} {v:8.1f} ms per step")
print(f"  channels_last / contiguous = {med['channels_last'] / med['contiguous']:.2f}x")
