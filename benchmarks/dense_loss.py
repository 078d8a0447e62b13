"""Benchmark DenseInfoNCE (exact and sampled) against the naive full-matrix InfoNCE.

For every (B, H=W) the forward+backward time and peak memory are measured, each row in a fresh subprocess:
CPU peak = increase of ru_maxrss during the measured call; CUDA peak = torch.cuda.max_memory_allocated minus the
memory held before the call. The naive loss forms the N x N similarity matrix (N = B*H*W) and keeps it, its
softmax and its gradient alive; it is reported as 'out of memory' without running when 3 * N^2 * 4 bytes exceed
--cap-gib, so the benchmark cannot take the machine down.

    OMP_NUM_THREADS=2 python benchmarks/dense_loss.py [--device cpu|cuda] [--cap-gib 4] [--dim 64]
"""
import argparse, json, os, resource, subprocess, sys, time

ROWS = [(2, 16), (8, 16), (4, 32), (8, 32), (4, 64), (8, 64)]      # (B, H=W)


def naive_bytes(n): return 3 * n * n * 4                              # logits + softmax + grad, fp32


def measure(mode, B, H, D, device, max_anchors, chunk):
    "Run one forward+backward in this process; return (seconds, peak bytes, loss)."
    import torch
    import torch.nn.functional as F
    from semicontrast.losses import DenseInfoNCE
    torch.manual_seed(0)
    q = torch.randn(B, D, H, H, device=device, requires_grad=True)
    k = torch.randn(B, D, H, H, device=device, requires_grad=True)
    def run():
        if mode == 'naive':
            qf = F.normalize(q.movedim(1, -1).reshape(-1, D), dim=1, eps=1e-6)
            kf = F.normalize(k.movedim(1, -1).reshape(-1, D), dim=1, eps=1e-6)
            loss = F.cross_entropy(qf @ kf.T / 0.1, torch.arange(qf.shape[0], device=device))
        else:
            loss = DenseInfoNCE(0.1, max_anchors=max_anchors if mode == 'sampled' else None, chunk_size=chunk)(q, k)
        loss.backward()
        return loss.item()
    if device == 'cuda':
        run(); q.grad = k.grad = None                                  # warm-up (kernels, allocator)
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
        t0 = time.perf_counter(); loss = run(); torch.cuda.synchronize(); dt = time.perf_counter() - t0
        return dt, torch.cuda.max_memory_allocated() - base, loss
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter(); loss = run(); dt = time.perf_counter() - t0
    return dt, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024, loss


def fmt_bytes(b): return f"{b / 2**20:9.0f} MiB" if b < 2**30 else f"{b / 2**30:9.2f} GiB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--device', default=None, help="cpu or cuda (default: cuda if available)")
    ap.add_argument('--cap-gib', type=float, default=4.0, help="skip naive rows whose N x N matrices exceed this")
    ap.add_argument('--dim', type=int, default=64)
    ap.add_argument('--max-anchors', type=int, default=1024)
    ap.add_argument('--chunk-size', type=int, default=4096)
    ap.add_argument('--child', default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:                                                        # measuring subprocess
        mode, B, H = a.child.split(',')
        print(json.dumps(measure(mode, int(B), int(H), a.dim, a.device, a.max_anchors, a.chunk_size)))
        return
    if a.device is None:
        import torch
        a.device = 'cuda' if torch.cuda.is_available() else 'cpu'
    print(f"device={a.device} D={a.dim} temperature=0.1 chunk_size={a.chunk_size} max_anchors={a.max_anchors} "
          f"cap={a.cap_gib} GiB  OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")
    print(f"{'B':>2} {'H=W':>4} {'N':>6} {'NxN fp32':>13} | {'mode':<8} {'time (s)':>9} {'peak mem':>13} {'loss':>9}")
    print('-' * 78)
    for B, H in ROWS:
        N = B * H * H
        for mode in ('exact', 'sampled', 'naive'):
            head = f"{B:>2} {H:>4} {N:>6} {fmt_bytes(N * N * 4):>13} | {mode:<8}"
            if mode == 'naive' and naive_bytes(N) > a.cap_gib * 2**30:
                print(f"{head} {'out of memory (> cap, not run)':>33}", flush=True); continue
            cmd = [sys.executable, __file__, '--child', f"{mode},{B},{H}", '--device', a.device, '--dim', str(a.dim),
                   '--max-anchors', str(a.max_anchors), '--chunk-size', str(a.chunk_size)]
            out = subprocess.run(cmd, capture_output=True, text=True)
            if out.returncode != 0:
                print(f"{head} failed: {out.stderr.strip().splitlines()[-1:]}", flush=True); continue
            dt, peak, loss = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{head} {dt:>9.3f} {fmt_bytes(peak):>13} {loss:>9.4f}", flush=True)


if __name__ == '__main__':
    main()
