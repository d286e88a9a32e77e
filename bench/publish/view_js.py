"""The sample viewer's script and style (inlined in DIR/index.html by :mod:`bench.publish.view`).

The page holds no records. ``DATA/meta.js`` and ``DATA/index.js`` (loaded by the page's own script
tags, before :data:`SCRIPT` starts) hand it the labels and one binary column file: per continuation
its decoder, finish reason, degenerate flag and the counts its metrics are ratios of, and where each
prompt's continuations start. Filters run over those columns (a million continuations in a few
milliseconds); texts come from ``DATA/c<k>.js`` chunk files, injected as script tags when a page of
prompts shows them or a search reads them (browsers refuse ``fetch()`` of file:// addresses).

Filtering: a continuation is shown when its decoder is ticked, its finish reason selected, the
chosen metric within [min, max], its degenerate flag as asked, the search text (case-insensitive)
found in it, its prompt or its reference, and (``--judged``) its prompt holds the chosen verdict
("A beat B"); a prompt is shown while one of its continuations is. A search reads the chunks in
order, a few at a time between the browser's other work, and a page of prompts appears as soon as
the chunks read so far fill it; a longer query that extends the last one only reads the chunks
that matched it. ``#decoder=LABEL`` in the address ticks that decoder alone (the leaderboard page
links there). ``<html data-busy>`` is 1 while a search, a chunk or a render is pending (tests wait on it).
Every text goes into the page as a text node; the only HTML inserted is the judge's verdict block,
escaped by Python (``view._verdicts``).
"""

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:1.5em auto;max-width:1600px;color:#222;padding:0 1em}
h1{font-size:1.5em}.note{color:#555}
form.filters{position:sticky;top:0;background:#fafafa;border:1px solid #ddd;padding:.6em;z-index:1;font-size:13px}
form.filters fieldset{display:inline-block;border:none;margin:0 1em 0 0;padding:0;vertical-align:top}
form.filters label{margin-right:.8em;white-space:nowrap}
section.prompt{border-top:2px solid #ccc;margin-top:1.5em;padding-top:.5em}
section.prompt h2{font-size:1em;color:#555;margin:.2em 0}
.text{white-space:pre-wrap;font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;background:#f6f6f6;
  padding:.4em;border-radius:3px;margin:.2em 0;overflow-wrap:anywhere}
.text.empty::after{content:"(empty)";color:#999}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:.8em;margin-top:.6em}
.cont{border:1px solid #ddd;border-radius:4px;padding:.4em}.cont h3{font-size:13px;margin:0 0 .2em}
.metrics{font-size:11px;color:#444}.metrics span{margin-right:.7em;white-space:nowrap}
.label{font-size:12px;color:#666;margin-top:.3em}
form.filters input[type=number]{width:6em}
.pager{margin-top:.4em}.pager input{width:5em}
.hidden{display:none}
.verdicts{font-size:12px;margin:.4em 0}.verdicts details{margin:.2em 0}.verdicts .why{white-space:pre-wrap;
  font-family:ui-monospace,Menlo,Consolas,monospace;font-size:11px;background:#f3f6fb;padding:.3em;margin:.2em 0}
.verdict-a,.verdict-b{font-weight:600}
mark{background:#ffe08a;padding:0}.tok{border-radius:2px}.degenerate{color:#b00;font-weight:600}
"""

SCRIPT = r"""
(function(){
'use strict';
var V = window.VIEW = {}, M = null, C = {}, N = 0, P = 0, nChunks = 0;
var cache = new Map(), CACHE = 40, waiting = {}, doc = document.documentElement;
var form, base, contPrompt, matched, nMatched = 0, nShown = 0, upTo = 0, viewGen = 0, rendered = '';
var hits = null, chunkHits = null, scan = null, query = '', lastQ = '', lastDone = true, typing = null, rendering = 0;
var METRICS = [['rep2', 'rep-2'], ['rep4', 'rep-4'], ['distinct2', 'distinct-2'], ['ttr', 'ttr'],
               ['lengthwords', 'length-words'], ['lengthtokens', 'length-tokens']];
var WS = /([\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]+)/;  // Python's \s
V.meta = function(m){ M = m; M.dir = document.currentScript.getAttribute('src').replace(/\/meta\.js$/, ''); };
V.index = function(b64){
  var bin = atob(b64), bytes = new Uint8Array(bin.length), T = {u8: Uint8Array, u16: Uint16Array, u32: Uint32Array};
  for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  Object.keys(M.layout).forEach(function(name){ var l = M.layout[name]; C[name] = new T[l[1]](bytes.buffer, l[0], l[2]); });
};
V.chunk = function(k, d){
  cache.set(k, d);
  if (cache.size > CACHE) cache.delete(cache.keys().next().value);
  var cbs = waiting[k] || []; delete waiting[k];
  cbs.forEach(function(f){ f(d); });
};
function load(k, cb){
  var d = cache.get(k);
  if (d){ cache.delete(k); cache.set(k, d); cb(d); return; }
  if (waiting[k]){ waiting[k].push(cb); return; }
  waiting[k] = [cb];
  var s = document.createElement('script');
  s.src = M.dir + '/c' + k + '.js';
  s.onload = function(){ s.remove(); };
  s.onerror = function(){ s.remove(); delete waiting[k]; fail('could not read ' + s.src + ': is the folder complete?'); };
  document.head.appendChild(s);
}
var channel = new MessageChannel(), queued = [];  // a task without setTimeout's 4 ms clamp
channel.port1.onmessage = function(){ queued.shift()(); };
function later(f){ queued.push(f); channel.port2.postMessage(0); }
function fail(text){ document.getElementById('count').textContent = text; scan = null; rendering = 0; setBusy(); }
function setBusy(){ doc.dataset.busy = (typing || scan || rendering) ? '1' : '0'; }

// --- metrics, as bench.scorers.repetition.score_texts computes them for one text (view_data.metrics_of)
function ratio(a, b){ return b > 0 ? a / b : NaN; }
function metric(key, i){
  var w = C.words[i];
  switch (key){
    case 'rep2': return 1 - ratio(C.rep2_unique[i], w - 2);
    case 'rep4': return 1 - ratio(C.rep4_unique[i], w - 4);
    case 'distinct2': return ratio(C.distinct2_unique[i], w - 1);
    case 'ttr': return ratio(C.token_types[i], C.tokens[i]);
    case 'lengthwords': return w;
    default: return C.tokens[i];
  }
}
function fix(v, d){  // Python's f'{v:.{d}f}': toFixed rounds an exact tie (0.0625) up, Python to the even digit
  var a = Math.abs(v), s = a.toFixed(d), exact = a.toFixed(d + 30);  // toFixed's digits are exact
  if (/^50{29}$/.test(exact.slice(-30))){
    var down = exact.slice(0, exact.length - (d ? 30 : 31));
    if ((+down.charAt(down.length - 1)) % 2 === 0) s = down;
  }
  return v < 0 ? '-' + s : s;
}
function fmt(name, v){ return isNaN(v) ? 'n/a' : fix(v, name.indexOf('length') === 0 ? 0 : 3); }

// --- filters over the columns
function num(id){ var v = document.getElementById(id).value; return v === '' ? null : parseFloat(v); }
function computeBase(){
  var on = new Uint8Array(M.decoders.length);
  form.querySelectorAll('input.decoder').forEach(function(b){ if (b.checked) on[M.decoders.indexOf(b.value)] = 1; });
  var fin = M.finishes.indexOf(document.getElementById('finish').value), finVal = document.getElementById('finish').value;
  var deg = document.getElementById('degenerate').value, key = document.getElementById('metric').value;
  var lo = num('min'), hi = num('max'), ranged = lo !== null || hi !== null;
  var judged = document.getElementById('judged'), verdict = judged ? judged.value : '', ok = null;
  if (verdict){ ok = new Uint8Array(P); (M.verdicts[verdict] || []).forEach(function(p){ ok[p] = 1; }); }
  var dec = C.decoder, fi = C.finish, dg = C.degenerate, only = deg === 'only' ? 1 : 0;
  for (var i = 0; i < N; i++){
    var b = on[dec[i]] && (finVal === '' || fi[i] === fin) && (!deg || dg[i] === only) && (!ok || ok[contPrompt[i]]);
    if (b && ranged){ var v = metric(key, i); b = !isNaN(v) && (lo === null || v >= lo) && (hi === null || v <= hi); }
    base[i] = b ? 1 : 0;
  }
}
// prompts [upTo, pTo) join the matched list (a search adds them chunk by chunk, in order)
function extend(pTo){
  var ps = C.prompt_start;
  for (var p = upTo; p < pTo; p++){
    var any = false;
    for (var i = ps[p]; i < ps[p + 1]; i++) if (base[i] && (!query || hits[i])){ nShown++; any = true; }
    if (any) matched[nMatched++] = p;
  }
  upTo = pTo;
}
function refresh(){
  viewGen++; nMatched = nShown = upTo = 0;
  extend(scan ? M.chunks[scan.next] : P);
  update();
}
function onFilter(){ computeBase(); page(0); refresh(); }

// --- search: the chunks in order, with a time budget per task so the page stays responsive
function onSearch(){
  typing = null;
  var q = document.getElementById('search').value.toLowerCase();
  if (q === query && (scan || lastDone)){ setBusy(); return; }
  var skip = q && lastDone && lastQ && q.indexOf(lastQ) >= 0 ? chunkHits : null;  // a longer query: a subset
  query = q; lastQ = q; lastDone = !q; page(0);
  hits = new Uint8Array(q ? N : 0); chunkHits = new Uint32Array(nChunks);
  scan = q ? {q: q, next: 0, skip: skip} : null;
  refresh();
  if (scan) step(scan);
}
function step(s){
  var until = performance.now() + 30;
  while (s === scan){
    while (s.next < nChunks && s.skip && !s.skip[s.next]) s.next++;
    if (s.next >= nChunks){ scan = null; lastDone = true; extend(P); update(); return; }
    var k = s.next, d = cache.get(k);
    for (var j = k + 1, n = 0; j < nChunks && n < 3; j++) if (!s.skip || s.skip[j]){ n++; if (!cache.has(j)) load(j, function(){}); }
    if (!d){ load(k, function(){ if (s === scan) step(s); }); return; }
    searchChunk(k, d, s.q); s.next = k + 1; extend(M.chunks[s.next]);
    if (performance.now() > until){ update(); later(function(){ step(s); }); return; }
  }
}
function searchChunk(k, d, q){
  var ps = C.prompt_start, p0 = M.chunks[k], lo = ps[p0], n = 0;
  var low = d.low || (d.low = d.t.map(function(t){ return t.toLowerCase(); }));
  var plow = d.plow || (d.plow = d.p.map(function(r){ return (r[2] + '\n' + (r[3] === null ? '' : r[3])).toLowerCase(); }));
  for (var p = p0; p < M.chunks[k + 1]; p++){
    var inPrompt = plow[p - p0].indexOf(q) >= 0;
    for (var i = ps[p]; i < ps[p + 1]; i++) if (inPrompt || low[i - lo].indexOf(q) >= 0){ hits[i] = 1; n++; }
  }
  chunkHits[k] = n;
}

// --- the page of prompts
var pageNo = 0;
function page(n){ pageNo = n; }
function update(){
  var S = M.pageSize, pages = Math.max(1, Math.ceil(nMatched / S));
  if (!scan && pageNo >= pages) pageNo = pages - 1;
  var first = pageNo * S, last = Math.min(first + S, nMatched);
  var pct = scan ? Math.floor(100 * scan.next / nChunks) : 100;
  document.getElementById('count').textContent = nShown + ' of ' + N + ' continuations shown' +
    (scan ? ' so far (searching the texts: ' + pct + '%)' : '');
  document.getElementById('pages').textContent = nMatched ? 'prompts ' + (first + 1) + '\u2013' + last + ' of ' + nMatched +
    (scan ? '+' : '') + ', page ' + (pageNo + 1) + ' of ' + pages + (scan ? '+' : '') : 'no prompt matches';
  document.getElementById('prev').disabled = pageNo === 0;
  document.getElementById('next').disabled = !scan && pageNo >= pages - 1;
  if (!scan || nMatched >= first + S) render(Array.prototype.slice.call(matched, first, last));
  else if (rendered !== viewGen + ':' + pageNo){  // this page is not known yet: no stale prompts meanwhile
    rendered = ''; document.getElementById('prompts').replaceChildren(el('p', 'note', 'searching\u2026'));
  }
  setBusy();
}
function chunkOf(p){ var a = 0, b = nChunks - 1; while (a < b){ var m = (a + b + 1) >> 1; if (M.chunks[m] <= p) a = m; else b = m - 1; } return a; }
function render(list){
  var key = viewGen + ':' + pageNo;
  if (key === rendered) return;
  rendered = key;
  var need = [], got = {}, left;
  list.forEach(function(p){ var k = chunkOf(p); if (need.indexOf(k) < 0) need.push(k); });
  left = need.length; rendering++;
  var done = function(){
    rendering--;
    if (rendered !== key){ setBusy(); return; }
    var out = document.getElementById('prompts');
    out.replaceChildren.apply(out, list.map(function(p){ var k = chunkOf(p); return section(p, got[k], k); }));
    setBusy();
  };
  if (!left){ done(); return; }
  need.forEach(function(k){ load(k, function(d){ got[k] = d; if (--left === 0) done(); }); });
}
function el(tag, cls, text){
  var e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function section(p, d, k){
  var r = d.p[p - M.chunks[k]], s = el('section', 'prompt'), ctx = el('div', 'context'), lo = C.prompt_start[M.chunks[k]];
  s.dataset.promptId = r[1]; s.dataset.verdicts = r[4];
  s.appendChild(el('h2', null, M.suites[r[0]] + ' / ' + r[1]));
  ctx.appendChild(el('div', 'label', 'prompt')); ctx.appendChild(el('div', 'text prompt-text', r[2]));
  if (r[3] !== null){ ctx.appendChild(el('div', 'label', 'reference')); ctx.appendChild(el('div', 'text ref', r[3])); }
  s.appendChild(ctx);
  if (r[5]) s.insertAdjacentHTML('beforeend', r[5]);  // escaped by view._verdicts
  var grid = el('div', 'grid');
  for (var i = C.prompt_start[p]; i < C.prompt_start[p + 1]; i++)
    if (base[i] && (!query || hits[i])) grid.appendChild(card(i, d, i - lo));
  s.appendChild(grid);
  return s;
}
function card(i, d, j){
  var label = M.decoders[C.decoder[i]], finish = M.finishes[C.finish[i]], c = el('div', 'cont'), m = el('div', 'metrics');
  c.dataset.decoder = label; c.dataset.finish = finish; c.dataset.degenerate = C.degenerate[i];
  METRICS.forEach(function(x){
    var v = metric(x[0], i);
    c.dataset[x[0]] = isNaN(v) ? '' : String(v);
    m.appendChild(el('span', null, x[1] + ' ' + fmt(x[1], v))); m.appendChild(document.createTextNode(' '));
  });
  var tr = d.x[j], text = d.t[j], body = el('div', 'text' + (text ? '' : ' empty'));
  if (tr && tr[1].length){
    var sum = 0; tr[1].forEach(function(v){ sum += v; });
    m.appendChild(el('span', null, 'mean log-prob ' + fix(sum / tr[1].length, 3))); m.appendChild(document.createTextNode(' '));
  }
  if (C.degenerate[i]){ m.appendChild(el('span', 'degenerate', 'degenerate')); m.appendChild(document.createTextNode(' ')); }
  m.appendChild(el('span', null, 'finish ' + (finish || 'n/a')));
  c.appendChild(el('h3', null, label + (d.s[j] ? ' sample ' + d.s[j] : '')));
  c.appendChild(m);
  if (tr && tr[0].length) shade(body, tr); else marks(body, text);
  c.appendChild(body);
  return c;
}
V.marks = marks; V.shade = shade; V.fix = fix;  // for tests/test_view_traces.py
// each word inside a repeated word 4-gram (rep-4's n-grams) in a <mark>, whitespace kept as it is
function marks(body, text){
  var parts = text.split(WS), words = parts.filter(function(_, j){ return j % 2 === 0; });
  var seen = new Map(), marked = new Uint8Array(words.length), run = '', i;
  var gram = function(i){ return JSON.stringify(words.slice(i, i + 4)); };
  for (i = 0; i + 4 <= words.length; i++) seen.set(gram(i), (seen.get(gram(i)) || 0) + 1);
  for (i = 0; i + 4 <= words.length; i++) if (seen.get(gram(i)) > 1) marked.fill(1, i, i + 4);
  parts.forEach(function(part, j){
    if (j % 2 === 0 && part && marked[j / 2]){
      if (run) body.appendChild(document.createTextNode(run));
      run = ''; body.appendChild(el('mark', null, part));
    } else run += part;
  });
  if (run) body.appendChild(document.createTextNode(run));
}
// each token on a background as strong as it was unlikely under the model, p, entropy and rank in its tooltip
function shade(body, tr){
  var n = Math.min(tr[0].length, tr[1].length, tr[2].length, tr[3].length);
  for (var t = 0; t < n; t++){
    var p = Math.exp(tr[1][t]), rank = tr[3][t], s = el('span', 'tok', tr[0][t]);
    s.setAttribute('style', 'background:rgba(230,120,0,' + fix(1 - p, 2) + ')');
    s.title = 'p=' + fix(p, 3) + ' entropy' + tr[4] + fix(tr[2][t], 2) + ' rank ' + (rank === null || rank === undefined ? tr[5] : rank);
    body.appendChild(s);
  }
}

V.start = function(){
  form = document.querySelector('form.filters');
  if (!M || !C.prompt_start){ fail('the data files beside this page did not load: is its folder complete?'); return; }
  N = M.n; P = M.prompts; nChunks = M.chunks.length - 1;
  base = new Uint8Array(N); matched = new Uint32Array(P); contPrompt = new Uint32Array(N);
  for (var p = 0; p < P; p++) contPrompt.fill(p, C.prompt_start[p], C.prompt_start[p + 1]);
  var hash = decodeURIComponent(location.hash.slice(1)), boxes = form.querySelectorAll('input.decoder');
  if (hash.indexOf('decoder=') === 0 && Array.prototype.some.call(boxes, function(b){ return b.value === hash.slice(8); }))
    boxes.forEach(function(b){ b.checked = b.value === hash.slice(8); });
  form.addEventListener('input', function(e){
    if (e.target.id === 'search'){ clearTimeout(typing); typing = setTimeout(onSearch, 150); setBusy(); }
    else if (e.target.id === 'page'){ var n = parseInt(e.target.value, 10); if (n >= 1){ page(n - 1); update(); } }
    else onFilter();
  });
  form.addEventListener('submit', function(e){ e.preventDefault(); });
  document.getElementById('prev').addEventListener('click', function(){ page(Math.max(0, pageNo - 1)); update(); });
  document.getElementById('next').addEventListener('click', function(){ page(pageNo + 1); update(); });
  computeBase(); refresh();
};
})();
"""
