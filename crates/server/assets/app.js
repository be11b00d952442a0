// keel dashboard: renders each page from the JSON API and refreshes it in
// place every few seconds. Every value from the server is written with
// textContent or as an attribute value, never parsed as HTML, so a reason or
// detail containing markup shows as text. Nothing here changes server state:
// only GET requests are made.
'use strict';
(function () {
  var body = document.body;
  var PAGE = body.dataset.page;
  var REFRESH_MS = Math.max(1, Number(body.dataset.refresh) || 5) * 1000;
  var BLUE = '#2563eb';
  // With several accounts each one's pages and API live under /a/<id>; the
  // root is the first account. Every fetch and nav link stays in this prefix.
  var BASE = (location.pathname.match(/^\/a\/[A-Za-z0-9_.-]+/) || [''])[0];
  Array.prototype.forEach.call(document.querySelectorAll('header nav a'), function (a) {
    var h = a.getAttribute('href');
    // The all-accounts page is the same from every prefix.
    if (h && h.charAt(0) === '/' && h !== '/accounts') a.setAttribute('href', h === '/' && BASE ? BASE : BASE + h);
  });

  function $(id) { return document.getElementById(id); }

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // Formats a decimal string with `dp` places (half away from zero) and
  // thousands separators, on the digits themselves so exact values stay exact.
  function fmtDec(s, dp) {
    if (s === null || s === undefined || s === '') return '—';
    s = String(s);
    var neg = s.charAt(0) === '-';
    if (neg || s.charAt(0) === '+') s = s.slice(1);
    if (!/^\d*(\.\d*)?$/.test(s)) return (neg ? '-' : '') + s;
    var parts = s.split('.');
    var ip = parts[0] || '0';
    var fp = parts[1] || '';
    if (fp.length > dp) {
      var up = fp.charCodeAt(dp) >= 53; // next digit >= '5'
      fp = fp.slice(0, dp);
      if (up) {
        var d = (ip + fp).split('').map(Number);
        var i = d.length - 1;
        while (i >= 0 && d[i] === 9) { d[i] = 0; i--; }
        if (i < 0) d.unshift(1); else d[i] += 1;
        var all = d.join('');
        ip = all.slice(0, all.length - dp);
        fp = all.slice(all.length - dp);
      }
    } else {
      while (fp.length < dp) fp += '0';
    }
    ip = ip.replace(/^0+(?=\d)/, '') || '0';
    var isZero = /^0*$/.test(ip + fp);
    ip = ip.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
    return (neg && !isZero ? '-' : '') + ip + (dp > 0 ? '.' + fp : '');
  }
  function money(s) { return fmtDec(s, 2); }
  function qty(s) { return fmtDec(s, s && String(s).indexOf('.') >= 0 ? Math.min(6, String(s).split('.')[1].length) : 0); }
  function bps(s) { return fmtDec(s, 2); }
  function pct(s) { return s === null || s === undefined ? '—' : fmtDec(String(Number(s) * 100), 2) + '%'; }
  function time(s) { return s ? String(s).replace('T', ' ').replace(/\.\d+/, '').replace('Z', ' UTC') : '—'; }
  function text(v) { return v === null || v === undefined || v === '' ? '—' : String(v); }

  // Sets an element's text, and its exact value as data-value for scripts and tests.
  function put(id, shown, exact) {
    var e = $(id);
    if (!e) return;
    e.textContent = shown;
    if (exact !== undefined) e.dataset.value = exact === null ? '' : String(exact);
  }

  function signClass(e, s) {
    if (!e) return;
    e.classList.remove('pos', 'neg');
    if (s && String(s).charAt(0) === '-') e.classList.add('neg');
    else if (s && Number(s) > 0) e.classList.add('pos');
  }

  // Replaces a table body with one row per item; cols: [[getter, className, 'pnl'?]].
  function fill(tbodyId, rows, cols, empty) {
    var tb = $(tbodyId);
    if (!tb) return;
    var out = [];
    rows.forEach(function (r) {
      var tr = el('tr');
      cols.forEach(function (c) {
        var v = c[0](r);
        var td = el('td', v, c[1]);
        // Only P&L columns are coloured: a negative slippage or weight gap is not a loss.
        if (c[2] === 'pnl') signClass(td, typeof v === 'string' ? v.replace(/,/g, '') : null);
        tr.appendChild(td);
      });
      out.push(tr);
    });
    if (out.length === 0) {
      var tr = el('tr');
      var td = el('td', empty || 'nothing to show', 'muted');
      td.colSpan = cols.length;
      tr.appendChild(td);
      out.push(tr);
    }
    tb.replaceChildren.apply(tb, out);
  }

  function getJSON(url) {
    url = BASE + url;
    return fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' }).then(function (r) {
      if (!r.ok) {
        return r.json().then(function (b) { throw new Error(url + ': ' + (b && b.error ? b.error : r.status)); },
          function () { throw new Error(url + ': HTTP ' + r.status); });
      }
      return r.json();
    });
  }

  // Query parameters from the filter inputs (ids f-<name>), mirrored into
  // the address bar so a filtered view can be bookmarked.
  function filters(names, noMirror) {
    var q = new URLSearchParams();
    names.forEach(function (n) {
      var e = $('f-' + n);
      if (e && e.value.trim() !== '') q.set(n, e.value.trim());
    });
    var s = q.toString();
    if (!noMirror) history.replaceState(null, '', s ? '?' + s : location.pathname);
    return s ? '?' + s : '';
  }

  function initFilters(names, onChange) {
    var q = new URLSearchParams(location.search);
    names.forEach(function (n) {
      var e = $('f-' + n);
      if (!e) return;
      if (q.has(n)) e.value = q.get(n);
      e.addEventListener('change', onChange);
    });
    var c = $('f-clear');
    if (c) c.addEventListener('click', function () {
      names.forEach(function (n) { var e = $('f-' + n); if (e) e.value = ''; });
      onChange();
    });
  }

  var accountsLoaded = false;
  // The account switcher: filled once; choosing one opens the same page there.
  function accountSwitcher() {
    if (accountsLoaded) return Promise.resolve();
    return getJSON('/api/v1/accounts').then(function (a) {
      accountsLoaded = true;
      var sel = $('hdr-account');
      if (!sel) return;
      var page = location.pathname.slice(BASE.length) || '/';
      if (page === '/accounts') page = '/';
      var opts = a.accounts.map(function (x, i) {
        var o = el('option', x.id || '(default)');
        // The first account is also the root; named ones have their own prefix.
        o.value = page === '/' && x.base ? x.base : (x.base || '') + page;
        if ((x.base || '') === BASE || (BASE === '' && i === 0)) o.selected = true;
        return o;
      });
      sel.replaceChildren.apply(sel, opts);
      sel.dataset.count = String(a.accounts.length);
      sel.addEventListener('change', function () { location.href = sel.value; });
    });
  }

  function header(o) {
    var k = $('hdr-kill');
    if (k) {
      k.textContent = o.kill_switch.engaged ? 'KILL SWITCH ENGAGED' : 'kill switch off';
      k.className = 'badge ' + (o.kill_switch.engaged ? 'bad' : 'good');
    }
    var m = $('hdr-market');
    if (m) {
      m.textContent = o.market.open ? 'market open' : 'market closed';
      m.className = 'badge ' + (o.market.open ? 'good' : 'idle');
    }
  }

  // ---- pages ---------------------------------------------------------------

  var lastEodSeq = -1;

  function overview() {
    return getJSON('/api/v1/overview').then(function (o) {
      header(o);
      put('equity', money(o.equity), o.equity);
      put('cash', money(o.cash), o.cash);
      put('gross-exposure', money(o.gross_exposure), o.gross_exposure);
      put('net-exposure', money(o.net_exposure), o.net_exposure);
      put('unrealized-pnl', money(o.unrealized_pnl), o.unrealized_pnl);
      put('day-pnl', money(o.day_pnl), o.day_pnl);
      signClass($('day-pnl'), o.day_pnl);
      put('day-pnl-basis', o.day_pnl_basis_date ? 'since close of ' + o.day_pnl_basis_date : 'no earlier close');
      var ks = o.kill_switch;
      put('kill-switch', ks.engaged ? 'ENGAGED' : 'released', ks.engaged ? 'engaged' : 'released');
      $('kill-switch').className = 'value ' + (ks.engaged ? 'neg' : 'pos');
      put('kill-reason', ks.engaged ? ks.reason + ' (' + ks.source + ', ' + time(ks.at) + ')' : '');
      put('market-status', o.market.open ? 'open' : 'closed', o.market.open ? 'open' : 'closed');
      put('market-session', (o.market.open ? 'closes ' + time(o.market.closes_at) : 'next open ' + time(o.market.opens_at)) +
        (o.market.early_close ? ' (early close)' : ''));
      var c = o.last_cycle;
      put('last-cycle-outcome', c ? text(c.outcome || 'running') : 'none yet', c ? c.outcome || '' : '');
      put('last-cycle', c ? c.cycle_id + ' · ' + time(c.started_at) : '');
      put('open-orders', String(o.open_orders), o.open_orders);
      put('positions-count', String(o.positions), o.positions);
      var r = o.reconciliation;
      put('reconciliation', r ? (r.ok ? 'ok' : 'MISMATCH') : 'not yet', r ? String(r.ok) : '');
      put('reconciliation-detail', r ? time(r.at) + (r.ok ? '' : ' · ' + r.differences.join('; ')) : '');
      var ok = o.last_ok_reconciliation;
      put('reconciliation-ok-at', ok ? time(ok.at) : 'none in the recent log', ok ? ok.at : '');
      var sc = ok && ok.scope;
      put('reconciliation-scope', sc ? 'compared cash (store ' + money(sc.store_cash) + ', broker ' + money(sc.broker_cash) +
        ', tolerance ' + money(sc.cash_tolerance) + ') and ' + sc.symbols + ' symbol(s) (share tolerance ' + qty(sc.qty_tolerance) + ')' : '');
      fill('sets-body', o.target_sets, [
        [function (t) { return t.id; }, 'mono'],
        [function (t) { return time(t.as_of); }],
        [function (t) { return time(t.queued_at); }],
        [function (t) { return String(t.targets); }, 'num'],
        [function (t) { return pct(t.gross_weight); }, 'num'],
        [function (t) { return t.status; }, 'status'],
        [function (t) { return t.superseded_by ? t.superseded_by + ' at ' + time(t.superseded_at) : '—'; }, 'mono']
      ], 'no target set in the recent log');
      put('audit-seq', String(o.audit_seq), o.audit_seq);
      put('account-id', text(o.account_id));
      if (o.audit_seq !== lastEodSeq) {
        // The curve changes only when the store does; fetch it only then.
        return getJSON('/api/v1/eod').then(function (e) {
          lastEodSeq = o.audit_seq;
          var s = e.snapshots;
          KeelChart.line($('equity-chart'), {
            labels: s.map(function (x) { return x.date; }),
            series: [{ values: s.map(function (x) { return x.equity; }), color: BLUE }],
            emptyText: 'no end-of-day snapshots yet'
          });
          put('equity-chart-note', s.length ? s.length + ' closes, ' + s[0].date + ' to ' + s[s.length - 1].date : '');
        });
      }
    });
  }

  function positions() {
    return getJSON('/api/v1/positions').then(function (p) {
      put('pos-equity', money(p.equity), p.equity);
      put('pos-cash', money(p.cash), p.cash);
      put('pos-gross', money(p.gross_exposure), p.gross_exposure);
      put('pos-net', money(p.net_exposure), p.net_exposure);
      put('pos-unrealized', money(p.unrealized_pnl), p.unrealized_pnl);
      put('target-set', p.target_set_id ? p.target_set_id : 'no target set known');
      fill('positions-body', p.positions, [
        [function (r) { return r.symbol; }],
        [function (r) { return qty(r.qty); }, 'num'],
        [function (r) { return money(r.avg_cost); }, 'num'],
        [function (r) { return r.price_source === 'unknown' ? '—' : money(r.price); }, 'num'],
        [function (r) { return r.price_source + (r.price_at ? ' ' + time(r.price_at) : ''); }, 'muted'],
        [function (r) { return money(r.market_value); }, 'num'],
        [function (r) { return pct(r.weight); }, 'num'],
        [function (r) { return pct(r.target_weight); }, 'num'],
        [function (r) { return pct(r.weight_diff); }, 'num'],
        [function (r) { return money(r.unrealized_pnl); }, 'num', 'pnl']
      ], 'no positions');
    });
  }

  function orders() {
    var q = filters(['day', 'symbol', 'status']);
    var fq = filters(['day', 'symbol'], true);
    return Promise.all([getJSON('/api/v1/orders' + q), getJSON('/api/v1/fills' + fq)]).then(function (res) {
      fill('orders-body', res[0].orders, [
        [function (r) { return time(r.created_at); }],
        [function (r) { return r.symbol; }],
        [function (r) { return r.side; }],
        [function (r) { return qty(r.qty); }, 'num'],
        [function (r) { return qty(r.filled_qty); }, 'num'],
        [function (r) { return r.status; }],
        [function (r) { return money(r.arrival_price); }, 'num'],
        [function (r) { return r.avg_fill_price ? fmtDec(r.avg_fill_price, 4) : '—'; }, 'num'],
        [function (r) { return bps(r.slippage_bps); }, 'num'],
        [function (r) { return text(r.reason); }],
        [function (r) { return r.client_order_id; }, 'mono']
      ], 'no orders match');
      fill('fills-body', res[1].fills, [
        [function (r) { return time(r.at); }],
        [function (r) { return r.symbol; }],
        [function (r) { return r.side; }],
        [function (r) { return qty(r.qty); }, 'num'],
        [function (r) { return fmtDec(r.price, 4); }, 'num'],
        [function (r) { return bps(r.slippage_bps); }, 'num'],
        [function (r) { return r.client_order_id; }, 'mono']
      ], 'no fills match');
      put('orders-count', res[0].orders.length + (res[0].orders.length === res[0].limit ? '+ (newest shown)' : ''));
      put('fills-count', res[1].fills.length + (res[1].fills.length === res[1].limit ? '+ (newest shown)' : ''));
    });
  }

  function slipCols() {
    return [
      [function (g) { return g.key; }],
      [function (g) { return String(g.count); }, 'num'],
      [function (g) { return bps(g.mean_bps); }, 'num'],
      [function (g) { return bps(g.weighted_mean_bps); }, 'num'],
      [function (g) { return bps(g.p50_bps); }, 'num'],
      [function (g) { return bps(g.p95_bps); }, 'num'],
      [function (g) { return money(g.notional); }, 'num']
    ];
  }

  function slippage() {
    var q = filters(['day', 'symbol']);
    return getJSON('/api/v1/slippage' + q).then(function (s) {
      var o = s.overall;
      put('slip-count', String(o.count), o.count);
      put('slip-mean', bps(o.mean_bps), o.mean_bps);
      put('slip-wmean', bps(o.weighted_mean_bps), o.weighted_mean_bps);
      put('slip-p5', bps(o.p5_bps), o.p5_bps);
      put('slip-p25', bps(o.p25_bps), o.p25_bps);
      put('slip-p50', bps(o.p50_bps), o.p50_bps);
      put('slip-p75', bps(o.p75_bps), o.p75_bps);
      put('slip-p95', bps(o.p95_bps), o.p95_bps);
      put('slip-p99', bps(o.p99_bps), o.p99_bps);
      put('is-cost', money(s.shortfall.execution_cost), s.shortfall.execution_cost);
      put('is-bps', bps(s.shortfall.execution_cost_bps), s.shortfall.execution_cost_bps);
      put('is-orders', s.shortfall.orders + ' orders, ' + money(s.shortfall.arrival_notional) + ' at arrival; unfilled ' + qty(s.shortfall.unfilled_qty) + ' sh');
      put('slip-truncated', s.truncated ? 'only the most recent fills are analysed; pick a day for all of it' : '');
      KeelChart.bars($('slip-hist'), {
        labels: s.histogram.map(function (b) { return b.label; }),
        values: s.histogram.map(function (b) { return b.count; }),
        color: BLUE, negColor: BLUE, everyLabel: true
      });
      KeelChart.bars($('slip-daily'), {
        labels: s.per_day.map(function (g) { return g.key; }),
        values: s.per_day.map(function (g) { return g.mean_bps; }),
        color: '#dc2626', negColor: '#16a34a', emptyText: 'no fills'
      });
      fill('slip-day-body', s.per_day.slice().reverse(), slipCols(), 'no fills');
      fill('slip-symbol-body', s.per_symbol, slipCols(), 'no fills');
    });
  }

  function eod() {
    return getJSON('/api/v1/eod').then(function (e) {
      var s = e.snapshots;
      KeelChart.line($('eod-chart'), {
        labels: s.map(function (x) { return x.date; }),
        series: [{ values: s.map(function (x) { return x.equity; }), color: BLUE }]
      });
      KeelChart.bars($('eod-pnl-chart'), {
        labels: s.map(function (x) { return x.date; }),
        values: s.map(function (x) { return x.day_pnl; }),
        color: '#16a34a', negColor: '#dc2626'
      });
      fill('eod-body', s.slice().reverse(), [
        [function (r) { return r.date; }],
        [function (r) { return money(r.equity); }, 'num'],
        [function (r) { return money(r.cash); }, 'num'],
        [function (r) { return money(r.gross_exposure); }, 'num'],
        [function (r) { return money(r.net_exposure); }, 'num'],
        [function (r) { return money(r.day_pnl); }, 'num', 'pnl'],
        [function (r) { return bps(r.slippage_mean_bps); }, 'num'],
        [function (r) { return String(r.positions); }, 'num']
      ], 'no end-of-day snapshots yet');
    });
  }

  var guardOffset = 0;
  var guardNext = null;

  function guards() {
    var q = filters(['day', 'symbol', 'guard']);
    var url = '/api/v1/guard-decisions' + (q ? q + '&' : '?') + 'limit=20&offset=' + guardOffset;
    return getJSON(url).then(function (g) {
      guardNext = g.next_offset;
      $('guards-older').disabled = g.next_offset === null;
      $('guards-newer').disabled = guardOffset === 0;
      put('guards-range', g.cycles.length ? 'cycles ' + (guardOffset + 1) + '–' + (guardOffset + g.cycles.length) + ' (newest first)' +
        (g.scan_truncated ? ', older than ' + g.scanned + ' cycles not searched' : '') : 'no matching cycles', String(guardOffset));
      var cycles = g.cycles;
      fill('cycles-body', cycles, [
        [function (c) { return time(c.cycle.started_at); }],
        [function (c) { return c.cycle.cycle_id; }, 'mono'],
        [function (c) { return text(c.cycle.outcome); }],
        [function (c) { return String(c.passed); }, 'num'],
        [function (c) { return String(c.resized); }, 'num'],
        [function (c) { return String(c.blocked); }, 'num']
      ], 'no cycles yet');
      var actions = [];
      var byReason = {};
      cycles.forEach(function (c) {
        c.actions.forEach(function (a) {
          actions.push({ c: c.cycle, a: a });
          var k = a.action + ' · ' + (a.reason || '?');
          byReason[k] = (byReason[k] || 0) + 1;
        });
      });
      fill('guard-body', actions, [
        [function (x) { return x.c.cycle_id; }, 'mono'],
        [function (x) { return text(x.a.symbol); }],
        [function (x) { return text(x.a.side); }],
        [function (x) { return x.a.action; }],
        [function (x) { return text(x.a.guard); }],
        [function (x) { return text(x.a.reason); }],
        [function (x) { return text(x.a.detail); }, 'detail'],
        [function (x) { return x.a.proposed_qty === null ? '—' : qty(x.a.proposed_qty); }, 'num'],
        [function (x) { return x.a.final_qty === null ? '—' : qty(x.a.final_qty); }, 'num']
      ], 'nothing was blocked or resized in these cycles');
      var summary = Object.keys(byReason).sort().map(function (k) { return { k: k, n: byReason[k] }; });
      fill('guard-summary-body', summary, [
        [function (x) { return x.k; }],
        [function (x) { return String(x.n); }, 'num']
      ], 'no blocks or resizes');
    });
  }

  var auditAfter = null;   // null: newest page
  var auditHead = 0;
  var auditLimit = 50;

  function audit() {
    var url = '/api/v1/audit?limit=' + auditLimit + (auditAfter === null ? '' : '&after=' + auditAfter);
    return Promise.all([getJSON(url), getJSON('/api/v1/audit/verify')]).then(function (res) {
      var a = res[0], v = res[1];
      auditHead = a.head_seq;
      var rows = a.rows.slice().reverse();
      fill('audit-body', rows, [
        [function (r) { return String(r.seq); }, 'num'],
        [function (r) { return time(r.at); }],
        [function (r) { return r.kind; }],
        [function (r) { return r.event_id; }, 'mono id'],
        [function (r) { return r.payload.length > 240 ? r.payload.slice(0, 240) + '…' : r.payload; }, 'mono detail'],
        [function (r) { return r.hash.slice(0, 16) + '…'; }, 'mono']
      ], 'the audit log is empty');
      var first = a.rows.length ? a.rows[0].seq : 0;
      var last = a.rows.length ? a.rows[a.rows.length - 1].seq : 0;
      put('audit-range', a.rows.length ? 'rows ' + first + '–' + last + ' of ' + a.head_seq : 'no rows');
      var st = $('chain-status');
      st.textContent = v.ok ? 'chain intact' : 'CHAIN BROKEN at seq ' + v.first_bad_seq;
      st.dataset.value = v.ok ? 'ok' : 'broken';
      st.className = 'badge ' + (v.ok ? 'good' : 'bad');
      put('chain-detail', (v.ok ? '' : text(v.first_bad_reason) + ' · ') + v.events + ' events verified up to seq ' +
        v.verified_head_seq + ' at ' + time(v.verified_at) + (v.in_progress ? ' (re-verifying…)' : ''));
      $('audit-older').disabled = first <= 1;
      $('audit-newer').disabled = auditAfter === null || last >= a.head_seq;
      $('audit-older').dataset.first = String(first);
      $('audit-newer').dataset.last = String(last);
    });
  }

  function initAudit() {
    $('audit-older').addEventListener('click', function () {
      var first = Number(this.dataset.first || 0);
      auditAfter = Math.max(0, first - 1 - auditLimit);
      run();
    });
    $('audit-newer').addEventListener('click', function () {
      var last = Number(this.dataset.last || 0);
      auditAfter = last + auditLimit >= auditHead ? null : last;
      run();
    });
    $('audit-newest').addEventListener('click', function () { auditAfter = null; run(); });
  }

  function accounts() {
    return getJSON('/api/v1/accounts').then(function (a) {
      if (a.accounts.length) header(a.accounts[0].overview);
      var tb = $('accounts-body');
      var rows = a.accounts.map(function (x) {
        var o = x.overview;
        var tr = el('tr');
        tr.dataset.account = x.id;
        var link = el('a', x.id || text(o.account_id));
        link.href = x.base || '/';
        var td = el('td');
        td.appendChild(link);
        tr.appendChild(td);
        [[money(o.equity), o.equity], [money(o.cash), o.cash], [money(o.gross_exposure), o.gross_exposure],
          [money(o.net_exposure), o.net_exposure], [money(o.unrealized_pnl), o.unrealized_pnl], [money(o.day_pnl), o.day_pnl],
          [String(o.positions), o.positions], [String(o.open_orders), o.open_orders]].forEach(function (c) {
          var d = el('td', c[0], 'num');
          d.dataset.value = c[1] === null ? '' : String(c[1]);
          tr.appendChild(d);
        });
        tr.appendChild(el('td', o.kill_switch.engaged ? 'ENGAGED' : 'released'));
        tr.appendChild(el('td', o.last_cycle ? text(o.last_cycle.outcome) + ' · ' + time(o.last_cycle.started_at) : '—'));
        return tr;
      });
      tb.replaceChildren.apply(tb, rows);
      var t = a.total;
      put('total-equity', money(t.equity), t.equity);
      put('total-cash', money(t.cash), t.cash);
      put('total-gross', money(t.gross_exposure), t.gross_exposure);
      put('total-net', money(t.net_exposure), t.net_exposure);
      put('total-unrealized', money(t.unrealized_pnl), t.unrealized_pnl);
      put('total-day-pnl', money(t.day_pnl), t.day_pnl);
      put('total-positions', String(t.positions), t.positions);
      put('total-open-orders', String(t.open_orders), t.open_orders);
      put('total-killed', t.killed ? t.killed + ' engaged' : 'none engaged', t.killed);
    });
  }

  var pages = { accounts: accounts, overview: overview, positions: positions, orders: orders, slippage: slippage, eod: eod, guards: guards, audit: audit };

  var timer = null;
  function run() {
    if (timer) clearTimeout(timer);
    var page = pages[PAGE] || function () { return Promise.resolve(); };
    var jobs = [page(), accountSwitcher()];
    if (PAGE !== 'overview' && PAGE !== 'accounts') jobs.push(getJSON('/api/v1/overview').then(header));
    Promise.all(jobs).then(function () {
      put('error', '');
      $('error').hidden = true;
      put('updated', 'updated ' + new Date().toISOString().replace('T', ' ').slice(0, 19) + ' UTC');
      body.dataset.loaded = 'true';
    }, function (err) {
      $('error').hidden = false;
      put('error', String(err && err.message ? err.message : err));
    }).then(function () {
      timer = setTimeout(run, REFRESH_MS);
    });
  }

  if (PAGE === 'orders') initFilters(['day', 'symbol', 'status'], run);
  if (PAGE === 'slippage') initFilters(['day', 'symbol'], run);
  if (PAGE === 'guards') {
    initFilters(['day', 'symbol', 'guard'], function () { guardOffset = 0; run(); });
    $('guards-older').addEventListener('click', function () { if (guardNext !== null) { guardOffset = guardNext; run(); } });
    $('guards-newer').addEventListener('click', function () { guardOffset = Math.max(0, guardOffset - 20); run(); });
  }
  if (PAGE === 'audit') initAudit();
  run();
})();
