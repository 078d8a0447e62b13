"""`semicontrast predict` never loses a scan: an --out on the inputs is refused even with --overwrite, one unreadable
image does not stop the others, --skip-existing finishes a batch, nnU-Net's CASE_XXXX files are grouped and named as
nnU-Net names them, a missing GPU is one line; and the command line answers --version, `python -m` and a bare call."""
import subprocess, sys
from pathlib import Path
import nibabel as nib
import numpy as np
import pytest
import torch
from semicontrast import __version__
from semicontrast.cli import main
from semicontrast.inference import input_groups
from semicontrast.loaders import Preprocess
from semicontrast.models import UNet, save_model


def _model(path:Path, in_ch:int=1) -> Path:
    "An untrained two-class U-Net in a model file (predict's behaviour, not its accuracy, is under test)."
    torch.manual_seed(0)
    return save_model(UNet(in_ch, 2, base=4, depth=2), path, Preprocess(size=(16, 16), spatial='pad', intensity='zscore'),
                      ['background', 'organ'])

def _scan(path:Path, seed:int, shape=(14, 12, 3)) -> Path:
    data = np.random.default_rng(seed).normal(size=shape).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 2.0, 1.0])), str(path))
    return path

def _digest(folder:Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_out_on_the_inputs_is_refused_even_with_overwrite(tmp_path, capsys):
    scans = tmp_path/'scans'; scans.mkdir()
    for i in range(3): _scan(scans/f'case{i}.nii.gz', i)
    before = _digest(scans)
    m = _model(tmp_path/'model.pth')
    rc = main(['predict', '--model', str(m), '--input', str(scans), '--out', str(scans), '--overwrite', '--quiet'])
    err = capsys.readouterr().err
    assert rc == 2 and 'would replace the input scan' in err and 'Traceback' not in err and len(err.strip().splitlines()) == 1
    assert _digest(scans) == before   # every scan as it was


def test_an_unreadable_image_does_not_stop_the_others_and_skip_existing_finishes(tmp_path, capsys):
    scans = tmp_path/'scans'; scans.mkdir()
    for i in range(5): _scan(scans/f'case{i}.nii.gz', i)
    (scans/'case2.nii.gz').write_bytes(b'not a nifti file')   # a corrupt one in the middle
    m = _model(tmp_path/'model.pth')
    rc = main(['predict', '--model', str(m), '--input', str(scans), '--out', str(tmp_path/'out'), '--quiet'])
    cap = capsys.readouterr()
    assert rc == 2 and 'case2.nii.gz' in cap.err and 'Traceback' not in cap.err and '1 image(s) could not be predicted' in cap.err
    assert sorted(p.name for p in (tmp_path/'out').iterdir()) == [f'case{i}.nii.gz' for i in (0, 1, 3, 4)]
    written = _digest(tmp_path/'out')
    _scan(scans/'case2.nii.gz', 2)   # repaired: the rerun predicts it alone and keeps the others byte for byte
    rc = main(['predict', '--model', str(m), '--input', str(scans), '--out', str(tmp_path/'out'), '--quiet', '--skip-existing'])
    cap = capsys.readouterr()
    assert rc == 0 and 'predicted 1 image(s)' in cap.out
    assert {k: v for k, v in _digest(tmp_path/'out').items() if k != 'case2.nii.gz'} == written
    assert (tmp_path/'out'/'case2.nii.gz').exists()
    rc = main(['predict', '--model', str(m), '--input', str(scans), '--out', str(tmp_path/'out'), '--quiet'])   # neither flag
    assert rc == 2 and '--skip-existing' in capsys.readouterr().err
    rc = main(['predict', '--model', str(m), '--input', str(scans), '--out', str(tmp_path/'out'), '--quiet', '--skip-existing', '--overwrite'])
    assert rc == 2 and 'contradict' in capsys.readouterr().err


def test_nnunet_names_are_grouped_by_case(tmp_path, capsys):
    one = tmp_path/'one'; one.mkdir()
    for c in ('liver_001', 'liver_002'): _scan(one/f'{c}_0000.nii.gz', len(c))
    m1 = _model(tmp_path/'m1.pth')
    assert main(['predict', '--model', str(m1), '--input', str(one), '--out', str(tmp_path/'p1'), '--quiet']) == 0
    assert sorted(p.name for p in (tmp_path/'p1').iterdir()) == ['liver_001.nii.gz', 'liver_002.nii.gz']   # as nnU-Net writes them
    two = tmp_path/'two'; two.mkdir()
    for ch in range(2): _scan(two/f'brain_007_{ch:04d}.nii.gz', ch)
    m2 = _model(tmp_path/'m2.pth', in_ch=2)
    assert main(['predict', '--model', str(m2), '--input', str(two), '--out', str(tmp_path/'p2'), '--quiet']) == 0
    out = nib.load(str(tmp_path/'p2'/'brain_007.nii.gz'))
    assert [p.name for p in (tmp_path/'p2').iterdir()] == ['brain_007.nii.gz'] and out.shape == (14, 12, 3)
    capsys.readouterr()
    # names that only look like nnU-Net's (numbered scans, not channels 0..C-1) stay one case per file
    files = [Path(f'scan_{i:04d}.nii.gz') for i in (1, 2)]
    assert input_groups(files, 1) == [('scan_0001', [files[0]]), ('scan_0002', [files[1]])]
    files = [Path('a_0000.nii.gz'), Path('a_0001.nii.gz'), Path('b_0000.nii.gz')]   # b lacks a channel: no grouping
    assert [s for s, _ in input_groups(files, 2)] == ['a_0000', 'a_0001', 'b_0000']


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the message on a machine without a GPU')
def test_predict_on_a_missing_gpu_is_one_line(tmp_path, capsys):
    _scan(tmp_path/'s.nii.gz', 0)
    rc = main(['predict', '--model', str(_model(tmp_path/'m.pth')), '--input', str(tmp_path/'s.nii.gz'), '--out', str(tmp_path/'o'),
               '--device', 'cuda', '--quiet'])
    err = capsys.readouterr().err
    assert rc == 2 and 'sees no CUDA GPU' in err and 'Traceback' not in err and not (tmp_path/'o').exists()


def test_version_module_and_bare_call(capsys):
    assert main(['--version']) == 0 and capsys.readouterr().out.strip() == f'semicontrast {__version__}'
    assert main([]) == 2 and capsys.readouterr().out.startswith('usage: semicontrast')
    r = subprocess.run([sys.executable, '-m', 'semicontrast', 'protocols'], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and 'ssl4mis-acdc' in r.stdout


def test_every_subcommand_help_shows_an_example():
    from semicontrast.cli import build_parser
    from semicontrast.method import METHODS
    p = build_parser()
    subs = next(a for a in p._actions if a.dest == 'command').choices
    helps = [p.format_help()] + [s.format_help() for s in subs.values()]
    runs = next(a for a in subs['run']._actions if a.dest == 'method').choices
    helps += [runs[m].format_help() for m in METHODS]
    assert all('example: semicontrast ' in h for h in helps), [h.splitlines()[0] for h in helps if 'example:' not in h]


def test_nnunet_raw_names_a_dataset(tmp_path, monkeypatch):
    "--data Dataset042_Phantom, or its id 42, is looked up in $nnUNet_raw as nnU-Net does; without it the error says so."
    import json
    from semicontrast.data import load_dataset, synthetic_phantoms
    from semicontrast.core import DataError
    root = tmp_path/'raw'/'Dataset042_Phantom'; (root/'imagesTr').mkdir(parents=True); (root/'labelsTr').mkdir()
    for i, c in enumerate(synthetic_phantoms(n=3, shape=(4, 16, 16), n_classes=2, seed=1)):
        nib.save(nib.Nifti1Image(c.image.transpose(2, 1, 0).astype(np.float32), np.eye(4)), str(root/'imagesTr'/f'ph_{i:03d}_0000.nii.gz'))
        nib.save(nib.Nifti1Image(c.label.transpose(2, 1, 0).astype(np.uint8), np.eye(4)), str(root/'labelsTr'/f'ph_{i:03d}.nii.gz'))
    (root/'dataset.json').write_text(json.dumps({'channel_names': {'0': 'MRI'}, 'labels': {'background': 0, 'organ': 1},
                                                 'numTraining': 3, 'file_ending': '.nii.gz'}))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv('nnUNet_raw', raising=False)
    with pytest.raises(DataError, match='nnUNet_raw'): load_dataset('Dataset042_Phantom')
    monkeypatch.setenv('nnUNet_raw', str(tmp_path/'raw'))
    for name in ('Dataset042_Phantom', '42', '042'):
        cases, info = load_dataset(name)
        assert (len(cases), info.format, Path(info.path)) == (3, 'nnunet', root)
    with pytest.raises(DataError, match='neither a built-in'): load_dataset('Dataset043_Other')


def test_exported_torchscript_equals_predict_on_real_mri(tmp_path, capsys):
    "semicontrast export: the TorchScript file, given a real hippocampus volume, returns the label map semicontrast predict writes."
    from semicontrast.data import load_hippocampus
    vol = load_hippocampus()[3]
    torch.manual_seed(0)
    m = save_model(UNet(1, 3, base=8, depth=3), tmp_path/'m.pth', Preprocess(size=(48, 48), spatial='pad', intensity='zscore'),
                   ['background', 'anterior', 'posterior'])
    nib.save(nib.Nifti1Image(vol.image.transpose(2, 1, 0), np.diag([*vol.spacing[::-1], 1.0])), str(tmp_path/'hippo.nii.gz'))
    assert main(['predict', '--model', str(m), '--input', str(tmp_path/'hippo.nii.gz'), '--out', str(tmp_path/'p'), '--quiet']) == 0
    assert main(['export', '--model', str(m), '--out', str(tmp_path/'m.pt')]) == 0
    assert main(['export', '--model', str(m), '--out', str(tmp_path/'m.pt')]) == 2   # exists: refused without --overwrite
    written = np.asarray(nib.load(str(tmp_path/'p'/'hippo.nii.gz')).dataobj).transpose(2, 1, 0)
    ts = torch.jit.load(str(tmp_path/'m.pt'))
    from semicontrast.data import read_nifti
    raw = read_nifti(tmp_path/'hippo.nii.gz').image   # what predict reads: RAS, (Z, Y, X)
    got = ts(torch.from_numpy(raw)).numpy()
    assert len(np.unique(written)) == 3   # every class occurs: the comparison is not between two empty maps
    assert got.shape == written.shape and np.array_equal(got, written)


@pytest.mark.parametrize('prep', [Preprocess(size=(32, 64), spatial='pad', intensity='zscore'),
                                  Preprocess(size=(40, 40), spatial='resize', intensity='minmax')], ids=['pad-and-crop', 'resize'])
def test_exported_torchscript_and_onnx_equal_predict_volume(prep, tmp_path):
    "The exported file alone (TorchScript, and ONNX run by onnxruntime) gives predict_volume's class map on real volumes, padded, cropped or resized."
    import onnxruntime as ort
    from semicontrast.data import load_hippocampus
    from semicontrast.inference import export_model, load_model
    from semicontrast.metrics import predict_volume
    torch.manual_seed(1)
    f = save_model(UNet(1, 3, base=8, depth=3), tmp_path/'m.pth', prep, ['background', 'anterior', 'posterior'])
    net, _ = load_model(f)
    ts = torch.jit.load(str(export_model(f, tmp_path/'m.pt')))
    ox = ort.InferenceSession(str(export_model(f, tmp_path/'m.onnx', 'onnx')))
    for vol in load_hippocampus()[:3]:
        ref = predict_volume(net, vol, prep)
        assert np.array_equal(ts(torch.from_numpy(vol.image)).numpy(), ref)
        got = ox.run(None, {'volume': vol.image[None].astype(np.float32)})[0]
        assert got.shape == ref.shape and (got == ref).mean() > 0.999   # ONNX Runtime's kernels may round a borderline voxel apart
