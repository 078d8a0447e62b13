"Contract tests for the contrastive / consistency losses: DenseInfoNCE, info_nce, cross_pseudo_loss, sigmoid_rampup."
import math, os, subprocess, sys, textwrap, zlib
import pytest, torch
import torch.nn.functional as F
from semicontrast.core import IGNORE_INDEX
from semicontrast.losses import DenseInfoNCE, info_nce, cross_pseudo_loss, sigmoid_rampup

torch.set_num_threads(1)


# ---------- slow, obviously-correct reference: one anchor at a time ----------
def ref_dense_per_anchor(q, k, valid=None, temperature=0.1):
    "List of per-anchor losses -log(exp(s_ii) / sum_j exp(s_ij)) over valid anchors i and valid keys j."
    B, D, H, W = q.shape
    locs = [(b, y, x) for b in range(B) for y in range(H) for x in range(W)
            if valid is None or bool(valid[b, y, x])]
    def unit(v): return v / v.norm().clamp_min(1e-6)
    keys = torch.stack([unit(k[b, :, y, x]) for (b, y, x) in locs]) if locs else None
    out = []
    for i, (b, y, x) in enumerate(locs):
        a = unit(q[b, :, y, x])
        logits = (keys @ a) / temperature                     # this anchor against every valid key
        out.append(torch.logsumexp(logits, 0) - logits[i])
    return out

def ref_dense(q, k, valid=None, temperature=0.1):
    per = ref_dense_per_anchor(q, k, valid, temperature)
    return sum(per) / len(per) if per else None


SHAPES = [(1, 3, 4, 5), (2, 8, 5, 7), (3, 4, 6, 6)]       # N = 20, 70, 108

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("temperature", [0.05, 0.1, 0.5])
@pytest.mark.parametrize("mask", ["none", "random", "image_off"])
def test_dense_exact_matches_reference(shape, temperature, mask):
    g = torch.Generator().manual_seed(zlib.crc32(repr((shape, temperature, mask)).encode()))
    B, D, H, W = shape
    q0 = torch.randn(shape, generator=g, dtype=torch.float64)
    k0 = (q0 + 0.7 * torch.randn(shape, generator=g, dtype=torch.float64))
    valid = None
    if mask == "random": valid = torch.rand(B, H, W, generator=g) > 0.4
    if mask == "image_off":
        valid = torch.rand(B, H, W, generator=g) > 0.3
        valid[0] = False                                   # a fully invalid image
        if B == 1: valid[0, 0, :3] = True
    N = B * H * W
    for chunk in (13, 16, N + 5):                           # smaller than N and not dividing it, and one chunk
        assert chunk >= N or N % chunk != 0
        q, k = q0.float().requires_grad_(), k0.float().requires_grad_()
        loss = DenseInfoNCE(temperature, chunk_size=chunk)(q, k, valid)
        gq, gk = torch.autograd.grad(loss, (q, k))
        qr, kr = q0.clone().requires_grad_(), k0.clone().requires_grad_()
        ref = ref_dense(qr, kr, valid, temperature)
        rq, rk = torch.autograd.grad(ref, (qr, kr))
        assert loss.dtype == torch.float32
        assert torch.allclose(loss.double(), ref, rtol=1e-5, atol=1e-5), (loss.item(), ref.item())
        assert torch.allclose(gq.double(), rq, rtol=1e-4, atol=1e-6)
        assert torch.allclose(gk.double(), rk, rtol=1e-4, atol=1e-6)
        if valid is not None:                              # invalid locations get no gradient at all
            assert gq.abs().sum(1)[~valid].sum() == 0 and gk.abs().sum(1)[~valid].sum() == 0


def test_dense_equals_cross_entropy_all_valid():
    torch.manual_seed(1)
    q, k = torch.randn(2, 16, 6, 5), torch.randn(2, 16, 6, 5)
    qf = F.normalize(q.movedim(1, -1).reshape(-1, 16), dim=1, eps=1e-6)
    kf = F.normalize(k.movedim(1, -1).reshape(-1, 16), dim=1, eps=1e-6)
    want = F.cross_entropy(qf @ kf.T / 0.1, torch.arange(60))
    got = DenseInfoNCE(0.1, chunk_size=11)(q, k)
    assert torch.allclose(got, want, atol=1e-5)


def test_dense_all_invalid_is_zero_with_graph():
    q = torch.randn(2, 4, 3, 3, requires_grad=True); k = torch.randn(2, 4, 3, 3, requires_grad=True)
    for fn in (DenseInfoNCE(), DenseInfoNCE(max_anchors=4)):
        loss = fn(q, k, torch.zeros(2, 3, 3, dtype=torch.bool))
        assert loss.item() == 0 and loss.requires_grad
        loss.backward()
        assert q.grad.abs().sum() == 0


def test_dense_gradcheck_float64():
    torch.manual_seed(2)
    q = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    k = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    valid = torch.ones(2, 2, 3, dtype=torch.bool); valid[1, 0, 1] = False
    fn = DenseInfoNCE(0.5, chunk_size=5)
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b), (q, k))
    assert torch.autograd.gradcheck(lambda a, b: fn(a, b, valid), (q, k))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_dense_half_inputs_give_fp32(dtype):
    torch.manual_seed(3)
    q, k = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    qh, kh = q.to(dtype).requires_grad_(), k.to(dtype).requires_grad_()
    loss = DenseInfoNCE(0.1, chunk_size=9)(qh, kh)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    ref = ref_dense(qh.detach().double(), kh.detach().double(), None, 0.1)
    assert abs(loss.item() - ref.item()) < 1e-4
    loss.backward()
    assert qh.grad.dtype == dtype and torch.isfinite(qh.grad.float()).all()


def test_dense_sampled_is_unbiased_and_uses_valid_anchors():
    torch.manual_seed(4)
    B, D, H, W = 2, 8, 5, 6
    q = torch.randn(B, D, H, W, requires_grad=True); k = (q.detach() + torch.randn(B, D, H, W)).requires_grad_()
    valid = torch.rand(B, H, W) > 0.3
    per = torch.stack(ref_dense_per_anchor(q.detach().double(), k.detach().double(), valid, 0.1))
    exact = per.mean().item()
    M, m, calls = per.numel(), 6, 600
    fn = DenseInfoNCE(0.1, max_anchors=m, chunk_size=8)
    vals = []
    for _ in range(calls):
        loss = fn(q, k, valid)
        gq, gk = torch.autograd.grad(loss, (q, k))
        used = gq.abs().sum(1) > 0
        assert used.sum() == m and bool(valid[used].all())          # exactly m anchors, all valid
        assert gk.abs().sum(1)[~valid].sum() == 0                   # invalid keys untouched
        vals.append(loss.item())
    # standard error of a mean of m draws without replacement, averaged over calls
    se = per.std().item() / math.sqrt(m * calls) * math.sqrt((M - m) / (M - 1))
    assert abs(sum(vals) / calls - exact) < 5 * se + 1e-6, (sum(vals) / calls, exact, se)
    # max_anchors >= number of valid anchors -> the exact loss
    assert abs(DenseInfoNCE(0.1, max_anchors=10_000)(q, k, valid).item() - exact) < 1e-5


def test_dense_sampled_uses_global_rng():
    q, k = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    fn = DenseInfoNCE(0.1, max_anchors=3)
    torch.manual_seed(7); a = fn(q, k)
    torch.manual_seed(7); b = fn(q, k)
    assert a.item() == b.item()


def test_dense_errors():
    fn = DenseInfoNCE()
    q = torch.randn(2, 4, 3, 3)
    with pytest.raises(ValueError, match="k shape"): fn(q, torch.randn(2, 4, 3, 4))
    with pytest.raises(ValueError, match="q must be"): fn(torch.randn(4, 3, 3), torch.randn(4, 3, 3))
    with pytest.raises(ValueError, match="valid shape"): fn(q, q, torch.ones(2, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="temperature"): DenseInfoNCE(temperature=0)
    with pytest.raises(ValueError, match="max_anchors"): DenseInfoNCE(max_anchors=0)
    with pytest.raises(ValueError, match="chunk_size"): DenseInfoNCE(chunk_size=0)


_MEM_SCRIPT = textwrap.dedent("""
    import resource, time, torch
    from semicontrast.losses import DenseInfoNCE
    torch.manual_seed(0)
    q = torch.randn(8, 64, 64, 64, requires_grad=True); k = torch.randn(8, 64, 64, 64, requires_grad=True)
    fn = DenseInfoNCE(0.1)                         # default chunk_size 4096
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    loss = fn(q, k); loss.backward()
    dt = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{(after - before) * 1024} {dt:.2f} {loss.item():.6f}")
""")

def test_dense_memory_n32768():
    "Exact forward+backward at N = 8*64*64 = 32768 (the N x N fp32 matrix alone would be 4 GiB) stays under 2 GiB."
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    out = subprocess.run([sys.executable, "-c", _MEM_SCRIPT], capture_output=True, text=True, env=env, timeout=900)
    assert out.returncode == 0, out.stderr
    inc, secs, loss = out.stdout.split()
    print(f"\nDenseInfoNCE exact N=32768: peak RSS increase {int(inc) / 2**20:.0f} MiB, {float(secs):.1f} s, loss {loss}")
    assert int(inc) < 2 * 2**30
    # random unit vectors in D=64: s_ij ~ N(0, 1/(D t^2)), so the loss is about log N + 1/(2 D t^2) = 11.18
    assert abs(float(loss) - (math.log(32768) + 1 / (2 * 64 * 0.1 ** 2))) < 0.1


# ---------- global InfoNCE ----------
def test_info_nce_matches_reference():
    torch.manual_seed(5)
    q = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    k = torch.randn(5, 7, dtype=torch.float64, requires_grad=True)
    for t in (0.05, 0.1, 0.5):
        got = info_nce(q, k, t)
        qn, kn = [v / v.norm(dim=1, keepdim=True) for v in (q, k)]
        ref = sum(-torch.log(torch.exp(qn[b] @ kn[b] / t) / sum(torch.exp(qn[b] @ kn[c] / t) for c in range(5)))
                  for b in range(5)) / 5
        assert torch.allclose(got, ref)
        g1 = torch.autograd.grad(got, (q, k)); g2 = torch.autograd.grad(ref, (q, k))
        assert all(torch.allclose(a, b) for a, b in zip(g1, g2))
    assert info_nce(q.half(), k.bfloat16()).dtype == torch.float32
    with pytest.raises(ValueError, match="k shape"): info_nce(q, k[:, :3])
    with pytest.raises(ValueError, match="q must be"): info_nce(q[0], k[0])


# ---------- cross pseudo-supervision ----------
def _hand_ce(logits, target, ignore_index=IGNORE_INDEX):
    "mean over non-ignored pixels of -log softmax(logits)[target], written with loops"
    B, K, H, W = logits.shape
    tot, n = 0., 0
    for b in range(B):
        for y in range(H):
            for x in range(W):
                t = int(target[b, y, x])
                if t == ignore_index: continue
                z = logits[b, :, y, x]
                tot = tot + (torch.log(torch.exp(z).sum()) - z[t]); n += 1
    return tot / n if n else None

def test_cross_pseudo_loss_hand_computation():
    torch.manual_seed(6)
    za = torch.randn(2, 3, 4, 5, dtype=torch.float64); zb = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    want = _hand_ce(za, zb.argmax(1)) + _hand_ce(zb, za.argmax(1))
    got = cross_pseudo_loss(za, zb)
    assert torch.allclose(got, want)
    assert cross_pseudo_loss(za.half(), zb.half()).dtype == torch.float32
    with pytest.raises(ValueError, match="logits_b shape"): cross_pseudo_loss(za, zb[:, :2])


def test_cross_pseudo_no_gradient_through_argmax():
    torch.manual_seed(7)
    za = torch.randn(2, 4, 6, 6, requires_grad=True); zb = torch.randn(2, 4, 6, 6, requires_grad=True)
    loss = cross_pseudo_loss(za, zb)
    ga, gb = torch.autograd.grad(loss, (za, zb))
    # same as CE against detached targets
    ya, yb = za.detach().argmax(1), zb.detach().argmax(1)
    ref = F.cross_entropy(za, yb) + F.cross_entropy(zb, ya)
    ra, rb = torch.autograd.grad(ref, (za, zb))
    assert torch.allclose(loss, ref) and torch.allclose(ga, ra) and torch.allclose(gb, rb)
    # the gradient wrt logits_b comes only from the second term CE(logits_b, argmax a)
    only_b, = torch.autograd.grad(F.cross_entropy(zb, ya), zb)
    assert torch.allclose(gb, only_b)
    # ... and the gradient wrt logits_a only from the first
    only_a, = torch.autograd.grad(F.cross_entropy(za, yb), za)
    assert torch.allclose(ga, only_a)


def test_cross_pseudo_threshold():
    za = torch.zeros(1, 2, 1, 3); zb = torch.zeros(1, 2, 1, 3)
    za[0, 1, 0] = torch.tensor([5., 0.1, -5.])              # confident 1, unsure, confident 0
    zb[0, 0, 0] = torch.tensor([0.2, 4., 0.])               # unsure, confident 0, unsure
    t = 0.8
    pa, pb = za.softmax(1).max(1).values, zb.softmax(1).max(1).values
    ya = torch.where(pa < t, IGNORE_INDEX, za.argmax(1)); yb = torch.where(pb < t, IGNORE_INDEX, zb.argmax(1))
    assert ya.tolist() == [[[1, IGNORE_INDEX, 0]]] and yb.tolist() == [[[IGNORE_INDEX, 0, IGNORE_INDEX]]]
    want = _hand_ce(za, yb) + _hand_ce(zb, ya)
    assert torch.allclose(cross_pseudo_loss(za, zb, threshold=t), want)
    # nothing confident: exact zero, graph kept
    za.requires_grad_()
    zero = cross_pseudo_loss(za, zb, threshold=0.999999)
    assert zero.item() == 0 and zero.requires_grad
    # threshold=None and threshold=0 are plain CPS
    assert torch.allclose(cross_pseudo_loss(za, zb, threshold=0.0), cross_pseudo_loss(za, zb))
    # custom ignore index
    assert torch.allclose(cross_pseudo_loss(za, zb, threshold=t, ignore_index=-1), want)


# ---------- ramp ----------
def test_sigmoid_rampup():
    T = 200
    assert sigmoid_rampup(0, T) == pytest.approx(math.exp(-5))
    assert sigmoid_rampup(T / 2, T) == pytest.approx(math.exp(-5 * 0.25))
    assert sigmoid_rampup(T, T) == 1.0 and sigmoid_rampup(10 * T, T) == 1.0
    assert sigmoid_rampup(5, 0) == 1.0 and sigmoid_rampup(0, 0) == 1.0
    vals = [sigmoid_rampup(t, T) for t in range(0, T + 1, 10)]
    assert all(a < b for a, b in zip(vals, vals[1:])) and isinstance(vals[0], float)
