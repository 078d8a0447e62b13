#!/usr/bin/env python
"""Quarto pre-render step of the documentation site (nbs/_quarto.yml: `pre-render: ../tools/quarto_tutorials.py`).

`nbdev_docs` processes nbs/ into _proc/ and runs `quarto render` there, so ../tutorials is outside the Quarto
project. Quarto runs this script in the project folder before rendering; it writes every tutorials/*.ipynb
(names starting with '_' or '.' skipped), processed by nbdev exactly like the library notebooks (directives,
hidden cells, show_doc), into <project>/tutorials/. Quarto then re-reads the project's files and renders them.
Run by hand it does nothing unless the current folder holds a _quarto.yml.
"""
import shutil, sys
from pathlib import Path

def main(project:Path=Path.cwd()) -> int:
    src_dir = Path(__file__).resolve().parent.parent/'tutorials'
    if not (project/'_quarto.yml').exists():
        print(f'quarto_tutorials: {project} is not a Quarto project (no _quarto.yml); nothing done.', file=sys.stderr)
        return 0
    dst_dir = project/'tutorials'
    if dst_dir.resolve() == src_dir.resolve(): return 0
    shutil.rmtree(dst_dir, ignore_errors=True); dst_dir.mkdir(parents=True)
    try:
        from nbdev.serve_drv import main as process      # nbdev's per-notebook docs processing (as for nbs/)
        from nbdev.processors import FilterDefaults
    except ImportError: process = None
    nbs = sorted(p for p in src_dir.glob('*.ipynb') if not p.name.startswith(('_', '.')))
    for src in nbs:
        if process: process((src, dst_dir/src.name, FilterDefaults))
        else: shutil.copy2(src, dst_dir/src.name)
    for f in src_dir.iterdir():                          # images and data files the tutorials link to
        if f.is_file() and f.suffix != '.ipynb' and not f.name.startswith(('_', '.')): shutil.copy2(f, dst_dir/f.name)
    print(f'quarto_tutorials: {len(nbs)} tutorial(s) -> {dst_dir}')
    return 0

if __name__ == '__main__': sys.exit(main())
