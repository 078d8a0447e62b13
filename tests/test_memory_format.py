"""`--memory-format`: channels last (fastai's `ChannelsLast`, the default) or contiguous; the same arithmetic either way."""
import copy
import torch, torch.nn.functional as F
from fastai.callback.channelslast import ChannelsLast
import semicontrast.method as method
from semicontrast.cli import main
from semicontrast.models import UNet


def _run(tmp_path, monkeypatch, *extra):
    seen = []
    class Spy(ChannelsLast):
        def before_fit(self): super().before_fit(); seen.append(self.learn.model)
    monkeypatch.setattr(method, 'ChannelsLast', Spy)
    assert main(['run', 'supervised', '--data', 'phantom', '--smoke', '--quiet', '--overwrite', '--out', str(tmp_path/'run'), *extra]) == 0
    return seen


def test_channels_last_by_default(tmp_path, monkeypatch, capsys):
    seen = _run(tmp_path, monkeypatch)
    assert len(seen) == 1
    convs = [p for p in seen[0].parameters() if p.ndim == 4]
    assert convs and all(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous() for p in convs if p.shape[1] > 1 and p.shape[-1] > 1)


def test_contiguous_on_request(tmp_path, monkeypatch, capsys):
    assert _run(tmp_path, monkeypatch, '--memory-format', 'contiguous') == []


def test_same_arithmetic_in_either_order():
    torch.manual_seed(0)
    a = UNet(1, 3, up='bilinear_corners', head=3, init='pytorch', dropout=0.0)   # dropout masks are drawn in memory order
    b = copy.deepcopy(a).to(memory_format=torch.channels_last)
    x, y = torch.randn(4, 1, 32, 48), torch.randint(0, 3, (4, 32, 48))
    la, lb = F.cross_entropy(a(x), y), F.cross_entropy(b(x), y)
    la.backward(); lb.backward()
    assert torch.allclose(la, lb, atol=1e-5)
    for (n, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(pa.grad, pb.grad, atol=1e-4, rtol=1e-3), n
