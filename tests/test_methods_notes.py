"""The methods notes are the project's own: nothing cites a file outside the repository, and every '§' cited exists."""
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOTES = ROOT/'nbs'/'90_methods_notes.ipynb'
SOURCES = [p for d in ('nbs', 'semicontrast', 'tutorials', 'benchmarks', 'tools') for p in (ROOT/d).rglob('*')
           if p.suffix in ('.py', '.ipynb', '.md')] + [ROOT/'README.md']
CITE = re.compile(r'methods notes[ ,(]*(?:\(|\[)?\s*§\s*(\d+(?:\.\d+)?)')

def _headings() -> set:
    text = '\n'.join(''.join(c['source']) for c in json.loads(NOTES.read_text())['cells'] if c['cell_type'] == 'markdown')
    return set(re.findall(r'^#+ §(\d+(?:\.\d+)?)\b', text, flags=re.M))

def test_nothing_cites_the_design_notes_outside_the_repository():
    bad = [str(p.relative_to(ROOT)) for p in SOURCES if 'METHODS.md' in p.read_text(errors='ignore')]
    assert not bad, bad

def test_every_cited_section_exists():
    heads = _headings()
    assert {'1', '1.2', '2.3', '3.3', '4.2', '4.3', '5', '6'} <= heads, heads
    cited = {(str(p.relative_to(ROOT)), s) for p in SOURCES for s in CITE.findall(p.read_text(errors='ignore'))}
    assert len(cited) > 10
    missing = sorted((f, s) for f, s in cited if s not in heads)
    assert not missing, missing

def test_the_citation_check_can_fail():
    assert CITE.findall('see the methods notes §9.9 and methods notes §1.2') == ['9.9', '1.2']
    assert '9.9' not in _headings()
