"""Progress written to a file (not a terminal): plain lines, no carriage returns, for training, test evaluation and predict."""
import subprocess, sys


def test_a_run_logged_to_a_file_has_plain_progress_lines(tmp_path):
    out = tmp_path/'run'
    r = subprocess.run([sys.executable, '-m', 'semicontrast', 'run', 'supervised', '--data', 'phantom', '--smoke', '--out', str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    text = r.stdout + r.stderr
    assert '\r' not in text
    assert 'train: epoch 1/' in r.stdout and 'fg_dice' in r.stdout   # each validation: losses and metrics by name
    assert 'test volumes: ' in r.stdout and ' done' in r.stdout     # the test evaluation shows progress too
    import nibabel as nib, numpy as np
    from semicontrast.data import synthetic_phantoms
    scans = tmp_path/'scans'; scans.mkdir()
    for i, c in enumerate(synthetic_phantoms(n=2, seed=7)):
        nib.save(nib.Nifti1Image(c.image.transpose(2, 1, 0).astype(np.float32), np.eye(4)), str(scans/f's{i}.nii.gz'))
    p = subprocess.run([sys.executable, '-m', 'semicontrast', 'predict', '--model', str(out), '--input', str(scans), '--out', str(tmp_path/'p')],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert '\r' not in p.stdout + p.stderr and 'images: 2/2 done' in p.stdout
