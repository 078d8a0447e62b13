#!/usr/bin/env python
"""Render semicontrast's documentation pages offline: execute the notebooks and convert them to HTML.

Quarto (what `nbdev_docs` needs) cannot be installed on the project's machines, so this script builds the
documentation site with tools that work offline. For every notebook in nbs/*.ipynb (files starting with
'_' or '.' skipped) and tutorials/*.ipynb it:

1. executes the notebook with nbclient (kernel python3, this interpreter; cwd = the notebook's folder;
   env SEMICONTRAST_SMOKE=1 unless --size says otherwise; PLOTLY_RENDERER=notebook so plotly figures carry
   plotly.js instead of loading it from a CDN). Cells marked `#| eval: false`, or with a test flag from
   settings.ini's tst_flags (`#| slow`, `#| gpu`) that is not in --flags, are not run, as in nbdev_test.
2. cleans it for reading: drops `#| hide` / `#| include: false` / `#| default_exp` cells, hides the input of
   `#| echo: false` and show_doc cells, drops the output of `#| output: false` cells, strips every `#|`
   directive line from the cells that stay, renders $...$ / $$...$$ math to inline SVG with matplotlib's
   mathtext (no MathJax download), and replaces interactive widget outputs by a note (widgets need a kernel).
3. converts it with nbconvert's HTMLExporter (lab template; images embedded as data: URIs) into <out>/<name>.html, with a
   small navigation bar on top. The lab template's CDN tags (require.js, MathJax, mermaid, widget manager)
   are switched off; plotly.js is written once to <out>/assets/plotly-<version>.min.js and referenced
   locally; any other tag that would load something from the network is removed (remote images become
   their alt text), and the page is checked for leftovers. Pages never load anything from the network.

<out>/index.html is nbs/index.ipynb plus a list of all pages (titles from each notebook's first markdown
heading, summaries from its `> ...` line), grouped as "Library" (nbs) and "Tutorials".

Usage (from anywhere; paths are relative to the repository root unless absolute):
    python tools/render_docs.py                         # everything, smoke size, into docs/
    python tools/render_docs.py --only 00_core index    # some pages (names or paths to .ipynb files)
    python tools/render_docs.py --no-execute            # render the outputs stored in the notebooks
    python tools/render_docs.py --size reduced          # run the tutorials bigger (see --size)
Exit status: 0 when every page was written; 1 listing the notebooks that failed to execute or convert;
2 for a usage error (unknown notebook name, missing folder).
"""
from __future__ import annotations
import argparse, asyncio, base64, configparser, html, io, os, re, sys, time, traceback
from html.parser import HTMLParser
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GROUPS = {'nbs': 'Library', 'tutorials': 'Tutorials'}

# ------------------------------------------------------------------------------------------ discovery
def _settings(root:Path=ROOT) -> dict:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(root/'settings.ini')
    return dict(cp['DEFAULT'])

def discover(root:Path=ROOT) -> list[Path]:
    "Notebooks that get a page: nbs/*.ipynb then tutorials/*.ipynb, sorted, skipping names starting with '_' or '.'."
    out = []
    for d in GROUPS:
        out += sorted(p for p in (root/d).glob('*.ipynb') if not p.name.startswith(('_', '.')))
    return out

def group_of(path:Path) -> str: return 'Tutorials' if path.parent.name == 'tutorials' else 'Library'

def read_nb(path:Path):
    import nbformat
    return nbformat.read(str(path), as_version=4)

_re_heading = re.compile(r'^\s{0,3}#{1,6}\s+(.+?)\s*#*\s*$', re.MULTILINE)
_re_summary = re.compile(r'^\s{0,3}>\s*(.+?)\s*$', re.MULTILINE)

def title_summary(nb, default:str) -> tuple[str, str]:
    "The first markdown heading of `nb` (else `default`) and the `> summary` line of that cell (else '')."
    for c in nb.cells:
        if c.cell_type != 'markdown': continue
        m = _re_heading.search(c.source)
        if m:
            s = _re_summary.search(c.source[m.end():])
            return m.group(1).strip(), (s.group(1).strip() if s else '')
    return default, ''

# ------------------------------------------------------------------------------------------ directives
_re_dir = re.compile(r'^\s*#\s*\|\s*(.*?)\s*$')
_re_hide_line = re.compile(r'#\s*\|\s*hide_line\s*$')

def split_directives(source:str) -> tuple[dict, str]:
    "nbdev/Quarto `#|` directives at the top of a code cell as {name: [args]}, and the source without them."
    lines, dirs, i = source.splitlines(), {}, 0
    while i < len(lines) and (_re_dir.match(lines[i]) or not lines[i].strip()):
        m = _re_dir.match(lines[i])
        if m and m.group(1):
            name, _, rest = re.match(r'([\w-]+)\s*(:?)\s*(.*)', m.group(1)).groups()
            dirs[name.lower()] = rest.split()
        i += 1
    code = [l for l in lines[i:] if not _re_hide_line.search(l)]
    return dirs, '\n'.join(code).rstrip()

def _false(dirs, key) -> bool: return key in dirs and [a.lower() for a in dirs[key]][:1] == ['false']

_re_showdoc_line = re.compile(r'^\s*show_doc\(.*\)\s*;?\s*$')
def _only_show_doc(code:str) -> bool:
    lines = [l for l in code.splitlines() if l.strip() and not l.strip().startswith('#')]
    return bool(lines) and all(_re_showdoc_line.match(l) for l in lines)

def skipped_cells(nb, flags:set, tst_flags:set) -> dict[int, str]:
    "Cells nbdev_test would not run: index -> reason (`eval: false`, or a test flag not asked for)."
    out = {}
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'code': continue
        dirs, _ = split_directives(c.source)
        if _false(dirs, 'eval'): out[i] = 'eval: false'
        else:
            f = sorted((set(dirs) & tst_flags) - flags)
            if f: out[i] = ', '.join(f)
    return out

# ------------------------------------------------------------------------------------------ math
_re_code = re.compile(r'(```.*?```|~~~.*?~~~|`[^`\n]*`)', re.DOTALL)
_re_math = re.compile(r'(?<![\\$])\$\$(.+?)\$\$'                                      # $$display$$
                      r'|(?<![\\$\w])\$(?=\S)((?:[^$\n]|\n(?![ \t]*\n))+?)(?<=\S)\$(?![$\w])',  # $inline$, no blank line
                      re.DOTALL)

_TEX_FIXES = [   # LaTeX that matplotlib's mathtext does not know -> an equivalent it does
    (r'\\[td]frac(?![a-zA-Z])', r'\\frac'), (r'\\[bB]igg?[lrm]?(?![a-zA-Z])', ''), (r'\\ge(?![a-zA-Z])', r'\\geq'),
    (r'\\le(?![a-zA-Z])', r'\\leq'), (r'\\[lr]vert(?![a-zA-Z])', '|'), (r'\\[lr]Vert(?![a-zA-Z])', r'\\|'),
    (r'\\operatorname\*?', r'\\mathrm'), (r'\\textrm(?![a-zA-Z])', r'\\mathrm'), (r'\\!', ''),
    (r'\\frac\s*([0-9a-zA-Z])\s*([0-9a-zA-Z])', r'\\frac{\1}{\2}')]

def _tex_to_svg(tex:str, display:bool):
    "An <img> with `tex` drawn by matplotlib's mathtext as inline SVG, or None if mathtext cannot parse it."
    src = ' '.join(tex.split())
    for pat, rep in _TEX_FIXES: src = re.sub(pat, rep, src)
    try:
        import matplotlib; from matplotlib import mathtext
        from matplotlib.font_manager import FontProperties
        buf = io.BytesIO()
        with matplotlib.rc_context({'svg.fonttype': 'path', 'mathtext.fontset': 'cm'}):
            depth = mathtext.math_to_image(f'${src}$', buf, prop=FontProperties(size=15 if display else 12),
                                           dpi=72, format='svg')
    except Exception: return None
    b64 = base64.b64encode(buf.getvalue()).decode()
    alt = html.escape(tex.strip(), quote=True)
    style = '' if display else f' style="vertical-align:-{float(depth or 0)*4/3:.1f}px"'
    img = f'<img class="sc-math" alt="{alt}" title="{alt}" src="data:image/svg+xml;base64,{b64}"{style}>'
    return f'<div class="sc-math-display">{img}</div>' if display else img

def render_math(md:str) -> str:
    "Replace $$display$$ and $inline$ TeX in markdown (outside code) by SVG images; unparsable math is left as TeX."
    def sub(m):
        disp = m.group(1) is not None
        r = _tex_to_svg(m.group(1) if disp else m.group(2), disp)
        return m.group(0) if r is None else (f'\n\n{r}\n\n' if disp else r)
    parts = _re_code.split(md)
    return ''.join(p if i % 2 else _re_math.sub(sub, p) for i, p in enumerate(parts))

# ------------------------------------------------------------------------------------------ cleaning
_re_pandoc_link = re.compile(r'\[([^\]]+)\]\(([^)\s]+)\)\{[^}\n]*\}')

def pandoc_links(md:str) -> str:
    "show_doc's Quarto link `[source](url){target=... style=...}` as a plain HTML link (the braces are Pandoc syntax)."
    def sub(m):
        url = re.sub(r'#LNone$', '', m.group(2))       # objects defined in the executed notebook have no line number
        cls = ' class="sc-source"' if m.group(1) == 'source' else ''
        return f'<a{cls} href="{html.escape(url)}" target="_blank">{m.group(1)}</a>'
    return _re_pandoc_link.sub(sub, md)

WIDGET_MIME = 'application/vnd.jupyter.widget-view+json'
WIDGET_NOTE = ('<div class="sc-note">Interactive widget: it needs a running Python kernel. Open this notebook in '
               'JupyterLab or Colab to use it.</div>')

_re_md_img = re.compile(r'(!\[[^\]]*\]\()([^)\s]+)((?:\s+"[^"]*")?\))')
_re_html_img = re.compile(r'(<img\b[^>]*?\bsrc\s*=\s*["\'])([^"\']+)(["\'])', re.I)

def embed_local_images(md:str, base:Path) -> str:
    "Markdown and <img> images given by a path relative to the notebook, as data: URIs (the page lives elsewhere)."
    import mimetypes
    def sub(m):
        url = m.group(2)
        if re.match(r'^(?:[a-z][\w+.-]*:|//|#)', url, re.I): return m.group(0)     # remote, data:, attachment:
        f = (base/url.split('#')[0].split('?')[0])
        mime = mimetypes.guess_type(f.name)[0]
        if not (f.is_file() and mime and mime.startswith('image/')): return m.group(0)
        return m.group(1) + f'data:{mime};base64,{base64.b64encode(f.read_bytes()).decode()}' + m.group(3)
    return _re_html_img.sub(sub, _re_md_img.sub(sub, md))

def clean_for_page(nb, skipped:dict|None=None, base:Path=Path('.')):
    "Drop hidden cells, strip directives, hide show_doc inputs, render math, embed images, replace widget outputs (in place)."
    skipped = skipped or {}
    cells = []
    for i, c in enumerate(nb.cells):
        if c.cell_type == 'markdown':
            c.source = embed_local_images(render_math(c.source), base); cells.append(c); continue
        if c.cell_type != 'code': continue          # raw cells are not shown
        dirs, code = split_directives(c.source)
        if 'hide' in dirs or _false(dirs, 'include') or 'default_exp' in dirs: continue
        tags = set(c.metadata.get('tags', []))
        if _false(dirs, 'echo') or _only_show_doc(code): tags.add('remove_input')
        if _false(dirs, 'output'): c.outputs = []
        c.source = code
        c.metadata['tags'] = sorted(tags)
        for o in c.get('outputs', []):
            data = o.get('data', {})
            if WIDGET_MIME in data:
                o['data'] = {'text/html': WIDGET_NOTE}
            if 'text/markdown' in data: data['text/markdown'] = render_math(pandoc_links(data['text/markdown']))
        if not code.strip() and not c.get('outputs'): continue
        cells.append(c)
        if i in skipped:
            import nbformat
            cells.append(nbformat.v4.new_markdown_cell(
                f'<div class="sc-note">This cell is not run when the pages are built (<code>{skipped[i]}</code>).</div>'))
    nb.cells = cells
    nb.metadata.pop('widgets', None)
    return nb

# ------------------------------------------------------------------------------------------ execution
def size_env(size:str) -> dict:
    "Environment for the kernels: smoke sets SEMICONTRAST_SMOKE=1; other sizes unset it and set SEMICONTRAST_SIZE."
    env = dict(os.environ, PLOTLY_RENDERER='notebook', PYTHONUNBUFFERED='1')
    env.pop('SEMICONTRAST_SMOKE', None); env.pop('SEMICONTRAST_SIZE', None)
    if size == 'smoke': env['SEMICONTRAST_SMOKE'] = '1'
    elif size != 'auto': env['SEMICONTRAST_SIZE'] = size
    return env

def execute(nb, cwd:Path, env:dict, timeout:float, skipped:dict):
    "Run `nb` in a fresh python3 kernel (cwd `cwd`), skipping the cells in `skipped`; `timeout` s for the whole notebook."
    from nbclient import NotebookClient
    for i in skipped: nb.cells[i].cell_type = 'raw'          # nbclient runs code cells only
    client = NotebookClient(nb, kernel_name='python3', timeout=int(timeout), allow_errors=False,
                            extra_arguments=['--IPKernelApp.log_level=CRITICAL'],   # the kernel's own log, not cell output
                            resources={'metadata': {'path': str(cwd)}})
    async def run(): await asyncio.wait_for(client.async_execute(env=env), timeout)
    try: asyncio.run(run())
    except asyncio.TimeoutError: raise TimeoutError(f'the notebook did not finish within {timeout:.0f} s (--timeout)') from None
    finally:
        for i in skipped:
            c = nb.cells[i]; c.cell_type = 'code'; c.outputs = []; c.execution_count = None
    return nb

# ------------------------------------------------------------------------------------------ HTML
CSS = """
body.jp-Notebook { margin: 0; padding: 0; }
main { max-width: 1100px; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
.sc-nav { position: sticky; top: 0; z-index: 100; display: flex; gap: 1.4rem; align-items: center;
  padding: .55rem 1.5rem; background: #2780e3; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
.sc-nav a { color: #fff; text-decoration: none; }
.sc-nav a:hover { text-decoration: underline; }
.sc-nav .sc-brand { font-weight: 600; font-size: 17px; margin-right: .6rem; }
.sc-nav .sc-right { margin-left: auto; }
[id] { scroll-margin-top: 3.5rem; }   /* anchors land below the sticky nav bar */
.sc-note { color: #555; font-size: 90%; font-style: italic; padding: .2rem 0; }
.sc-math-display { text-align: center; margin: .6rem 0; }
.sc-remote-img { border: 1px solid #ccc; border-radius: 3px; padding: 0 .3rem; font-size: 85%; }
.sc-pages dt { margin-top: .4rem; } .sc-pages dd { margin-left: 1.5rem; color: #555; }
a.sc-source { float: right; font-size: smaller; }
.jp-RenderedMarkdown pre { background: #f5f5f5; padding: .5rem .7rem; border-radius: 3px; }
"""

TEMPLATE = r"""{%- extends 'index.html.j2' -%}
{#- semicontrast pages: lab template without any CDN script (require.js, MathJax, mermaid, widget manager) -#}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block jupyter_widgets -%}{%- endblock jupyter_widgets -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
{%- block extra_css -%}<style type="text/css">{{ resources.sc_css }}</style>{%- endblock extra_css -%}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
{{ resources.sc_nav }}
<main>
{%- endblock body_header -%}
"""

def nav_bar(cfg:dict) -> str:
    git = html.escape(cfg.get('git_url', 'https://github.com/semicontrast/semicontrast'))
    return ('<nav class="sc-nav"><a class="sc-brand" href="index.html">semicontrast</a>'
            '<a href="index.html#library">Library</a><a href="index.html#tutorials">Tutorials</a>'
            f'<a class="sc-right" href="{git}">GitHub</a></nav>')

def pages_cell(pages:list[dict]) -> str:
    "A markdown cell (raw HTML) listing every page by group."
    out = ['<section class="sc-pages" id="pages">', '<h2>Pages</h2>']
    for g in ('Library', 'Tutorials'):
        items = [p for p in pages if p['group'] == g and p['name'] != 'index']
        out.append(f'<h3 id="{g.lower()}">{g}</h3>')
        if not items: out.append('<p class="sc-note">None yet.</p>'); continue
        out.append('<dl>')
        for p in items:
            out.append(f'<dt><a href="{p["name"]}.html">{html.escape(p["title"])}</a></dt>')
            if p['summary']: out.append(f'<dd>{_inline_code(html.escape(p["summary"], quote=False))}</dd>')
        out.append('</dl>')
    out.append('</section>')
    return '\n'.join(out)

def _inline_code(s:str) -> str: return re.sub(r'`([^`]+)`', r'<code>\1</code>', s)

_re_plotlyjs = re.compile(r'<script(?:\s+type="text/javascript")?\s*>\s*(/\*\*\s*\n\*\s*plotly\.js v([\w.\-]+).*?)</script>', re.DOTALL)
_REMOTE = r'(?:https?:)?//'
_re_remote_script = re.compile(r'<script\b[^>]*\bsrc\s*=\s*["\']' + _REMOTE + r'[^"\']*["\'][^>]*>\s*</script>', re.I)
_re_remote_link = re.compile(r'<link\b[^>]*\bhref\s*=\s*["\']' + _REMOTE + r'[^"\']*["\'][^>]*>', re.I)
_re_remote_img = re.compile(r'<img\b[^>]*\bsrc\s*=\s*["\'](' + _REMOTE + r'[^"\']*)["\'][^>]*>', re.I)
_re_remote_frame = re.compile(r'<iframe\b[^>]*\bsrc\s*=\s*["\'](' + _REMOTE + r'[^"\']*)["\'][^>]*>.*?</iframe>', re.I | re.DOTALL)
_re_alt = re.compile(r'\balt\s*=\s*["\']([^"\']*)["\']', re.I)

_re_big_style = re.compile(r'<style[^>]*>((?:(?!</style>).){4000,})</style>', re.DOTALL)  # template + code-highlight CSS

def _shared_css(css:str, out:Path) -> str:
    "Write a large template stylesheet once to <out>/assets (named by its content hash) and link it."
    import hashlib
    dest = out/'assets'/f'nbconvert-{hashlib.sha1(css.encode()).hexdigest()[:10]}.css'
    if not dest.exists():
        dest.parent.mkdir(parents=True, exist_ok=True); dest.write_text(css, encoding='utf-8')
    return f'<link rel="stylesheet" href="assets/{dest.name}">'

def offline_html(page:str, out:Path) -> str:
    "Move inline plotly.js and the template's large stylesheets to <out>/assets; remove or replace every tag that would load from the network."
    def plotly(m):
        js, ver = m.group(1), m.group(2)
        dest = out/'assets'/f'plotly-{ver}.min.js'
        if not dest.exists() or dest.stat().st_size != len(js.encode()):
            dest.parent.mkdir(parents=True, exist_ok=True); dest.write_text(js, encoding='utf-8')
        return f'<script src="assets/{dest.name}"></script>'
    page = _re_plotlyjs.sub(plotly, page)
    page = _re_big_style.sub(lambda m: _shared_css(m.group(1), out), page)   # the template's CSS, once per site
    page = _re_remote_script.sub('', page)          # plotly's per-figure MathJax CDN tag, and the like
    page = _re_remote_link.sub('', page)
    def img(m):
        alt = _re_alt.search(m.group(0)); alt = alt.group(1) if alt else 'image'
        return f'<span class="sc-remote-img" title="{html.escape(m.group(1))}">{alt}</span>'
    page = _re_remote_img.sub(img, page)
    page = _re_remote_frame.sub(lambda m: f'<a href="{m.group(1)}">{html.escape(m.group(1))}</a>', page)
    return page

class _Loads(HTMLParser):
    "Collects the URLs a page would load (not links): script/img/iframe/source/embed src, stylesheet hrefs, CSS url()."
    def __init__(self): super().__init__(convert_charrefs=True); self.urls, self._style = [], False
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ('script', 'img', 'iframe', 'source', 'video', 'audio', 'embed', 'track', 'input') and a.get('src'): self.urls.append(a['src'])
        if tag == 'link' and a.get('href') and (a.get('rel') or '').lower() != 'canonical': self.urls.append(a['href'])
        if tag == 'object' and a.get('data'): self.urls.append(a['data'])
        self._style = tag == 'style'
    def handle_endtag(self, tag): self._style = False
    def handle_data(self, data):
        if self._style: self.urls += re.findall(r'url\(\s*["\']?([^)"\']+)', data) + re.findall(r'@import\s+["\']([^"\']+)', data)

def remote_loads(page:str) -> list[str]:
    "URLs outside the page's folder that `page` would fetch when opened (should be empty)."
    p = _Loads(); p.feed(page)
    return [u for u in p.urls if re.match(r'^\s*(?:[a-z][\w+.-]*:)?//', u, re.I) and not u.strip().lower().startswith('file:')]

def to_html(nb, name:str, title:str, src_dir:Path, out:Path, cfg:dict) -> str:
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter
    from traitlets.config import Config
    nb.metadata['title'] = title if name == 'index' else f'{title} - semicontrast'
    c = Config(); c.TagRemovePreprocessor.enabled = True; c.TagRemovePreprocessor.remove_input_tags = {'remove_input'}
    exp = HTMLExporter(config=c, template_name='lab', extra_loaders=[DictLoader({'semicontrast.html.j2': TEMPLATE})],
                       template_file='semicontrast.html.j2', embed_images=False,   # True breaks inline HTML (<a>..</a>);
                                                                     # clean_for_page embeds the notebook's images
                       exclude_input_prompt=True, exclude_output_prompt=True)
    page, _ = exp.from_notebook_node(nb, resources={'metadata': {'name': name, 'path': str(src_dir)},
                                                    'sc_css': CSS, 'sc_nav': nav_bar(cfg)})
    page = offline_html(page, out)
    bad = remote_loads(page)
    if bad: raise RuntimeError(f'the page would load from the network: {bad[:5]}')
    return page

# ------------------------------------------------------------------------------------------ main
def resolve(only:list[str], root:Path) -> list[Path]:
    "Notebooks named by --only (stems like 00_core / index, or paths to .ipynb files)."
    known = {p.stem: p for p in discover(root)}
    idx = root/'nbs'/'index.ipynb'
    if idx.exists(): known['index'] = idx
    out, bad = [], []
    for o in only:
        p = Path(o)
        if o.endswith('.ipynb') and (p.exists() or (root/p).exists()): out.append((p if p.exists() else root/p).resolve())
        elif Path(o).stem in known: out.append(known[Path(o).stem])
        else: bad.append(o)
    if bad: _usage(f'unknown notebook(s) {bad}; known names: {sorted(known)}')
    return out

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', default='docs', help='output folder (default: docs, relative to the repository root)')
    ap.add_argument('--only', nargs='+', metavar='NAME', help='render only these notebooks (names like 00_core, or .ipynb paths)')
    ap.add_argument('--no-execute', action='store_true', help='do not run the notebooks: render their stored outputs')
    ap.add_argument('--size', choices=['smoke', 'reduced', 'full', 'auto'], default='smoke',
                    help="smoke (default) sets SEMICONTRAST_SMOKE=1; reduced/full unset it and set SEMICONTRAST_SIZE; "
                         "auto leaves the choice to semicontrast.core.run_size()")
    ap.add_argument('--timeout', type=float, default=900, help='seconds allowed per notebook (default 900)')
    ap.add_argument('--flags', nargs='*', default=[], help='test flags to run anyway (e.g. slow gpu), as nbdev_test --flags')
    a = ap.parse_args(argv)
    root = ROOT
    out = Path(a.out) if Path(a.out).is_absolute() else root/a.out
    out.mkdir(parents=True, exist_ok=True)
    cfg = _settings(root)
    tst_flags = set(filter(None, cfg.get('tst_flags', '').split('|')))
    env = size_env(a.size)

    idx_path = root/'nbs'/'index.ipynb'
    catalogue = [p for p in discover(root) if p.stem != 'index']
    todo = resolve(a.only, root) if a.only else catalogue + [idx_path]
    names = {}
    for p in catalogue + [p for p in todo if p not in catalogue]:
        if p.stem in names and names[p.stem] != p: _usage(f'two notebooks would both be {p.stem}.html: {names[p.stem]} and {p}')
        names[p.stem] = p
    pages = []
    for p in catalogue + [p for p in todo if p not in catalogue and p != idx_path]:
        t, s = title_summary(read_nb(p), p.stem)
        pages.append(dict(name=p.stem, title=t, summary=s, group=group_of(p)))

    failed, t_all = [], time.time()
    print(f'render_docs: {len(todo)} notebook(s) -> {out} (size {a.size}{", no execution" if a.no_execute else ""})', flush=True)
    for p in todo:
        t0, name = time.time(), p.stem
        try:
            if p == idx_path and not p.exists():
                import nbformat; nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# semicontrast')])
            else: nb = read_nb(p)
            skipped = {} if a.no_execute else skipped_cells(nb, set(a.flags), tst_flags)
            if not a.no_execute: execute(nb, p.parent, env, a.timeout, skipped)
            title, _ = title_summary(nb, name)
            clean_for_page(nb, skipped, p.parent)
            if name == 'index':           # the list of pages closes the home page (the nav bar links to it)
                import nbformat
                nb.cells.append(nbformat.v4.new_markdown_cell(pages_cell(pages)))
            page = to_html(nb, name, title, p.parent, out, cfg)
            (out/f'{name}.html').write_text(page, encoding='utf-8')
            print(f'  ok      {name:<28} {time.time()-t0:6.1f} s  -> {(out/name).relative_to(out.parent)}.html', flush=True)
        except Exception as e:
            msg = str(e).strip() or repr(e)
            if not msg or type(e).__name__ not in ('CellExecutionError', 'TimeoutError', 'RuntimeError'):
                msg = ''.join(traceback.format_exception(e))
            failed.append(name)
            print(f'  FAILED  {name:<28} {time.time()-t0:6.1f} s  ({p})\n{_indent(msg)}', file=sys.stderr, flush=True)
    print(f'render_docs: {len(todo)-len(failed)} page(s) written in {time.time()-t_all:.1f} s', flush=True)
    if failed:
        print(f'render_docs: these notebooks failed, their pages were not written: {" ".join(failed)}', file=sys.stderr)
        return 1
    return 0

def _usage(msg:str):
    print(f'render_docs: {msg}', file=sys.stderr); raise SystemExit(2)

def _indent(s:str, n:int=60) -> str:
    lines = s.splitlines()
    if len(lines) > n: lines = lines[:10] + ['    ...'] + lines[-(n-11):]
    return '\n'.join('    ' + l for l in lines)

if __name__ == '__main__': sys.exit(main())
