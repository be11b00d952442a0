// keel dashboard charts: a tiny canvas line and bar chart, embedded in the
// binary so the dashboard works offline and loads nothing from a CDN.
// Values arrive as decimal strings; charts only need approximate positions,
// so converting to binary floats here is fine (tables show exact text).
'use strict';
(function (global) {
  var AXIS = '#8a94a6';
  var GRID = 'rgba(138,148,166,0.25)';
  var FONT = '11px system-ui, sans-serif';
  var PAD = { l: 64, r: 12, t: 10, b: 24 };

  // Sizes the backing store to the element's CSS size and device pixel
  // ratio, so lines are crisp on high-DPI screens. Returns drawing metrics.
  function setup(canvas, extraBottom) {
    var dpr = global.devicePixelRatio || 1;
    var w = canvas.clientWidth || canvas.width;
    var h = canvas.clientHeight || canvas.height;
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
    var ctx = canvas.getContext('2d');
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = FONT;
    var b = PAD.b + (extraBottom || 0);
    return { ctx: ctx, w: w, h: h, pw: w - PAD.l - PAD.r, ph: h - PAD.t - b };
  }

  // "Nice" tick step (1, 2 or 5 × 10^k) giving about `n` ticks over span.
  function niceStep(span, n) {
    if (!(span > 0)) return 1;
    var raw = span / n;
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var f = raw / mag;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * mag;
  }

  // Tick label in a unit chosen from the axis range, with just enough
  // decimals that neighbouring ticks differ (1.005M, 1.010M, ...).
  function fmtTick(v, step, top) {
    var unit = top >= 1e9 ? 1e9 : top >= 1e6 ? 1e6 : top >= 1e4 ? 1e3 : 1;
    var suffix = unit === 1e9 ? 'B' : unit === 1e6 ? 'M' : unit === 1e3 ? 'k' : '';
    var dp = Math.max(0, Math.min(4, -Math.floor(Math.log10(step / unit) + 1e-9)));
    return (v / unit).toFixed(dp) + suffix;
  }

  // Draws the y grid and labels for [lo, hi]; returns a value→pixel map.
  function yAxis(m, lo, hi) {
    if (lo === hi) { lo -= 1; hi += 1; }
    var step = niceStep(hi - lo, 5);
    lo = Math.floor(lo / step) * step;
    hi = Math.ceil(hi / step) * step;
    var y = function (v) { return PAD.t + m.ph - ((v - lo) / (hi - lo)) * m.ph; };
    var ctx = m.ctx;
    var top = Math.max(Math.abs(lo), Math.abs(hi));
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (var v = lo; v <= hi + step / 2; v += step) {
      ctx.strokeStyle = GRID;
      ctx.beginPath();
      ctx.moveTo(PAD.l, Math.round(y(v)) + 0.5);
      ctx.lineTo(PAD.l + m.pw, Math.round(y(v)) + 0.5);
      ctx.stroke();
      ctx.fillStyle = AXIS;
      ctx.fillText(fmtTick(v, step, top), PAD.l - 6, y(v));
    }
    return y;
  }

  // X labels: every one when they fit, else first, middle and last, so long
  // histories stay legible.
  function xLabels(m, labels, x) {
    var ctx = m.ctx;
    ctx.fillStyle = AXIS;
    ctx.textBaseline = 'top';
    var widest = 0;
    labels.forEach(function (l) { widest = Math.max(widest, ctx.measureText(String(l)).width); });
    var all = labels.length > 0 && (widest + 8) * labels.length <= m.pw;
    var idx = all || labels.length <= 2 ? labels.map(function (_, i) { return i; })
      : [0, Math.floor((labels.length - 1) / 2), labels.length - 1];
    idx.forEach(function (i) {
      // Centred under its point, unless that would run off the plot's edge.
      var t = String(labels[i]), half = ctx.measureText(t).width / 2, px = x(i);
      ctx.textAlign = px - half < PAD.l - 4 ? 'left' : px + half > PAD.l + m.pw + PAD.r ? 'right' : 'center';
      ctx.fillText(t, px, PAD.t + m.ph + 6);
    });
  }

  function empty(m, text) {
    m.ctx.fillStyle = AXIS;
    m.ctx.textAlign = 'center';
    m.ctx.textBaseline = 'middle';
    m.ctx.fillText(text || 'no data yet', m.w / 2, m.h / 2);
  }

  // Line chart. opts: {labels: [..], series: [{values: [..], color}]}
  function line(canvas, opts) {
    var m = setup(canvas);
    var series = (opts.series || []).map(function (s) {
      return { color: s.color || '#2563eb', values: s.values.map(Number) };
    });
    var n = opts.labels ? opts.labels.length : 0;
    var all = [];
    series.forEach(function (s) { s.values.forEach(function (v) { if (isFinite(v)) all.push(v); }); });
    if (n === 0 || all.length === 0) return empty(m, opts.emptyText);
    var lo = Math.min.apply(null, all), hi = Math.max.apply(null, all);
    var y = yAxis(m, lo, hi);
    var x = function (i) { return PAD.l + (n === 1 ? m.pw / 2 : (i / (n - 1)) * m.pw); };
    xLabels(m, opts.labels, x);
    var ctx = m.ctx;
    ctx.lineWidth = 2;
    ctx.lineJoin = 'round';
    series.forEach(function (s) {
      ctx.strokeStyle = s.color;
      ctx.beginPath();
      var started = false;
      s.values.forEach(function (v, i) {
        if (!isFinite(v)) { started = false; return; }
        if (started) ctx.lineTo(x(i), y(v)); else { ctx.moveTo(x(i), y(v)); started = true; }
      });
      ctx.stroke();
      if (n === 1) { ctx.fillStyle = s.color; ctx.fillRect(x(0) - 3, y(s.values[0]) - 3, 6, 6); }
    });
  }

  // Every label centred under its own bar (a histogram's buckets must all
  // be named, and each under the bar it counts): in one row when they fit,
  // else alternating between two rows, so neighbours never overlap.
  // Returns where each label went.
  function barLabels(m, labels, x, slot) {
    var ctx = m.ctx;
    ctx.fillStyle = AXIS;
    ctx.textBaseline = 'top';
    ctx.textAlign = 'center';
    var widest = 0;
    labels.forEach(function (l) { widest = Math.max(widest, ctx.measureText(String(l)).width); });
    var rows = widest + 6 <= slot ? 1 : 2;
    return labels.map(function (l, i) {
      var row = rows === 1 ? 0 : i % 2;
      var ly = PAD.t + m.ph + 6 + row * 14;
      ctx.fillText(String(l), x(i), ly);
      return { label: String(l), x: x(i), row: row };
    });
  }

  // Bar chart. opts: {labels, values, color, negColor, everyLabel}. The
  // drawn geometry (each bar's centre and value, each label's centre) is
  // left in the canvas's data-bars attribute for tests and tools.
  function bars(canvas, opts) {
    var vals = (opts.values || []).map(Number);
    var n = vals.length;
    var labels = opts.labels || [];
    var m = setup(canvas, opts.everyLabel ? 14 : 0);
    if (n === 0) { canvas.dataset.bars = '[]'; return empty(m, opts.emptyText); }
    var y = yAxis(m, Math.min(0, Math.min.apply(null, vals)), Math.max(0, Math.max.apply(null, vals)));
    var slot = m.pw / n;
    var bw = Math.max(1, slot * 0.8);
    var x = function (i) { return PAD.l + slot * i + slot / 2; };
    var placed = opts.everyLabel ? barLabels(m, labels, x, slot) : (xLabels(m, labels, x), null);
    canvas.dataset.bars = JSON.stringify(vals.map(function (v, i) {
      return {
        value: v, x: x(i), width: bw,
        label: placed ? placed[i].label : (labels[i] === undefined ? null : String(labels[i])),
        labelX: placed ? placed[i].x : null
      };
    }));
    var ctx = m.ctx;
    vals.forEach(function (v, i) {
      if (!isFinite(v)) return;
      ctx.fillStyle = v < 0 ? (opts.negColor || '#dc2626') : (opts.color || '#2563eb');
      var y0 = y(0), y1 = y(v);
      ctx.fillRect(x(i) - bw / 2, Math.min(y0, y1), bw, Math.max(1, Math.abs(y1 - y0)));
    });
    ctx.strokeStyle = AXIS;
    ctx.beginPath();
    ctx.moveTo(PAD.l, Math.round(y(0)) + 0.5);
    ctx.lineTo(PAD.l + m.pw, Math.round(y(0)) + 0.5);
    ctx.stroke();
  }

  global.KeelChart = { line: line, bars: bars };
})(window);
