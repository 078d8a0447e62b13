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
   `#| echo: false` and show_doc cells, folds the source of exported cells into a closed "source" box (and adds a
   show_doc for each exported name the notebook does not document itself, as nbdev does), drops the output of
   `#| output: false` cells, strips every `#|` directive line from the cells that stay, marks $...$ / $$...$$ math
   for KaTeX (stored in tools/katex, copied to <out>/assets/katex; it typesets the equations in the browser, offline),
   writes the rendering machine's folders in outputs as `<tmp>`, `<site-packages>`, `<semicontrast>` and `~`, and
   replaces interactive widget outputs by a note (widgets need a kernel).
3. converts it with nbconvert's HTMLExporter (lab template; images embedded as data: URIs) into <out>/<name>.html,
   laid out with a top bar, a sidebar of every page (Tutorials, Library, Notes) with a search box, the page's table of
   contents (its h2 / h3 headings) and previous / next links. The lab template's CDN tags (require.js, MathJax,
   mermaid, widget manager) are switched off; plotly.js is written once to <out>/assets/plotly-<version>.min.js and
   loaded after the text by assets/sc-site.js, which then draws the figures (visible ones first); any other tag that
   would load something from the network is removed (remote images become their alt text), and the page is checked
   for leftovers. Pages never load anything from the network.
4. after all pages are written, a pass over every page of <out>: backticked API names (`name`, `name()`,
   `semicontrast.module.name`) become links to the heading that documents them, and assets/sc-search.js indexes
   every section of every page for the search box.

<out>/index.html is nbs/index.ipynb plus a list of all pages (titles from each notebook's first markdown
heading, summaries from its `> ...` line), grouped as in the sidebar.

The published site (docs/) shows trained models: its tutorial pages come from runs at the CPU "reduced" size (or
"full" on a GPU), kept in docs/executed/ so that they are not retrained every time the site is rebuilt:
    python tools/render_docs.py --size reduced --only tutorials/*.ipynb --keep docs/executed   # run them (long)
    python tools/render_docs.py --stored docs/executed                  # rebuild every page, tutorials from the kept runs
Each tutorial page says at which size it ran, on what, and how long it took. CI executes the tutorials at smoke size
separately (tests/test_tutorials.py) and renders a few pages at smoke size into a temporary folder (tests/test_docs.py).

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
SIDEBAR_ORDER = ('Tutorials', 'Library', 'Notes')   # the sidebar's sections, and the previous / next chain

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

def group_of(path:Path) -> str:
    "Tutorials (tutorials/), Notes (nbs/9x_*: the methods notes), else Library."
    if path.parent.name == 'tutorials': return 'Tutorials'
    return 'Notes' if re.match(r'9\d_', path.name) else 'Library'

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

# ------------------------------------------------------------------------------------------ API pages
EXPORT_DIRS = {'export', 'exports', 'exporti'}
_re_public_def = re.compile(r'^(?:async\s+)?(?:def|class)\s+([A-Za-z]\w*)', re.MULTILINE)
_re_patch_def = re.compile(r'^@patch\b[^\n]*\n(?:@[^\n]*\n)*(def\s+([A-Za-z]\w*)\s*\(\s*(?:self|cls)\s*:\s*([A-Za-z_][\w.]*))', re.MULTILINE)
_re_show_doc_arg = re.compile(r'show_doc\(\s*([\w.]+)')

def exported_names(code:str) -> list[str]:
    "Public functions and classes an export cell defines (`name`), and methods it patches onto a class (`Class.name`)."
    patched = {m.start(1): f'{m.group(3)}.{m.group(2)}' for m in _re_patch_def.finditer(code)}
    plain = [m.group(1) for m in _re_public_def.finditer(code) if m.start() not in patched]
    return list(patched.values()) + plain

def add_show_docs(nb) -> int:
    """Insert `show_doc(name)` after every export cell for each public name it defines that the notebook does not
    document itself (as nbdev does when it builds docs), so that hiding exported source never hides an API.
    Returns how many were added."""
    import nbformat
    documented = {a for c in nb.cells if c.cell_type == 'code' for a in _re_show_doc_arg.findall(c.source)}
    documented |= {a.split('.')[-1] for a in documented}
    cells, added = [], 0
    for c in nb.cells:
        cells.append(c)
        if c.cell_type != 'code': continue
        dirs, code = split_directives(c.source)
        if not (set(dirs) & {'export', 'exports'}): continue      # exporti: internal, not documented
        for n in exported_names(code):
            if n in documented or n.split('.')[-1].startswith('_'): continue
            cells.append(nbformat.v4.new_code_cell(f'from nbdev.showdoc import show_doc\nshow_doc({n})',
                                                   metadata={'sc_autodoc': True}))
            documented.add(n); added += 1
    nb.cells = cells
    return added

def source_details(code:str) -> str:
    "An exported cell's source as a closed <details> block (highlighted), shown on request."
    from pygments import highlight
    from pygments.formatters import HtmlFormatter
    from pygments.lexers import PythonLexer
    body = highlight(code, PythonLexer(), HtmlFormatter(cssclass='highlight', nowrap=False))
    return f'<details class="sc-src"><summary>source</summary>{body}</details>'

# ------------------------------------------------------------------------------------------ math
_re_code = re.compile(r'(```.*?```|~~~.*?~~~|`[^`\n]*`)', re.DOTALL)
_re_math = re.compile(r'(?<![\\$])\$\$(.+?)\$\$'                                      # $$display$$
                      r'|(?<![\\$\w])\$(?=\S)((?:[^$\n]|\n(?![ \t]*\n))+?)(?<=\S)\$(?![$\w])',  # $inline$, no blank line
                      re.DOTALL)

# Every character that markdown or HTML could read as syntax, written as a character reference: the TeX reaches the
# page's text unchanged (mistune leaves references alone, the browser decodes them) and KaTeX typesets it there.
_TEX_SAFE = {c: f'&#{ord(c)};' for c in '\\`*_{}[]()#+-.!<>&|~^$"\''}

def tex_html(tex:str, display:bool) -> str:
    "`tex` in an element that assets/sc-site.js typesets with KaTeX (the TeX itself, escaped, until it does)."
    src = ''.join(_TEX_SAFE.get(ch, ch) for ch in ' '.join(tex.split()))
    return f'<div class="sc-tex sc-tex-display">{src}</div>' if display else f'<span class="sc-tex">{src}</span>'

def render_math(md:str) -> str:
    "Wrap $$display$$ and $inline$ TeX in markdown (outside code) for KaTeX, which typesets it in the browser."
    def sub(m):
        disp = m.group(1) is not None
        r = tex_html(m.group(1) if disp else m.group(2), disp)
        return f'\n\n{r}\n\n' if disp else r
    parts = _re_code.split(md)
    return ''.join(p if i % 2 else _re_math.sub(sub, p) for i, p in enumerate(parts))

# markdown rendering turns the references back into characters; the page keeps the TeX escaped (KaTeX reads the text)
_re_tex_el = re.compile(r'(<(span|div) class="sc-tex[^"]*">)(.*?)(</\2>)', re.DOTALL)

KATEX = ROOT/'tools'/'katex'   # KaTeX from the npm registry, stored with the project (see its README.md)

def copy_katex(out:Path):
    "Copy the stored KaTeX (script, stylesheet, woff2 fonts) to <out>/assets/katex once."
    import shutil
    for f in [KATEX/'katex.min.js', KATEX/'katex.min.css', KATEX/'LICENSE', *sorted((KATEX/'fonts').glob('*.woff2'))]:
        dest = out/'assets'/'katex'/f.relative_to(KATEX)
        if not dest.exists() or dest.stat().st_size != f.stat().st_size:
            dest.parent.mkdir(parents=True, exist_ok=True); shutil.copyfile(f, dest)

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

# The folders of the machine that ran a notebook mean nothing to a reader (and say where it was built): outputs name
# them by what they are. The package's own folder first (an editable checkout or an installed copy), then any other
# site-packages, temporary folders, this checkout and the home folder.
_re_pkg_dir = re.compile(r'(?:/[^\s/\'"<>]+)+/semicontrast(?=/(?:embedded|semicontrast|data|tutorials|nbs)\b)')
_re_site_dir = re.compile(r'(?:/[^\s/\'"<>]+)+/(?:site|dist)-packages(?=/)')
_re_tmp_dir = re.compile(r'(?:/private)?(?:/tmp|/var/folders/[^\s/\'"<>]+/[^\s/\'"<>]+/T)/tmp[\w-]+')

def publish_paths(text:str) -> str:
    "`text` with the rendering machine's folders written as paths in the checkout, `<semicontrast>`, `<site-packages>`, `<tmp>` and `~`."
    text = text.replace(str(ROOT) + '/', '')
    text = _re_pkg_dir.sub('<semicontrast>', text)
    text = _re_site_dir.sub('<site-packages>', text)
    text = _re_tmp_dir.sub('<tmp>', text)
    home = os.path.expanduser('~')
    return text.replace(home + '/', '~/') if home not in ('', '/') else text

def _publish_output(o):
    "An output's text and text-like data with `publish_paths` applied (images and scripts left as they are)."
    if 'text' in o: o['text'] = publish_paths(''.join(o['text']) if isinstance(o['text'], list) else o['text'])
    for k, v in o.get('data', {}).items():
        if k.startswith('text/') and isinstance(v, (str, list)):
            o['data'][k] = publish_paths(''.join(v) if isinstance(v, list) else v)

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
        if _false(dirs, 'echo') or _only_show_doc(code) or c.metadata.get('sc_autodoc'): tags.add('remove_input')
        if set(dirs) & EXPORT_DIRS and code.strip():          # exported source: hidden, one click away (as nbdev does)
            tags.add('remove_input')
            import nbformat
            c.outputs = [nbformat.v4.new_output('display_data', data={'text/html': source_details(code)})] + list(c.get('outputs', []))
        if _false(dirs, 'output'): c.outputs = []
        c.source = code
        c.metadata['tags'] = sorted(tags)
        for o in c.get('outputs', []):
            _publish_output(o)
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
.sc-layout { display: flex; align-items: flex-start; }
main { flex: 1 1 auto; min-width: 0; max-width: 1100px; margin: 0 auto; padding: 1rem 1.5rem 4rem; }
.sc-sidebar, .sc-toc { position: sticky; top: 2.6rem; max-height: calc(100vh - 2.6rem); overflow-y: auto;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; padding: 1rem .8rem; box-sizing: border-box; }
.sc-sidebar { flex: 0 0 250px; border-right: 1px solid #e3e3e3; background: #fafafa; }
.sc-toc { flex: 0 0 230px; border-left: 1px solid #e3e3e3; }
.sc-sidebar h4, .sc-toc summary { margin: .9rem 0 .3rem; font-size: 12px; text-transform: uppercase; letter-spacing: .05em; color: #666; }
.sc-sidebar ul, .sc-toc ul { list-style: none; margin: 0; padding: 0; }
.sc-sidebar li a { display: block; padding: .12rem .4rem; border-radius: 3px; color: #24292f; text-decoration: none; }
.sc-sidebar li a:hover { background: #e8eef7; }
.sc-sidebar li a.sc-current { background: #2780e3; color: #fff; }
.sc-toc li { margin: .15rem 0; } .sc-toc li.sc-h3 { padding-left: .8rem; font-size: 13px; }
.sc-toc a { color: #444; text-decoration: none; } .sc-toc a:hover { color: #2780e3; }
.sc-search { position: relative; }
.sc-search input { width: 100%; box-sizing: border-box; padding: .35rem .5rem; border: 1px solid #bbb; border-radius: 4px; font: inherit; }
.sc-results { position: absolute; z-index: 200; left: 0; right: 0; max-height: 70vh; overflow-y: auto; background: #fff;
  border: 1px solid #bbb; border-radius: 4px; box-shadow: 0 4px 14px rgba(0,0,0,.15); margin: .2rem 0 0; padding: 0; }
.sc-results:empty { display: none; }
.sc-results li { list-style: none; border-bottom: 1px solid #eee; } .sc-results li a { display: block; padding: .4rem .6rem; color: #24292f; text-decoration: none; }
.sc-results li a:hover, .sc-results li a.sc-active { background: #e8eef7; }
.sc-results .sc-where { color: #666; font-size: 12px; } .sc-results .sc-snip { color: #444; font-size: 12px; }
.sc-prevnext { display: flex; justify-content: space-between; gap: 1rem; margin-top: 3rem; padding-top: 1rem; border-top: 1px solid #ddd;
  font: 15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
.sc-prevnext a { text-decoration: none; color: #2780e3; } .sc-prevnext .sc-next { margin-left: auto; text-align: right; }
.sc-prevnext small { display: block; color: #777; }
details.sc-src > summary { cursor: pointer; color: #777; font-size: 12px; margin: .2rem 0; }
a.sc-doclink code { color: #0550ae; }
.sc-rendered { background: #f3f7fd; border-left: 3px solid #2780e3; padding: .4rem .7rem; margin: .6rem 0 1rem; font-size: 90%; color: #333; }
.sc-toc summary { list-style: none; cursor: pointer; } .sc-toc summary::-webkit-details-marker { display: none; }
.sc-toc summary::after { content: " ▾"; } .sc-toc details:not([open]) summary::after { content: " ▸"; }
.sc-menu-btn { display: none; background: none; border: 1px solid rgba(255,255,255,.6); border-radius: 4px; color: #fff;
  font: 18px/1 system-ui, sans-serif; padding: .2rem .45rem; cursor: pointer; }
/* narrower than a wide desktop: the table of contents is a box under the top bar that opens on request */
@media (max-width: 1300px) {
  .sc-toc { position: fixed; top: 2.9rem; right: .6rem; z-index: 150; max-width: min(320px, 80vw); max-height: 70vh;
    padding: .1rem .8rem; background: #fff; border: 1px solid #ccc; border-radius: 4px; box-shadow: 0 4px 14px rgba(0,0,0,.12); }
  .sc-toc summary { margin: .35rem 0; }
  main { padding-top: 2.6rem; }
}
/* phone and tablet width: the sidebar (pages and search) opens from the menu button */
@media (max-width: 900px) {
  .sc-menu-btn { display: inline-block; }
  .sc-sidebar { display: none; }
  body.sc-menu-open .sc-sidebar { display: block; position: fixed; top: 2.6rem; left: 0; bottom: 0; z-index: 160;
    width: min(300px, 86vw); max-height: none; box-shadow: 4px 0 14px rgba(0,0,0,.18); }
  main { padding-left: .8rem; padding-right: .8rem; }
}
@media (max-width: 700px) { .sc-nav { gap: .8rem; padding: .55rem .8rem; } .sc-nav a.sc-sec { display: none; } }
/* nothing wider than the screen: wide outputs, tables, code and equations scroll inside their own box */
main img { max-width: 100%; height: auto; }
main .jp-OutputArea-output, main pre, main .sc-tex-display, main .jp-RenderedHTMLCommon table { max-width: 100%; overflow-x: auto; }
main .jp-RenderedHTMLCommon table { display: block; }
main .jp-Cell, main .jp-OutputArea, main .jp-InputArea, main .jp-CodeMirrorEditor { min-width: 0; }
.sc-nav { position: sticky; top: 0; z-index: 100; display: flex; gap: 1.4rem; align-items: center;
  padding: .55rem 1.5rem; background: #2780e3; font: 15px/1.4 system-ui, -apple-system, "Segoe UI", sans-serif; }
.sc-nav a { color: #fff; text-decoration: none; }
.sc-nav a:hover { text-decoration: underline; }
.sc-nav .sc-brand { font-weight: 600; font-size: 17px; margin-right: .6rem; }
.sc-nav .sc-right { margin-left: auto; }
[id] { scroll-margin-top: 3.5rem; }   /* anchors land below the sticky nav bar */
.sc-note { color: #555; font-size: 90%; font-style: italic; padding: .2rem 0; }
.sc-tex-display { display: block; text-align: center; margin: .6rem 0; overflow-y: hidden; }
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
<div class="sc-layout">
{{ resources.sc_sidebar }}
<main>
{{ resources.sc_banner }}
{%- endblock body_header -%}
{%- block body_footer -%}
{{ resources.sc_prevnext }}
</main>
<!--SC-TOC-->
</div>
<script src="assets/sc-site.js" defer></script>
</body>
{%- endblock body_footer -%}
"""

def nav_bar(cfg:dict) -> str:
    git = html.escape(cfg.get('git_url', 'https://github.com/semicontrast/semicontrast'))
    return ('<nav class="sc-nav"><button class="sc-menu-btn" type="button" aria-label="Pages and search" '
            'aria-expanded="false">&#9776;</button><a class="sc-brand" href="index.html">semicontrast</a>'
            '<a class="sc-sec" href="index.html#tutorials">Tutorials</a><a class="sc-sec" href="index.html#library">Library</a>'
            '<a class="sc-sec" href="index.html#notes">Notes</a>'
            f'<a class="sc-right" href="{git}">GitHub</a></nav>')

def site_order(pages:list[dict]) -> list[dict]:
    "Home, then the sidebar's sections in order: the chain that previous / next links follow."
    home = [p for p in pages if p['name'] == 'index']
    return home + [p for g in SIDEBAR_ORDER for p in pages if p['group'] == g and p['name'] != 'index']

def sidebar(pages:list[dict], current:str) -> str:
    "The left column: a search box and every page by section, the current one highlighted."
    out = ['<aside class="sc-sidebar" aria-label="All pages">',
           '<div class="sc-search" role="search"><input id="sc-search-input" type="search" autocomplete="off" '
           'placeholder="Search the docs (press /)" aria-label="Search the documentation">'
           '<ul class="sc-results" id="sc-search-results"></ul></div>',
           '<ul><li><a href="index.html"' + (' class="sc-current"' if current == 'index' else '') + '>Home</a></li></ul>']
    for g in SIDEBAR_ORDER:
        items = [p for p in pages if p['group'] == g and p['name'] != 'index']
        if not items: continue
        out.append(f'<h4>{g}</h4><ul>')
        for p in items:
            cur = ' class="sc-current" aria-current="page"' if p['name'] == current else ''
            out.append(f'<li><a href="{p["name"]}.html"{cur}>{html.escape(p["title"])}</a></li>')
        out.append('</ul>')
    out.append('</aside>')
    return '\n'.join(out)

def prev_next(pages:list[dict], current:str) -> str:
    "Links to the previous and next page in the sidebar's order."
    chain = [p['name'] for p in site_order(pages)]
    if current not in chain: return ''
    i, by = chain.index(current), {p['name']: p for p in pages}
    def link(j, cls, word):
        if not 0 <= j < len(chain): return ''
        p = by[chain[j]]
        return f'<a class="{cls}" rel="{word.lower()}" href="{p["name"]}.html"><small>{word}</small>{html.escape(p["title"])}</a>'
    return f'<nav class="sc-prevnext">{link(i - 1, "sc-prev", "Previous")}{link(i + 1, "sc-next", "Next")}</nav>'

_re_h23 = re.compile(r'<h([23]) id="([^"]+)"[^>]*>(.*?)<a class="anchor-link"', re.DOTALL)
def _text(fragment:str) -> str: return html.unescape(re.sub(r'<[^>]+>', '', fragment)).strip()

def toc(page:str) -> str:
    "The right column: the page's h2 / h3 headings as links (empty when the page has fewer than two)."
    items = [(int(l), i, _text(t)) for l, i, t in _re_h23.findall(page)]
    if len(items) < 2: return ''
    lis = ''.join(f'<li class="sc-h{l}"><a href="#{i}">{html.escape(t)}</a></li>' for l, i, t in items)
    return (f'<nav class="sc-toc" aria-label="On this page"><details open><summary>On this page</summary>'
            f'<ul>{lis}</ul></details></nav>')

def pages_cell(pages:list[dict]) -> str:
    "A markdown cell (raw HTML) listing every page by group."
    out = ['<section class="sc-pages" id="pages">', '<h2>Pages</h2>']
    for g in ('Tutorials', 'Library', 'Notes'):
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
_re_plotly_fig = re.compile(r'<script(?:\s+type="text/javascript")?\s*>(\s*window\.PLOTLYENV\s*=.*?)</script>', re.DOTALL)
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
        return f'<script>window.SC_PLOTLY_JS = "assets/{dest.name}";</script>'   # loaded by sc-site.js after the text
    page = _re_plotlyjs.sub(plotly, page)
    page = _re_plotly_fig.sub(r'<script type="text/x-sc-plotly">\1</script>', page)   # drawn once plotly.js is in
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

class _Text(HTMLParser):
    "A page's visible text in two parts: prose (outside code, source boxes and typeset math) and code (pre / code)."
    SKIP, CODE = {'script', 'style', 'head', 'title'}, {'pre', 'code', 'summary'}
    def __init__(self):
        super().__init__(convert_charrefs=True); self.prose, self.code, self._stack = [], [], []
    def handle_starttag(self, tag, attrs):
        if tag in ('br', 'img', 'input', 'meta', 'link', 'hr', 'wbr', 'source'): return   # void elements
        cls = dict(attrs).get('class') or ''
        kind = ('skip' if tag in self.SKIP else 'tex' if 'sc-tex' in cls.split() else 'code' if tag in self.CODE
                or 'sc-src' in cls.split() else None)
        self._stack.append((tag, kind))
    def handle_endtag(self, tag):
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag: del self._stack[i:]; return
    def handle_data(self, data):
        kinds = {k for _, k in self._stack}
        if 'skip' in kinds or 'tex' in kinds: return
        (self.code if 'code' in kinds else self.prose).append(data)

_re_raw_tex = re.compile(r'\$\$|\$[^$\n]{0,200}?\\[A-Za-z]+[^$\n]{0,200}?\$|\\(?:frac|dfrac|tfrac|sum|prod|mathcal|mathbb|'
                         r'mathrm|mathbf|operatorname|left|right|cdot|exp|log|tau|lambda|sigma|alpha|beta|gamma|mu|hat|'
                         r'bar|tilde|sqrt|begin|text|big|Big|ell|cap|cup|partial|nabla|infty|approx|leq|geq)(?![A-Za-z])')
_re_machine_path = re.compile(r'(?<![\w.<~-])(?:/(?:work|root|home|tmp|Users|mnt|scratch|private|var/folders)/[^\s\'"<>]*'
                              r'|[A-Z]:\\(?:Users|Windows)\\\S*)')
_re_dev_words = re.compile(r'\blent\b|\bthis session\b|\blatest session\b', re.I)
_re_stderr_out = re.compile(r'data-mime-type="application/vnd\.jupyter\.stderr"[^>]*>(.*?)</div>', re.DOTALL)

def leftovers(page:str) -> list[str]:
    """What a published page must not show: raw TeX outside typeset math, a folder of the machine that rendered it,
    a warning or traceback in an output, words about how the project is developed. Empty for a clean page."""
    t = _Text(); t.feed(page)
    prose, code = ''.join(t.prose), ''.join(t.code)
    out = [f'raw TeX {m.group(0)[:60]!r}' for m in _re_raw_tex.finditer(prose)][:3]
    out += [f'machine path {m.group(0)[:80]!r}' for m in _re_machine_path.finditer(prose + '\n' + code)][:3]
    for m in _re_stderr_out.finditer(page):
        txt = html.unescape(re.sub(r'<[^>]+>', '', m.group(1)))
        w = re.search(r'^.*\b(?:\w*Warning|Traceback)\b.*$', txt, re.M)
        if w: out.append(f'warning box {w.group(0).strip()[:100]!r}')
    out += [f'development words {m.group(0)!r}' for m in _re_dev_words.finditer(prose)][:3]
    return out

def to_html(nb, name:str, title:str, src_dir:Path, out:Path, cfg:dict, pages:list[dict]=(), banner:str='') -> str:
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
                                                    'sc_css': CSS, 'sc_nav': nav_bar(cfg), 'sc_banner': banner,
                                                    'sc_sidebar': sidebar(list(pages), name),
                                                    'sc_prevnext': prev_next(list(pages), name)})
    page = page.replace('<!--SC-TOC-->', toc(page), 1)
    page = _re_tex_el.sub(lambda m: m.group(1) + m.group(3).replace('\\', '&#92;').replace('$', '&#36;') + m.group(4), page)
    if 'name="viewport"' not in page:   # phones lay the page out at their own width, not at a desktop's
        page = page.replace('<head>', '<head>\n<meta name="viewport" content="width=device-width, initial-scale=1">', 1)
    page = offline_html(page, out)
    bad = remote_loads(page)
    if bad: raise RuntimeError(f'the page would load from the network: {bad[:5]}')
    left = leftovers(page)
    if left: raise RuntimeError(f'the page would show: {"; ".join(left)} (fix the notebook or its outputs)')
    return page

# ------------------------------------------------------------------------------------------ the whole site
SITE_JS = r"""// semicontrast docs: search over every page, '/' to search, plotly figures drawn after the text (visible ones first)
(function () {
  'use strict';
  var box = document.getElementById('sc-search-input'), list = document.getElementById('sc-search-results');
  function esc(t) { return t.replace(/[&<>"]/g, function (c) { return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]; }); }
  function load(cb) {
    if (window.SC_SEARCH_INDEX) { cb(); return; }
    if (load.busy) return; load.busy = true;
    var s = document.createElement('script'); s.src = 'assets/sc-search.js'; s.onload = cb; document.head.appendChild(s);
  }
  function search() {
    var q = box.value.trim().toLowerCase(); list.innerHTML = '';
    if (q.length < 2 || !window.SC_SEARCH_INDEX) return;
    var terms = q.split(/\s+/), hits = [];
    window.SC_SEARCH_INDEX.forEach(function (e) {
      var t = e.t.toLowerCase(), h = e.h.toLowerCase(), x = e.x.toLowerCase(), score = 0;
      for (var i = 0; i < terms.length; i++) {
        var w = terms[i], s = 0;
        if (h === w) s += 30; else if (h.indexOf(w) >= 0) s += 8;
        if (t.indexOf(w) >= 0) s += 3;
        if (x.indexOf(w) >= 0) s += 1;
        if (!s) return;
        score += s;
      }
      hits.push([score, e]);
    });
    hits.sort(function (a, b) { return b[0] - a[0]; });
    hits.slice(0, 12).forEach(function (r) {
      var e = r[1], i = e.x.toLowerCase().indexOf(terms[0]);
      var snip = i < 0 ? e.x.slice(0, 110) : (i > 40 ? '\u2026' : '') + e.x.slice(Math.max(0, i - 40), i + 80) + '\u2026';
      var li = document.createElement('li');
      li.innerHTML = '<a href="' + e.u + '"><b>' + esc(e.h) + '</b> <span class="sc-where">' + esc(e.t) +
                     '</span><br><span class="sc-snip">' + esc(snip) + '</span></a>';
      list.appendChild(li);
    });
    if (!hits.length) list.innerHTML = '<li><a>No match</a></li>';
  }
  if (box) {
    box.addEventListener('focus', function () { load(search); });
    box.addEventListener('input', function () { load(search); });
    box.addEventListener('keydown', function (ev) {
      if (ev.key === 'Enter') { var a = list.querySelector('a[href]'); if (a) window.location.href = a.href; }
      if (ev.key === 'Escape') { list.innerHTML = ''; box.blur(); }
    });
    document.addEventListener('keydown', function (ev) {
      if (ev.key === '/' && document.activeElement !== box && !/INPUT|TEXTAREA/.test(document.activeElement.tagName)) { ev.preventDefault(); box.focus(); }
    });
    document.addEventListener('click', function (ev) { if (!ev.target.closest('.sc-search')) list.innerHTML = ''; });
  }
  function visible(el) { var r = el.getBoundingClientRect(); return r.bottom > 0 && r.top < window.innerHeight ? 1 : 0; }
  function drawFigures() {
    var todo = [].slice.call(document.querySelectorAll('script[type="text/x-sc-plotly"]'));
    if (!todo.length || !window.SC_PLOTLY_JS) return;
    var s = document.createElement('script'); s.src = window.SC_PLOTLY_JS;
    s.onload = function () {
      todo.sort(function (a, b) { return visible(b.parentNode) - visible(a.parentNode); });
      (function next() {
        var fig = todo.shift(); if (!fig) return;
        try { (new Function(fig.textContent))(); } catch (err) { console.error(err); }
        setTimeout(next, 0);
      })();
    };
    document.head.appendChild(s);
  }
  if (document.readyState === 'complete') drawFigures(); else window.addEventListener('load', drawFigures);
  // equations: KaTeX (stored in assets/katex) typesets every .sc-tex element once the text is up
  function typeset() {
    var els = [].slice.call(document.querySelectorAll('.sc-tex'));
    if (!els.length) return;
    var css = document.createElement('link'); css.rel = 'stylesheet'; css.href = 'assets/katex/katex.min.css';
    document.head.appendChild(css);
    var s = document.createElement('script'); s.src = 'assets/katex/katex.min.js';
    s.onload = function () {
      els.forEach(function (el) {
        try { window.katex.render(el.textContent, el, {displayMode: el.classList.contains('sc-tex-display'), throwOnError: false}); }
        catch (err) { console.error(err); }
      });
      document.body.setAttribute('data-sc-math', String(els.length));
    };
    document.head.appendChild(s);
  }
  typeset();
  // narrow screens: the menu button opens the sidebar; the table of contents starts closed and closes after a jump
  var btn = document.querySelector('.sc-menu-btn');
  if (btn) btn.addEventListener('click', function () {
    var open = document.body.classList.toggle('sc-menu-open');
    btn.setAttribute('aria-expanded', open ? 'true' : 'false');
  });
  var toc = document.querySelector('.sc-toc details'), narrow = window.matchMedia('(max-width: 1300px)');
  if (toc) {
    if (narrow.matches) toc.removeAttribute('open');
    toc.addEventListener('click', function (ev) { if (narrow.matches && ev.target.closest('a')) toc.removeAttribute('open'); });
  }
  document.addEventListener('click', function (ev) {
    if (document.body.classList.contains('sc-menu-open') && !ev.target.closest('.sc-sidebar, .sc-menu-btn')) {
      document.body.classList.remove('sc-menu-open'); if (btn) btn.setAttribute('aria-expanded', 'false');
    }
  });
})();
"""

_re_sym_heading = re.compile(r'<h[34] id="([A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*)"')
_re_code_sym = re.compile(r'<code>((?:semicontrast\.)?[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)(\(\))?</code>')
_re_section = re.compile(r'<h([1-4]) id="([^"]+)"[^>]*>(.*?)(?:<a class="anchor-link"[^>]*>.*?</a>)?</h\1>', re.DOTALL)

def api_symbols(root:Path=ROOT) -> set[str]:
    "The library's public names as its pages title them (`name`, `Class.method`), from nbdev's semicontrast/_modidx.py."
    import ast
    f = root/'semicontrast'/'_modidx.py'
    if not f.exists(): return set()
    tree = ast.parse(f.read_text(encoding='utf-8'))
    d = next(ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign) and getattr(n.targets[0], 'id', '') == 'd')
    out = set()
    for mod, syms in d.get('syms', {}).items():
        for full in syms:
            short = full[len(mod) + 1:]
            if short and not any(part.startswith('_') for part in short.split('.')): out.add(short)
    return out

def _main_of(page:str) -> tuple[int, int]:
    a = page.find('<main>'); b = page.rfind('</main>')
    return (a, b) if 0 <= a < b else (0, len(page))

def doclinks(page:str, anchors:dict) -> str:
    "Backticked API names in the page's text (`<code>name</code>`, `name()`, `semicontrast.mod.name`) as links to their documentation."
    a, b = _main_of(page)
    parts = re.split(r'(<pre\b.*?</pre>|<h[1-6]\b.*?</h[1-6]>|<a\b.*?</a>)', page[a:b], flags=re.DOTALL)
    def sub(m):
        name = m.group(1)
        key = name if name in anchors else '.'.join(name.split('.')[2:]) if name.startswith('semicontrast.') else None
        if key not in anchors: return m.group(0)
        return f'<a class="sc-doclink" href="{anchors[key]}"><code>{name}{m.group(2) or ""}</code></a>'
    body = ''.join(p if i % 2 else _re_code_sym.sub(sub, p) for i, p in enumerate(parts))
    return page[:a] + body + page[b:]

def search_entries(name:str, page:str) -> list[dict]:
    "One search entry per section of a page (its heading, and the section's text, shortened)."
    a, b = _main_of(page)
    body = re.sub(r'<(script|style)\b.*?</\1>|<details\b.*?</details>|<aside\b.*?</aside>|<nav\b.*?</nav>', ' ', page[a:b], flags=re.DOTALL)
    title_m = re.search(r'<title>(.*?)</title>', page, re.DOTALL)
    title = _text(title_m.group(1)).replace(' - semicontrast', '') if title_m else name
    heads = list(_re_section.finditer(body))
    out = []
    for k, m in enumerate(heads):
        end = heads[k + 1].start() if k + 1 < len(heads) else len(body)
        text = ' '.join(_text(re.sub(r'<[^>]+>', ' ', body[m.end():end])).split())
        out.append({'t': title, 'h': _text(m.group(3)), 'u': f'{name}.html#{m.group(2)}', 'x': text[:600]})
    if not heads: out.append({'t': title, 'h': title, 'u': f'{name}.html', 'x': ' '.join(_text(body).split())[:600]})
    return out

_re_sidebar = re.compile(r'<aside\b[^>]*\bclass="sc-sidebar"[^>]*>.*?</aside>', re.DOTALL)   # attributes in any order
_re_prevnext = re.compile(r'<nav\b[^>]*\bclass="sc-prevnext"[^>]*>.*?</nav>', re.DOTALL)

def site_pass(out:Path, root:Path=ROOT, pages:list[dict]|None=None) -> dict:
    """After pages are written: give every page in `out` the sidebar and previous / next links of `pages` (so that a page
    rendered earlier lists a page added or renamed since), link backticked API names to the page documenting them, and
    write the search index over all pages (assets/sc-search.js) and the site script (assets/sc-site.js)."""
    import json
    files = sorted(out.glob('*.html'))
    known, anchors = api_symbols(root), {}
    texts = {f.stem: f.read_text(encoding='utf-8') for f in files}
    if pages is not None:
        for stem, page in texts.items():
            page = _re_sidebar.sub(lambda m: sidebar(pages, stem), page, count=1)
            texts[stem] = _re_prevnext.sub(lambda m: prev_next(pages, stem), page, count=1)
    for stem, page in texts.items():
        for sym in _re_sym_heading.findall(page):
            if sym in known and sym not in anchors: anchors[sym] = f'{stem}.html#{sym}'
    entries, n_links = [], 0
    for f in files:
        page = doclinks(texts[f.stem], anchors)
        n_links += page.count('class="sc-doclink"')
        if page != f.read_text(encoding='utf-8'): f.write_text(page, encoding='utf-8')
        entries += search_entries(f.stem, page)
    (out/'assets').mkdir(parents=True, exist_ok=True)
    (out/'assets'/'sc-search.js').write_text('window.SC_SEARCH_INDEX = ' + json.dumps(entries, ensure_ascii=False, separators=(',', ':')) + ';\n', encoding='utf-8')
    (out/'assets'/'sc-site.js').write_text(SITE_JS, encoding='utf-8')
    copy_katex(out)
    return {'pages': len(files), 'symbols': len(anchors), 'links': n_links, 'entries': len(entries)}

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
    ap.add_argument('--keep', metavar='DIR', help='also save each executed tutorial (outputs and how it was run) to DIR/<name>.ipynb')
    ap.add_argument('--stored', metavar='DIR', default=None,
                    help='render tutorials from the executed copies kept in DIR (by --keep) instead of running them')
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

    keep = None if not a.keep else (Path(a.keep) if Path(a.keep).is_absolute() else root/a.keep)
    stored = None if not a.stored else (Path(a.stored) if Path(a.stored).is_absolute() else root/a.stored)
    site_pages = pages + [dict(name='index', title='Home', summary='', group='Home')]   # the sidebar and prev / next
    failed, t_all = [], time.time()
    print(f'render_docs: {len(todo)} notebook(s) -> {out} (size {a.size}{", no execution" if a.no_execute else ""})', flush=True)
    for p in todo:
        t0, name = time.time(), p.stem
        try:
            if p == idx_path and not p.exists():
                import nbformat; nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# semicontrast')])
            else: nb = read_nb(p)
            from_store = stored is not None and group_of(p) == 'Tutorials'
            if from_store:
                if not (stored/p.name).exists(): raise RuntimeError(f'no executed copy {stored/p.name}: run with --keep {a.stored} first')
                nb = with_stored_outputs(nb, read_nb(stored/p.name), stored/p.name)
            run = not (a.no_execute or from_store)
            if run and group_of(p) != 'Tutorials': add_show_docs(nb)
            skipped = skipped_cells(nb, set(a.flags), tst_flags) if run else {}
            if run:
                t_run = time.time(); execute(nb, p.parent, env, a.timeout, skipped)
                nb.metadata['semicontrast_render'] = render_record(a.size, time.time() - t_run, root)
                if keep is not None and group_of(p) == 'Tutorials':
                    import copy, nbformat
                    kept = slim_outputs(copy.deepcopy(nb), out)
                    keep.mkdir(parents=True, exist_ok=True); nbformat.write(kept, str(keep/p.name))
            title, _ = title_summary(nb, name)
            banner = render_banner(nb.metadata.get('semicontrast_render'), cfg.get('version', '')) if group_of(p) == 'Tutorials' else ''
            clean_for_page(nb, skipped, p.parent)
            if name == 'index':           # the list of pages closes the home page (the nav bar links to it)
                import nbformat
                nb.cells.append(nbformat.v4.new_markdown_cell(pages_cell(pages)))
            page = to_html(nb, name, title, p.parent, out, cfg, site_pages, banner)
            (out/f'{name}.html').write_text(page, encoding='utf-8')
            print(f'  ok      {name:<28} {time.time()-t0:6.1f} s  -> {(out/name).relative_to(out.parent)}.html', flush=True)
        except Exception as e:
            msg = str(e).strip() or repr(e)
            if not msg or type(e).__name__ not in ('CellExecutionError', 'TimeoutError', 'RuntimeError'):
                msg = ''.join(traceback.format_exception(e))
            failed.append(name)
            print(f'  FAILED  {name:<28} {time.time()-t0:6.1f} s  ({p})\n{_indent(msg)}', file=sys.stderr, flush=True)
    print(f'render_docs: {len(todo)-len(failed)} page(s) written in {time.time()-t_all:.1f} s', flush=True)
    st = site_pass(out, root, site_pages)
    print(f"render_docs: site: {st['pages']} pages, {st['symbols']} API names, {st['links']} doc links, "
          f"{st['entries']} search entries", flush=True)
    if failed:
        print(f'render_docs: these notebooks failed, their pages were not written: {" ".join(failed)}', file=sys.stderr)
        return 1
    return 0

def slim_outputs(nb, out:Path):
    "An executed notebook to keep: inline plotly.js in its HTML outputs replaced by the shared copy in <out>/assets."
    for c in nb.cells:
        for o in c.get('outputs', []):
            h = o.get('data', {}).get('text/html')
            if h and 'plotly.js v' in h: o['data']['text/html'] = offline_html(h if isinstance(h, str) else ''.join(h), out)
    return nb

def with_stored_outputs(nb, stored, where:Path):
    """The current notebook (its prose) with the outputs and run record of its kept executed copy, which must have
    exactly the same code cells: a tutorial whose code changed has to be run again (--keep)."""
    code = lambda n: [c.source for c in n.cells if c.cell_type == 'code']
    if code(nb) != code(stored):
        diff = next(i for i, (x, y) in enumerate(zip(code(nb) + [None], code(stored) + [None])) if x != y)
        raise RuntimeError(f'{where}: code cell {diff} differs from the notebook; its outputs are stale. '
                           'Run the tutorial again with --keep (e.g. --size reduced --keep docs/executed).')
    outs = iter([c for c in stored.cells if c.cell_type == 'code'])
    for c in nb.cells:
        if c.cell_type == 'code':
            s = next(outs); c.outputs, c.execution_count = s.outputs, s.execution_count
    nb.metadata['semicontrast_render'] = stored.metadata.get('semicontrast_render')
    return nb

def render_record(size:str, seconds:float, root:Path=ROOT) -> dict:
    "How a tutorial page was made: run size, device, threads, seconds, date, package version and commit (stored in the notebook's metadata)."
    import datetime, subprocess
    try: commit = subprocess.run(['git', '-C', str(root), 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip()
    except OSError: commit = ''
    try:
        import torch; device = 'GPU ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'CPU'
    except ImportError: device = 'CPU'
    threads = os.environ.get('OMP_NUM_THREADS') or str(os.cpu_count())
    return {'size': size, 'device': device, 'threads': threads, 'seconds': round(seconds, 1),
            'date': datetime.date.today().isoformat(), 'version': _settings(root).get('version', ''), 'commit': commit}

def _duration(sec:float) -> str:
    m, s = divmod(int(round(sec)), 60); h, m = divmod(m, 60)
    return f'{h} h {m:02d} min' if h else f'{m} min {s:02d} s' if m else f'{s} s'

def render_banner(rec, version:str='') -> str:
    "The line on top of a tutorial page: at which size it was run, on what, how long it took, when, and with which release (`version` for records that lack one)."
    if not rec: return ''
    what = {'smoke': 'the <b>smoke</b> size (a few steps of a tiny network: its numbers mean nothing)',
            'reduced': 'the <b>reduced</b> CPU size (a real but short experiment; the full run is longer and scores higher)',
            'full': 'the <b>full</b> size (the paper-scale protocol)'}.get(rec.get('size'), html.escape(str(rec.get('size'))))
    t = str(rec.get('threads') or '')
    threads = f", {t} thread{'' if t == '1' else 's'}" if rec.get('device') == 'CPU' and t else ''
    return (f'<div class="sc-rendered">This page shows the outputs of running the notebook at {what} on '
            f'{html.escape(rec.get("device", "?"))}{threads}: {_duration(rec.get("seconds", 0))}, on {rec.get("date", "")} with '
            f'semicontrast {html.escape(str(rec.get("version") or version))}. Widgets need a live kernel; '
            'open the notebook in JupyterLab or Colab to use them.</div>')

def _usage(msg:str):
    print(f'render_docs: {msg}', file=sys.stderr); raise SystemExit(2)

def _indent(s:str, n:int=60) -> str:
    lines = s.splitlines()
    if len(lines) > n: lines = lines[:10] + ['    ...'] + lines[-(n-11):]
    return '\n'.join('    ' + l for l in lines)

if __name__ == '__main__': sys.exit(main())
