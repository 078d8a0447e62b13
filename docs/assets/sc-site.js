// semicontrast docs: search over every page, '/' to search, plotly figures drawn after the text (visible ones first)
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
