"""The documentation pages: rendered offline by tools/render_docs.py, then opened in headless Chromium.

Renders a representative subset into a temporary folder (smoke size): the home page (nbs/index.ipynb), the
first library notebook (nbs/00_core.ipynb), a small fixture notebook written here (a plotly figure, math, hidden
and flagged cells), and tutorials/00_quickstart.ipynb when it exists. Each page must load from file:// with no
console error, no failed request and no request leaving the page's folder; show the notebook's prose and no
nbdev directive; and draw its plotly figures. Another test checks that the committed docs/ folder has a page for
every notebook. Browser tests need Debian's chromium at /usr/bin/chromium (`apt-get install -y chromium`); they
fail, never skip, without it. The python `playwright` package drives it; it never downloads a browser.
"""
import os, re, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT/'tools'))
import render_docs as rd  # noqa: E402  (tools/ is not a package)

CHROMIUM = Path(os.environ.get('SEMICONTRAST_CHROMIUM', '/usr/bin/chromium'))
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']
QUICKSTART = ROOT/'tutorials'/'00_quickstart.ipynb'
HIDDEN = 'this hidden cell must not be shown'

def _fixture_nb(path:Path) -> Path:
    "A small notebook with the things a page must get right: a plotly figure, math, directives, hidden and flagged cells."
    import base64, nbformat
    (path.parent/'pixel.png').write_bytes(base64.b64decode(   # a 1x1 PNG beside the notebook
        'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='))
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(cells=[
        md('# Plotly fixture page\n\n> A tiny page with one interactive figure.'),
        code('#| default_exp fixture_module'),
        code(f'#| hide\nprint("{HIDDEN}")'),
        md('The figure below is drawn by plotly in the browser without any network access.\n\n'
           'Inline math $x_i^2 + \\tau$ and display math:\n\n$$\\frac{\\exp(s_{ij}/\\tau)}{\\sum_k \\exp(s_{ik}/\\tau)}$$\n\n'
           'A local image ![local pixel](pixel.png) and <b>inline html</b> survive.'),
        code('#| export\nimport plotly.graph_objects as go\n'
             'fig = go.Figure(go.Scatter(y=[1, 3, 2], name="demo"))\nfig.update_layout(height=300)\nfig.show()'),
        code('#| slow\nprint("slow " + "cell ran")'),
        code('print("fixture " + "done")'),
    ], metadata={'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}})
    nbformat.write(nb, str(path))
    return path

def _render(out:Path, *notebooks, check=True, extra=()) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS='1')
    r = subprocess.run([sys.executable, str(ROOT/'tools'/'render_docs.py'), '--out', str(out), *extra,
                        '--only', *map(str, notebooks)], capture_output=True, text=True, env=env, timeout=1800)
    if check: assert r.returncode == 0, f'render_docs.py failed:\n{r.stdout}\n{r.stderr}'
    return r

def _pages() -> list[str]:
    return ['index', '00_core', 'fixture'] + (['00_quickstart'] if QUICKSTART.exists() else [])

@pytest.fixture(scope='module')
def site(tmp_path_factory) -> dict:
    "Render the subset once: name -> (html path, source notebook)."
    tmp = tmp_path_factory.mktemp('docs')
    fixture = _fixture_nb(tmp/'fixture.ipynb')
    src = {'index': ROOT/'nbs'/'index.ipynb', '00_core': ROOT/'nbs'/'00_core.ipynb', 'fixture': fixture,
           '00_quickstart': QUICKSTART}
    src = {k: src[k] for k in _pages()}
    out = tmp/'site'
    _render(out, *src.values())
    return {k: (out/f'{k}.html', v) for k, v in src.items()}

# ------------------------------------------------------------------------------------------ text checks
_plain = re.compile(r"^[A-Za-z][A-Za-z'(),.;:-]*$")

def _prose(nb_path:Path) -> str:
    "Six consecutive plain words from a markdown paragraph of the notebook (no markup, no math), to look for on the page."
    nb = rd.read_nb(nb_path)
    for c in nb.cells:
        if c.cell_type != 'markdown': continue
        for line in c.source.splitlines():
            if line.lstrip().startswith(('#', '>', '|', '<', '```', '$$')): continue
            words, run = line.split(), []
            for w in words:
                run = run + [w] if _plain.match(w) else []
                if len(run) == 6: return ' '.join(run)
    pytest.fail(f'no plain sentence found in the markdown of {nb_path}')

def _norm(s:str) -> str: return re.sub(r'\s+', ' ', s)

def test_fixture_page_static(site):
    page = site['fixture'][0].read_text(encoding='utf-8')
    assert HIDDEN not in page, 'a #| hide cell was rendered'
    assert 'fixture_module' not in page, 'the #| default_exp cell was rendered'
    assert not re.search(r'#\s*\|', re.sub(r'<script.*?</script>', '', page, flags=re.S)), \
        'an nbdev directive line (#| ...) shows on the page'
    assert 'slow cell ran' not in page, 'a #| slow cell was executed (tst_flags cells must be skipped, as in nbdev_test)'
    assert 'fixture done' in page
    assert 'src="assets/plotly-' in page, 'plotly.js should be written once to assets/ and referenced locally'
    assert page.count('class="sc-math"') >= 2, 'math was not rendered to SVG'
    assert '<b>inline html</b>' in page, 'inline HTML in markdown was mangled'
    assert 'alt="local pixel" src="data:image/png;base64,' in page, 'a local markdown image was not embedded'

@pytest.mark.parametrize('name', _pages())
def test_pages_load_nothing_remote(site, name):
    assert rd.remote_loads(site[name][0].read_text(encoding='utf-8')) == []

def test_index_lists_pages(site):
    page = site['index'][0].read_text(encoding='utf-8')
    for stem in ('00_core', 'fixture'): assert f'href="{stem}.html"' in page
    assert 'id="library"' in page and 'id="tutorials"' in page

def test_failed_notebook_fails_the_build(tmp_path):
    import nbformat
    bad = tmp_path/'broken_nb.ipynb'
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Broken'),
                                                   nbformat.v4.new_code_cell('raise ValueError("boom")')]), str(bad))
    r = _render(tmp_path/'out', bad, check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    assert 'broken_nb' in r.stderr and 'boom' in r.stderr
    assert not (tmp_path/'out'/'broken_nb.html').exists()

# ------------------------------------------------------------------------------------------ committed docs/
def test_committed_docs_has_every_page():
    docs, nbs = ROOT/'docs', [p for p in rd.discover(ROOT) if p.stem != 'index']
    fix = 'run `python tools/render_docs.py` (all pages, so that the index lists them) and commit docs/'
    missing = [p.relative_to(ROOT).as_posix() for p in nbs if not (docs/f'{p.stem}.html').exists()]
    if not (docs/'index.html').exists(): missing.append('nbs/index.ipynb')
    assert not missing, f'docs/ has no page for {", ".join(missing)}: {fix}'
    stems = {p.stem for p in nbs}
    orphans = sorted(h.name for h in docs.glob('*.html') if h.stem not in stems | {'index'})
    assert len(stems) == len(nbs), 'two notebooks in nbs/ and tutorials/ have the same name (their pages would collide)'
    assert not orphans, f'docs/ has pages whose notebook is gone: {", ".join(orphans)}: delete them and {fix}'
    index = (docs/'index.html').read_text(encoding='utf-8')
    unlisted = sorted(s for s in stems if f'href="{s}.html"' not in index)
    assert not unlisted, f'docs/index.html does not list {", ".join(unlisted)}: {fix}'

# ------------------------------------------------------------------------------------------ browser
@pytest.fixture(scope='module')
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f'Chromium not found at {CHROMIUM}: run `apt-get install -y chromium` (as root; tools/test.sh does '
                    'it) or set SEMICONTRAST_CHROMIUM to a Chromium binary. The browser tests never download one.', pytrace=False)
    try: from playwright.sync_api import sync_playwright
    except ImportError: pytest.fail('the python package playwright is missing: pip install -r requirements-dev.txt (it lists playwright)', pytrace=False)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()

def _open(browser, path:Path):
    "Open `path`; return the page and the problems seen: console errors, page errors, failed or non-local requests."
    page, problems = browser.new_page(viewport={'width': 1200, 'height': 900}), []
    page.on('console', lambda m: problems.append(f'console {m.type}: {m.text}') if m.type == 'error' else None)
    page.on('pageerror', lambda e: problems.append(f'page error: {e}'))
    page.on('requestfailed', lambda r: problems.append(f'request failed: {r.url} ({r.failure})'))
    page.on('request', lambda r: None if r.url.startswith(('file:', 'data:', 'blob:', 'about:'))
            else problems.append(f'network request: {r.url}'))
    resp = page.goto(path.as_uri(), wait_until='load')
    assert resp is not None and resp.ok, f'{path} did not load: {resp and resp.status}'
    return page, problems

@pytest.mark.browser
@pytest.mark.parametrize('name', _pages())
def test_page_in_browser(site, browser, name):
    html_path, nb_path = site[name]
    page, problems = _open(browser, html_path)
    try:
        text = _norm(page.inner_text('main'))
        title, _ = rd.title_summary(rd.read_nb(nb_path), name)
        assert _norm(title) in text, f'the title {title!r} is not on the page'
        prose = _prose(nb_path)
        assert prose in text, f'the sentence {prose!r} from the notebook is not on the page'
        assert not re.search(r'#\s*\|\s*(export|hide|default_exp)', text), 'nbdev directives show on the page'
        assert page.locator('nav.sc-nav a[href="index.html"]').count() >= 1, 'no navigation link back to the index'
        n_figs = page.locator('.plotly-graph-div').count()
        if name == 'fixture': assert n_figs >= 1, 'the fixture figure is missing'
        if n_figs:
            page.wait_for_function('n => document.querySelectorAll(".js-plotly-plot .main-svg, .plot-container svg").length >= n',
                                   arg=n_figs, timeout=20_000)
            drawn = page.evaluate('() => [...document.querySelectorAll(".plotly-graph-div")].filter('
                                  'd => d.classList.contains("js-plotly-plot") && d.querySelector("svg.main-svg")).length')
            assert drawn == n_figs, f'{drawn} of {n_figs} plotly figures were drawn'
        if name == 'fixture':
            ok = page.evaluate('() => [...document.querySelectorAll("img.sc-math, img[alt=\'local pixel\']")]'
                               '.map(i => i.complete && i.naturalWidth > 0)')
            assert len(ok) >= 3 and all(ok), f'an image did not decode: {ok}'
        page.wait_for_timeout(200)   # late console errors from scripts
        assert not problems, f'{html_path.name}: ' + '; '.join(problems)
    finally: page.close()
