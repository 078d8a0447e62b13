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
        md('## API and links\n\nSeeds are fixed with `set_seed`, and `semicontrast.core.set_seed()` is the same function.'),
        code('#| export\ndef fixture_twice(x):\n    "Two times `x` (a documented function of this page)."\n    return 2 * x'),
        md('## A clickable similarity map'),
        code('import numpy as np\nfrom semicontrast.viz import similarity_explorer\n'
             'rng = np.random.default_rng(0)\n'
             'similarity_explorer(rng.normal(size=(2, 32, 24)), rng.normal(size=(2, 8, 8, 6)), titles=["query", "other"])'),
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
    assert page.count('class="sc-tex"') == 1 and page.count('class="sc-tex sc-tex-display"') == 1, \
        'the inline and the display equation should each be marked for KaTeX'
    import html
    tex = [html.unescape(t) for t in re.findall(r'class="sc-tex sc-tex-display">(.*?)</div>', page, re.S)]
    assert tex == ['\\frac{\\exp(s_{ij}/\\tau)}{\\sum_k \\exp(s_{ik}/\\tau)}'], f'the TeX should reach the page unchanged: {tex}'
    assert not re.search(r'\$\$|\\frac', page), 'the page source should hold the TeX escaped (the browser decodes it for KaTeX)'
    assert rd.leftovers(page) == [], rd.leftovers(page)
    assert '<b>inline html</b>' in page, 'inline HTML in markdown was mangled'
    assert 'alt="local pixel" src="data:image/png;base64,' in page, 'a local markdown image was not embedded'
    assert '<h3 id="fixture_twice"' in page, 'an exported function without show_doc got no documentation (nbdev adds one)'
    srcs = re.findall(r'<details class="sc-src"><summary>source</summary>(.*?)</details>', page, re.S)
    assert any('fixture_twice' in x for x in srcs), 'exported source should be one click away, in a closed <details>'
    outside = re.sub(r'<details class="sc-src">.*?</details>', '', page, flags=re.S)
    assert 'fixture_twice' in outside and not re.search(r'return</span>\s*<span[^>]*>2</span>', outside), \
        'the exported source shows outside its <details> (only the signature and docs should)'
    assert 'src="assets/plotly-' not in page and 'window.SC_PLOTLY_JS = "assets/plotly-' in page, \
        'plotly.js should be written once to assets/ and loaded after the text, not by a blocking <script src>'
    assert '<script type="text/x-sc-plotly">' in page

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

DRAWN_JS = 'n => [...document.querySelectorAll(".plotly-graph-div")].filter(d => d.querySelector("svg.main-svg")).length'

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
            page.wait_for_function(DRAWN_JS + ' >= n', arg=n_figs, timeout=20_000)   # figures draw after the text
            drawn = page.evaluate('() => [...document.querySelectorAll(".plotly-graph-div")].filter('
                                  'd => d.classList.contains("js-plotly-plot") && d.querySelector("svg.main-svg")).length')
            assert drawn == n_figs, f'{drawn} of {n_figs} plotly figures were drawn'
        if name == 'fixture':
            ok = page.evaluate('() => [...document.querySelectorAll("img[alt=\'local pixel\']")]'
                               '.map(i => i.complete && i.naturalWidth > 0)')
            assert len(ok) == 1 and all(ok), f'the local image did not decode: {ok}'
        n_tex = page.locator('.sc-tex').count()
        if name == 'fixture': assert n_tex == 2, f'{n_tex} equations marked on the fixture page, expected 2'
        if n_tex:   # KaTeX typesets every equation, none with an error, and the TeX source is no longer shown
            page.wait_for_selector('body[data-sc-math]', timeout=10_000)
            typeset = page.evaluate('() => [...document.querySelectorAll(".sc-tex")].filter(e => e.querySelector(".katex")).length')
            assert typeset == n_tex and page.locator('.katex-error').count() == 0, f'{typeset} of {n_tex} equations typeset'
            assert '\\frac' not in page.inner_text('main'), 'raw TeX still shows'
        page.wait_for_timeout(200)   # late console errors from scripts
        assert not problems, f'{html_path.name}: ' + '; '.join(problems)
    finally: page.close()

# ------------------------------------------------------------------------------------------ navigation, search, links
ARTIFACTS = Path(os.environ.get('SEMICONTRAST_ARTIFACTS', ROOT/'test-artifacts'))   # screenshots (git-ignored)

def _settle(page):
    "Wait until every figure of the page is drawn (so that leaving the page does not abort plotly.js half-loaded)."
    page.wait_for_function(DRAWN_JS + ' >= n', arg=page.locator('.plotly-graph-div').count(), timeout=30_000)

def _shot(page, name:str):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS/f'{name}.png'))
    print(f'screenshot: {ARTIFACTS/name}.png')

def test_sidebar_toc_and_prev_next_static(site):
    "Every page has a sidebar listing every page, a table of contents whose links land on headings, and a prev/next chain."
    from bs4 import BeautifulSoup
    names = list(site)
    soups = {n: BeautifulSoup(site[n][0].read_text(encoding='utf-8'), 'html.parser') for n in names}
    for n, soup in soups.items():
        side = soup.select_one('aside.sc-sidebar')
        assert side is not None, f'{n}: no sidebar'
        links = [a.get('href') for a in side.select('a')]
        for other in names: assert f'{other}.html' in links, f'{n}: the sidebar does not list {other}'
        assert [a.get('href') for a in side.select('a.sc-current')] == [f'{n}.html']
        assert side.select_one('input#sc-search-input') is not None
        toc = soup.select_one('nav.sc-toc')
        if toc is not None:
            for a in toc.select('a'):
                assert soup.find(id=a['href'][1:]) is not None, f'{n}: the table of contents links to {a["href"]}, which is not on the page'
    assert soups['00_core'].select('nav.sc-toc a'), 'the core page has headings but no table of contents'
    # previous / next follow the sidebar's order (Home first), the same on every page
    orders = {n: ['index.html'] + [a['href'] for a in soup.select('aside.sc-sidebar a') if a['href'] != 'index.html']
              for n, soup in soups.items()}
    order = orders['index']
    assert all(o == order for o in orders.values()), 'the sidebar differs between pages'
    for n, soup in soups.items():
        if f'{n}.html' not in order: continue          # the fixture page lies outside the repository's notebooks
        i = order.index(f'{n}.html')
        nxt, prv = soup.select_one('a.sc-next'), soup.select_one('a.sc-prev')
        assert (nxt['href'] if nxt else None) == (order[i + 1] if i + 1 < len(order) else None), f'{n}: wrong "next"'
        assert (prv['href'] if prv else None) == (order[i - 1] if i > 0 else None), f'{n}: wrong "previous"'

def test_committed_site_chain_visits_every_page():
    "In the committed docs/, following 'next' from the home page visits every page once, and 'previous' walks back."
    from bs4 import BeautifulSoup
    soups = {p.stem: BeautifulSoup(p.read_text(encoding='utf-8'), 'html.parser') for p in DOCS.glob('*.html')}
    seen, cur = ['index'], 'index'
    while (nxt := soups[cur].select_one('a.sc-next')) is not None:
        cur = nxt['href'][:-len('.html')]
        assert cur in soups and cur not in seen, f'"next" leads to {cur}: missing or visited twice'
        seen.append(cur)
        assert soups[cur].select_one('a.sc-prev')['href'] == f'{seen[-2]}.html', f'{cur}: "previous" does not lead back'
    assert sorted(seen) == sorted(soups), f'pages not on the chain: {sorted(set(soups) - set(seen))}'
    for stem, soup in soups.items():
        side = {a['href'] for a in soup.select('aside.sc-sidebar a')}
        assert side == {f'{s}.html' for s in soups}, f'{stem}.html: the sidebar does not list exactly the pages of docs/'

def test_doclinks_and_search_index(site):
    fixture = site['fixture'][0].read_text(encoding='utf-8')
    assert '<a class="sc-doclink" href="00_core.html#set_seed"><code>set_seed</code></a>' in fixture
    assert '<a class="sc-doclink" href="00_core.html#set_seed"><code>semicontrast.core.set_seed()</code></a>' in fixture
    core = site['00_core'][0].read_text(encoding='utf-8')
    assert '<h3 id="set_seed"' in core
    idx = (site['fixture'][0].parent/'assets'/'sc-search.js').read_text(encoding='utf-8')
    entries = __import__('json').loads(idx[idx.index('['):idx.rindex(']') + 1])
    assert {'00_core.html#set_seed', 'fixture.html#A-clickable-similarity-map'} <= {e['u'] for e in entries}
    assert {e['u'].split('.html')[0] for e in entries} == set(site), 'the search index should cover every page'

@pytest.mark.browser
def test_search_box_finds_and_navigates(site, browser):
    page, problems = _open(browser, site['fixture'][0])
    try:
        _settle(page)
        page.keyboard.press('/')                                      # '/' focuses the search box
        page.keyboard.type('set_seed')
        page.wait_for_selector('#sc-search-results a[href]', timeout=5_000)
        hrefs = page.eval_on_selector_all('#sc-search-results a[href]', 'as => as.map(a => a.getAttribute("href"))')
        assert hrefs[0] == '00_core.html#set_seed', hrefs
        _shot(page, 'search-result')
        page.keyboard.press('Enter')
        page.wait_for_url(re.compile(r'00_core\.html#set_seed$'), timeout=5_000)
        assert page.locator('h3#set_seed').is_visible()
        assert not problems, '; '.join(problems)
    finally: page.close()

@pytest.mark.browser
def test_sidebar_and_doclink_navigate(site, browser):
    page, problems = _open(browser, site['fixture'][0])
    try:
        _settle(page)
        assert page.locator('aside.sc-sidebar').is_visible()
        _shot(page, 'sidebar')
        page.click('a.sc-doclink >> nth=0')
        page.wait_for_url(re.compile(r'00_core\.html#set_seed$'), timeout=5_000)
        page.click('aside.sc-sidebar a[href="index.html"]')
        page.wait_for_url(re.compile(r'index\.html$'), timeout=5_000)
        assert not problems, '; '.join(problems)
    finally: page.close()

@pytest.mark.browser
def test_similarity_map_responds_to_a_click(site, browser):
    "Clicking the query image recomputes every similarity map in the browser, from the embeddings the figure carries."
    page, problems = _open(browser, site['fixture'][0])
    try:
        gd = page.locator('.js-plotly-plot[data-query]')
        gd.wait_for(timeout=20_000)
        gd.scroll_into_view_if_needed()
        before = gd.get_attribute('data-query')
        z0 = page.evaluate('() => JSON.stringify(document.querySelector(".js-plotly-plot[data-query]").data.filter(t => t.type === "heatmap" && t.colorscale).map(t => t.z))')
        xy = page.evaluate("""([py, px]) => { const gd = document.querySelector('.js-plotly-plot[data-query]'),
            r = gd.getBoundingClientRect(), L = gd._fullLayout;        // pixel (py, px) of the query image, on screen
            return [r.left + L.xaxis._offset + L.xaxis.d2p(px), r.top + L.yaxis._offset + L.yaxis.d2p(py)]; }""", [30, 20])
        page.mouse.click(*xy)
        page.wait_for_function('b => document.querySelector(".js-plotly-plot[data-query]").getAttribute("data-query") !== b', arg=before, timeout=5_000)
        after = gd.get_attribute('data-query')
        assert (before, after) == ('4,3', '7,5'), f'pixel (30, 20) of a 32 x 24 image is cell (7, 5) of its 8 x 6 grid; got {after}'
        z1 = page.evaluate('() => JSON.stringify(document.querySelector(".js-plotly-plot[data-query]").data.filter(t => t.type === "heatmap" && t.colorscale).map(t => t.z))')
        assert z1 != z0, 'the similarity maps did not change'
        assert 'query cell (7, 5)' in page.text_content('.js-plotly-plot[data-query] .gtitle')
        _shot(page, 'similarity-clicked')
        assert not problems, '; '.join(problems)
    finally: page.close()

@pytest.mark.browser
@pytest.mark.parametrize('width', [390, 1280, 1440])
def test_any_screen_width(site, browser, width):
    "At a phone's width and at laptop / desktop widths: no horizontal scrolling, the pages and search within one tap, a table of contents."
    page = browser.new_page(viewport={'width': width, 'height': 844 if width == 390 else 900})
    try:
        for name in ('fixture', '00_core'):
            page.goto(site[name][0].as_uri(), wait_until='load'); _settle(page)
            wide = page.evaluate('() => document.documentElement.scrollWidth')
            assert wide <= width, f'{name} at {width} px scrolls sideways ({wide} px wide)'
            side, toc = page.locator('aside.sc-sidebar'), page.locator('nav.sc-toc')
            assert toc.is_visible(), f'{name} at {width} px: the table of contents is hidden'
            if width <= 900:
                assert not side.is_visible(), 'the sidebar should be behind the menu at phone width'
                page.click('.sc-menu-btn')
                assert side.is_visible() and page.locator('#sc-search-input').is_visible(), 'the menu does not open the pages and search'
                _shot(page, f'{name}-{width}-menu')
                page.mouse.click(width - 5, 300)            # a tap beside it (the page's right margin) closes it
                assert not side.is_visible(), 'the menu does not close'
            else: assert side.is_visible(), f'the sidebar is hidden at {width} px'
            opened = page.locator('nav.sc-toc details').get_attribute('open') is not None
            assert opened == (width > 1300), f'at {width} px the table of contents should start {"open" if width > 1300 else "closed"}'
            if not opened:                                  # it opens on request and a jump closes it
                page.click('nav.sc-toc summary'); assert page.locator('nav.sc-toc a').first.is_visible()
                page.click('nav.sc-toc a >> nth=0'); assert page.locator('nav.sc-toc details').get_attribute('open') is None
            _shot(page, f'{name}-{width}')
    finally: page.close()

def test_page_scan_catches_leftovers():
    "The scan that every rendered page passes flags raw TeX, machine folders, warning boxes and development words."
    clean = '<html><body><main><p>A loss <span class="sc-tex">&#92;frac{a}{b}</span>.</p><pre>x = 1</pre></main></body></html>'
    assert rd.leftovers(clean) == []
    bad = {'raw TeX': '<p>The loss $$\\mathcal{L} = 1$$ here.</p>',
           'raw TeX ': '<p>with $\\lambda_u$ as weight</p>',
           'machine path': '<pre>wrote /tmp/tmpab12cd/run/result.json</pre>',
           'machine path ': '<p>DatasetInfo(path=\'/home/ana/semicontrast/embedded\')</p>',
           'warning box': '<div data-mime-type="application/vnd.jupyter.stderr"><pre>x.py:3: UserWarning: careful</pre></div>',
           'development words': '<p>No GPU was lent for this run.</p>'}
    for kind, frag in bad.items():
        found = rd.leftovers(f'<html><body><main>{frag}</main></body></html>')
        assert found and found[0].startswith(kind.strip()), (kind, found)
    # a one-line error message on stderr is a published output, not a leftover
    assert rd.leftovers('<div data-mime-type="application/vnd.jupyter.stderr"><pre>error: --data x: no such folder</pre></div>') == []

def test_outputs_name_no_machine_folder():
    "Outputs are published with the rendering machine's folders named by what they are."
    home = os.path.expanduser('~')
    text = ("path='/srv/ci/checkout/semicontrast/embedded/hippocampus' /opt/venv/lib/python3.11/site-packages/fastprogress/x.py "
            f"/tmp/tmpk2j_x9/run/result.json {ROOT}/runs/quickstart {home}/data/scan.nii.gz")
    got = rd.publish_paths(text)
    assert got == ("path='<semicontrast>/embedded/hippocampus' <site-packages>/fastprogress/x.py "
                   "<tmp>/run/result.json runs/quickstart ~/data/scan.nii.gz"), got
    assert rd.leftovers(f'<pre>{got}</pre>') == []

# ------------------------------------------------------------------------------------------ the committed site
DOCS = ROOT/'docs'

def test_committed_pages_show_no_leftovers():
    "No committed page shows raw TeX, a machine folder, a warning box or words about how the project is developed."
    found = {p.name: rd.leftovers(p.read_text(encoding='utf-8')) for p in sorted(DOCS.glob('*.html'))}
    found = {k: v for k, v in found.items() if v}
    assert not found, f'pages with leftovers (re-render them: python tools/render_docs.py --stored docs/executed): {found}'
MAX_PAGE_MB, MAX_USABLE_S = 2.0, 2.0

def test_committed_pages_are_light():
    "No page is over 2 MB (plotly.js lives once in assets/), and none embeds plotly.js itself."
    sizes = {p.stem: p.stat().st_size / 1e6 for p in sorted(DOCS.glob('*.html'))}
    print('\n'.join(f'{n:<24} {mb:6.2f} MB' for n, mb in sizes.items()))
    heavy = {n: round(mb, 2) for n, mb in sizes.items() if mb > MAX_PAGE_MB}
    assert not heavy, f'pages over {MAX_PAGE_MB} MB: {heavy}; thin their figures (fewer slices, smaller images)'
    for p in DOCS.glob('*.html'):
        assert 'plotly.js v' not in p.read_text(encoding='utf-8')[:10_000_000], f'{p.name} embeds plotly.js'
    assert len(list((DOCS/'assets').glob('plotly-*.min.js'))) == 1

@pytest.mark.browser
@pytest.mark.parametrize('width', [390, 1280, 1440])
def test_committed_site_on_any_screen(browser, width):
    "The home page, a tutorial and a library page with equations: no sideways scrolling, every equation typeset (screenshots in test-artifacts/)."
    page, problems = browser.new_page(viewport={'width': width, 'height': 844 if width == 390 else 900}), []
    page.on('console', lambda m: problems.append(m.text) if m.type == 'error' else None)
    try:
        for name in ('index', '04_lrc', '09_losses'):
            page.goto((DOCS/f'{name}.html').as_uri(), wait_until='load')
            n_tex = page.locator('.sc-tex').count()
            if name != 'index': assert n_tex > 0, f'{name} should have equations'
            if n_tex:
                page.wait_for_selector('body[data-sc-math]', timeout=15_000)
                ok = page.evaluate('() => [...document.querySelectorAll(".sc-tex")].filter(e => e.querySelector(".katex") && !e.querySelector(".katex-error")).length')
                assert ok == n_tex, f'{name}: {ok} of {n_tex} equations typeset'
            wide = page.evaluate('() => document.documentElement.scrollWidth')
            assert wide <= width, f'{name} at {width} px scrolls sideways ({wide} px wide)'
            if name == '09_losses':                     # an equation in view
                page.locator('.sc-tex-display').first.scroll_into_view_if_needed(); page.wait_for_timeout(200)
            _shot(page, f'site-{name}-{width}')
        assert not problems, '; '.join(problems)
    finally: page.close()

@pytest.mark.browser
def test_committed_pages_usable_quickly(browser):
    "Every committed page is usable (its text parsed and laid out, links live) within 2 s; figures are drawn after that."
    rows, slow = [], {}
    for p in sorted(DOCS.glob('*.html')):
        page, problems = _open(browser, p)
        try:
            t = page.evaluate('() => { const n = performance.getEntriesByType("navigation")[0]; '
                              'return [n.domContentLoadedEventEnd, n.loadEventEnd]; }')
            n_figs = page.locator('.plotly-graph-div').count()
            if n_figs:
                page.wait_for_function(DRAWN_JS + ' >= n', arg=n_figs, timeout=30_000)
            drawn = page.evaluate('() => performance.now()')
            rows.append((p.stem, p.stat().st_size / 1e6, t[0] / 1e3, t[1] / 1e3, drawn / 1e3 if n_figs else float('nan'), n_figs))
            if t[0] / 1e3 > MAX_USABLE_S: slow[p.stem] = round(t[0] / 1e3, 2)
            assert not problems, f'{p.name}: ' + '; '.join(problems)
        finally: page.close()
    print(f"\n{'page':<24} {'MB':>6} {'usable s':>9} {'load s':>7} {'figures drawn s':>16} {'figures':>8}")
    for r in rows: print(f'{r[0]:<24} {r[1]:6.2f} {r[2]:9.2f} {r[3]:7.2f} {r[4]:16.2f} {r[5]:8d}')
    assert not slow, f'pages not usable within {MAX_USABLE_S} s: {slow}'

@pytest.mark.browser
def test_committed_tutorial_shows_a_trained_model(browser):
    "The published quick start was rendered from a real (reduced or full) run, says so, and shows its prediction."
    p = DOCS/'00_quickstart.html'
    html_text = p.read_text(encoding='utf-8')
    m = re.search(r'class="sc-rendered">This page shows the outputs of running the notebook at the <b>(\w+)</b>', html_text)
    assert m and m.group(1) in ('reduced', 'full'), 'the published quick start should come from a reduced or full run (tools/render_docs.py --size reduced)'
    page, problems = _open(browser, p)
    try:
        n_figs = page.locator('.plotly-graph-div').count()
        page.wait_for_function(DRAWN_JS + ' >= n', arg=n_figs, timeout=30_000)
        found = page.evaluate("""() => { const g = [...document.querySelectorAll('.js-plotly-plot')].find(d =>
            (d.layout.annotations || []).some(a => a.text === 'prediction'));     // the slice viewer with a prediction panel
            if (g) g.scrollIntoView({block: 'center'}); return !!g; }""")
        assert found, 'no figure with a prediction panel on the quick start page'
        page.wait_for_timeout(500)
        _shot(page, 'tutorial-trained-prediction')
        assert not problems, '; '.join(problems)
    finally: page.close()

def test_kept_tutorial_runs_render_without_retraining(tmp_path):
    "--keep saves an executed tutorial with how it ran; --stored renders its outputs under the current prose, and refuses changed code."
    import nbformat
    tut = tmp_path/'tutorials'; tut.mkdir()
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    nb = nbformat.v4.new_notebook(cells=[md('# Kept tutorial\n\n> A tiny stand-in.'), md('Old prose.'),
                                         code('import random\nprint("drawn", random.random())')],
                                  metadata={'kernelspec': {'name': 'python3', 'display_name': 'Python 3', 'language': 'python'}})
    path = tut/'kept_tut.ipynb'; nbformat.write(nb, str(path))
    _render(tmp_path/'site', path, extra=('--keep', str(tmp_path/'kept')))
    kept = nbformat.read(str(tmp_path/'kept'/'kept_tut.ipynb'), as_version=4)
    rec = kept.metadata['semicontrast_render']
    assert rec['size'] == 'smoke' and rec['seconds'] > 0 and (rec['device'] == 'CPU' or rec['device'].startswith('GPU'))
    drawn = re.search(r'drawn [0-9.]+', ''.join(o.get('text', '') for o in kept.cells[2].outputs)).group(0)
    page = (tmp_path/'site'/'kept_tut.html').read_text(encoding='utf-8')
    assert drawn in page and 'class="sc-rendered"' in page and '<b>smoke</b>' in page
    nb.cells[1].source = 'New prose.'; nbformat.write(nb, str(path))            # prose edits need no new run ...
    _render(tmp_path/'site2', path, extra=('--stored', str(tmp_path/'kept')))
    page = (tmp_path/'site2'/'kept_tut.html').read_text(encoding='utf-8')
    assert 'New prose.' in page and 'Old prose.' not in page and drawn in page   # ... the kept output is shown, not a new draw
    nb.cells[2].source += '\nprint("changed")'; nbformat.write(nb, str(path))   # ... code edits do
    r = _render(tmp_path/'site3', path, check=False, extra=('--stored', str(tmp_path/'kept')))
    assert r.returncode == 1 and 'code cell 0 differs' in r.stderr and '--keep' in r.stderr
