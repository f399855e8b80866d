// The fleet console's pages. Plain JavaScript with no build step and no
// outside resources. Every element is built with textContent, never HTML
// strings, because names, messages and versions come from devices and
// people. Pages are chosen by the URL's hash (#/devices, #/device/ID, …).

const state = { session: null, tree: [] };

// ---- DOM helpers ----

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'value') el.value = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const $ = (id) => document.getElementById(id);

function badge(value, extra) {
  const v = value || 'unknown';
  return h('span', { class: 'badge ' + v, 'data-test': extra || 'badge' }, v);
}

function when(t) {
  if (!t) return '—';
  const d = new Date(t);
  return d.toLocaleString();
}

function json(v) {
  return JSON.stringify(v, null, 2);
}

function flash(msg, bad) {
  const f = $('flash');
  f.textContent = msg;
  f.className = 'flash' + (bad ? ' bad' : '');
  f.hidden = !msg;
}

// ---- API ----

class APIError extends Error {
  constructor(status, problem) {
    super(problem.detail || ('HTTP ' + status));
    this.status = status;
    this.problem = problem;
  }
}

async function api(method, path, body, headers) {
  const opts = { method, headers: Object.assign({}, headers || {}), credentials: 'same-origin' };
  if (method !== 'GET' && state.session) opts.headers['X-CSRF-Token'] = state.session.csrfToken;
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch('/api/v1' + path, opts);
  if (resp.status === 204) return null;
  const text = await resp.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  if (!resp.ok) {
    if (resp.status === 401 && path !== '/login') showLogin();
    throw new APIError(resp.status, data || {});
  }
  return data;
}

function problemText(err) {
  if (!(err instanceof APIError)) return String(err);
  const p = err.problem;
  return (p.field ? p.field + ': ' : '') + (p.detail || p.code || ('HTTP ' + err.status));
}

// ---- login ----

function showLogin() {
  state.session = null;
  $('top').hidden = true;
  $('view').hidden = true;
  $('login').hidden = false;
  $('login-username').focus();
}

async function onLogin(ev) {
  ev.preventDefault();
  const err = $('login-error');
  err.hidden = true;
  try {
    state.session = await api('POST', '/login', { username: $('login-username').value, password: $('login-password').value });
    $('login-password').value = '';
    await enter();
  } catch (e) {
    err.textContent = problemText(e);
    err.hidden = false;
  }
}

async function enter() {
  $('login').hidden = true;
  $('top').hidden = false;
  $('view').hidden = false;
  const a = state.session.account;
  $('whoami').textContent = a.username + ' (' + a.role + ')';
  $('nav-accounts').hidden = a.role !== 'admin';
  document.body.dataset.role = a.role;
  if (!location.hash || location.hash === '#/login') location.hash = '#/devices';
  else route();
}

const isAdmin = () => state.session && state.session.account.role === 'admin';

// ---- hierarchy helpers ----

async function loadTree() {
  state.tree = await api('GET', '/hierarchy');
  return state.tree;
}

function allSites() {
  const out = [];
  for (const o of state.tree) for (const s of o.children || []) out.push({ org: o, site: s });
  return out;
}

function allRooms() {
  const out = [];
  for (const { org, site } of allSites()) for (const r of site.children || []) out.push({ org, site, room: r });
  return out;
}

function scopeName(kind, id) {
  for (const o of state.tree) {
    if (kind === 'org' && o.id === id) return o.name;
    for (const s of o.children || []) {
      if (kind === 'site' && s.id === id) return o.name + ' / ' + s.name;
      for (const r of s.children || []) if (kind === 'room' && r.id === id) return o.name + ' / ' + s.name + ' / ' + r.name;
    }
  }
  return kind + ' ' + id.slice(0, 8);
}

// ---- router ----

const pages = {
  devices: pageDevices,
  device: pageDevice,
  hierarchy: pageHierarchy,
  codes: pageCodes,
  profiles: pageProfiles,
  accounts: pageAccounts,
  audit: pageAudit,
  updates: pageUpdates,
  rollout: pageRollout,
  site: pageSite,
};

// The nav entry each page belongs to.
const navOf = { device: 'devices', rollout: 'updates', site: 'hierarchy' };

async function route() {
  if (!state.session) return;
  const parts = location.hash.replace(/^#\/?/, '').split('/').map(decodeURIComponent);
  const name = parts[0] || 'devices';
  const page = pages[name] || pageDevices;
  for (const a of document.querySelectorAll('.nav a')) a.classList.toggle('active', a.id === 'nav-' + (navOf[name] || name));
  flash('');
  const view = $('view');
  view.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  view.dataset.page = name;
  view.dataset.ready = 'false';
  try {
    await page(view, parts.slice(1));
  } catch (e) {
    if (e instanceof APIError && e.status === 401) return;
    view.replaceChildren(h('p', { class: 'error', id: 'page-error' }, problemText(e)));
  }
  view.dataset.ready = 'true';
}

// ---- devices ----

async function pageDevices(view) {
  await loadTree();
  const params = new URLSearchParams(sessionStorage.getItem('deviceFilters') || '');
  const site = h('select', { id: 'filter-site' }, h('option', { value: '' }, 'All sites'),
    allSites().map(({ org, site }) => h('option', { value: site.id }, org.name + ' / ' + site.name)));
  const health = h('select', { id: 'filter-health' }, ['', 'ok', 'degraded', 'failed'].map((v) => h('option', { value: v }, v || 'Any health')));
  const version = h('input', { id: 'filter-version', placeholder: 'roomd version', size: 14 });
  const online = h('select', { id: 'filter-online' }, h('option', { value: '' }, 'Online or not'),
    h('option', { value: 'true' }, 'Online'), h('option', { value: 'false' }, 'Offline'));
  site.value = params.get('site') || '';
  health.value = params.get('health') || '';
  version.value = params.get('version') || '';
  online.value = params.get('online') || '';
  const tbody = h('tbody', { id: 'device-rows' });
  const count = h('span', { id: 'device-count', class: 'muted' });
  async function refresh() {
    const q = new URLSearchParams();
    if (site.value) q.set('site', site.value);
    if (health.value) q.set('health', health.value);
    if (version.value.trim()) q.set('version', version.value.trim());
    if (online.value) q.set('online', online.value);
    sessionStorage.setItem('deviceFilters', q.toString());
    const list = await api('GET', '/devices' + (q.toString() ? '?' + q : ''));
    tbody.replaceChildren(...list.map((d) => h('tr', { 'data-test': 'device-row', 'data-device-id': d.id },
      h('td', {}, h('a', { href: '#/device/' + encodeURIComponent(d.id), class: 'mono', 'data-test': 'device-link' }, d.id.slice(0, 12))),
      h('td', {}, d.siteName + ' / ' + d.roomName),
      h('td', {}, badge(d.revoked ? 'revoked' : (d.online ? 'online' : 'offline'), 'device-online')),
      h('td', {}, badge(d.health, 'device-health')),
      h('td', {}, (d.versions && d.versions.roomd) || '—'),
      h('td', {}, d.meetingState || '—'),
      h('td', {}, d.profileStatus ? badge(d.profileStatus, 'device-profile') : '—'),
      h('td', {}, when(d.lastCheckIn)))));
    count.textContent = list.length + (list.length === 1 ? ' device' : ' devices');
  }
  for (const el of [site, health, online]) el.addEventListener('change', () => refresh().catch((e) => flash(problemText(e), true)));
  version.addEventListener('change', () => refresh().catch((e) => flash(problemText(e), true)));
  view.replaceChildren(
    h('h1', {}, 'Devices'),
    h('div', { class: 'filters', id: 'device-filters' },
      h('label', {}, 'Site', site), h('label', {}, 'Health', health), h('label', {}, 'Version', version),
      h('label', {}, 'Online', online), count),
    h('table', { id: 'device-table' },
      h('thead', {}, h('tr', {}, ['Device', 'Room', 'Status', 'Health', 'roomd', 'Meeting', 'Profile', 'Last check-in'].map((t) => h('th', {}, t)))),
      tbody));
  await refresh();
}

function sampleTable(id, samples, columns) {
  if (!samples.length) return h('p', { id, class: 'muted' }, 'Nothing reported in the last 7 days.');
  return h('table', { id },
    h('thead', {}, h('tr', {}, h('th', {}, 'When'), columns.map(([label]) => h('th', {}, label)))),
    h('tbody', {}, samples.slice().reverse().map((s) => h('tr', { 'data-test': 'sample-row' },
      h('td', {}, when(s.at)),
      columns.map(([, f]) => h('td', {}, f(s.body || {})))))));
}

async function pageDevice(view, [id]) {
  await loadTree();
  const d = await api('GET', '/devices/' + encodeURIComponent(id));
  const dev = d.device;
  const inv = dev.inventory || {};
  const out = h('div', { id: 'device-page', 'data-device-id': dev.id });

  const actions = h('div', { class: 'row' });
  if (isAdmin() && !dev.revoked) {
    actions.append(h('button', { id: 'device-revoke', class: 'danger', type: 'button', onclick: async () => {
      if (!confirm('Revoke device ' + dev.id + '? It will be cut off at its next call and must enroll again.')) return;
      try { await api('POST', '/devices/' + encodeURIComponent(dev.id) + '/revoke', {}); route(); } catch (e) { flash(problemText(e), true); }
    } }, 'Revoke device'));
  }
  actions.append(h('a', { id: 'device-profile-link', href: '#/profiles/device/' + encodeURIComponent(dev.id) }, 'Edit this device\'s profile'));

  out.append(h('h1', {}, 'Device ', h('span', { class: 'mono', id: 'device-id' }, dev.id)),
    h('p', {}, dev.orgId ? scopeName('room', dev.roomId) : dev.roomName, ' ',
      badge(dev.revoked ? 'revoked' : (dev.online ? 'online' : 'offline'), 'device-online'), ' ',
      badge(dev.health, 'device-health')),
    actions);

  const facts = [
    ['Last check-in', when(dev.lastCheckIn)], ['Meeting', dev.meetingState || '—'],
    ['Versions', Object.entries(dev.versions || {}).map(([k, v]) => k + ' ' + v).join(', ') || '—'],
    ['Hardware', Object.entries(dev.hardware || {}).map(([k, v]) => k + ': ' + (Array.isArray(v) ? v.join(' ') : v)).join('; ') || '—'],
    ['Hostname', inv.hostname || '—'],
    ['Peripherals', (inv.devices || []).map((p) => p.kind + ': ' + p.name + (p.simulated ? ' (simulated)' : '')).join('; ') || '—'],
    ['Network', ((inv.network || {}).addresses || []).join(', ') + ((inv.network || {}).verdict ? ' — ' + inv.network.verdict : '') || '—'],
    ['Problems', (dev.problems || []).join('; ') || 'none'],
    ['Certificate', dev.certSerial + ' until ' + when(dev.certNotAfter)],
    ['Profile', (dev.profileApplied || 'none applied') + (dev.profileStatus ? ' (' + dev.profileStatus + (dev.profileReason ? ': ' + dev.profileReason : '') + ')' : '') +
      (d.configVersion ? ' — in effect: ' + d.configVersion : '')],
  ];
  out.append(h('section', { class: 'card', id: 'device-inventory' }, h('h2', {}, 'Inventory'),
    h('table', {}, h('tbody', {}, facts.map(([k, v]) => h('tr', {}, h('th', {}, k), h('td', { 'data-test': 'fact-' + k.toLowerCase().replace(/\W+/g, '-') }, v)))))));

  out.append(h('section', { class: 'card' }, h('h2', {}, 'Configuration in effect'),
    d.config.length === 0 ? h('p', { id: 'device-config', class: 'muted' }, 'No profile sets anything for this device.') :
      h('table', { id: 'device-config' },
        h('thead', {}, h('tr', {}, h('th', {}, 'Setting'), h('th', {}, 'Value'), h('th', {}, 'From'))),
        h('tbody', {}, d.config.map((c) => h('tr', { 'data-test': 'config-row', 'data-key': c.key },
          h('td', {}, c.key),
          h('td', {}, h('pre', { 'data-test': 'config-value' }, json(c.value))),
          h('td', { 'data-test': 'config-source', 'data-source': c.source },
            h('a', { href: '#/profiles/' + c.source + '/' + encodeURIComponent(c.scopeId) },
              c.source + (c.source === 'device' ? '' : ': ' + scopeName(c.source, c.scopeId))), ' v' + c.version)))))));

  const grid = h('div', { class: 'grid2' });
  grid.append(h('section', { class: 'card' }, h('h2', {}, 'Health history'),
    sampleTable('device-health', d.health, [['Status', (b) => badge(b.status)], ['Problems', (b) => (b.problems || []).join('; ')]])));
  grid.append(h('section', { class: 'card' }, h('h2', {}, 'Call quality'),
    sampleTable('device-callquality', d.callQuality, [
      ['Length', (b) => (b.seconds || 0) + ' s'], ['RTT', (b) => (b.rttMillis || 0).toFixed(0) + ' ms'],
      ['Loss', (b) => (b.lossPercent || 0).toFixed(1) + ' %'], ['Send/recv', (b) => (b.sendKbps || 0).toFixed(0) + '/' + (b.receiveKbps || 0).toFixed(0) + ' kbit/s'],
      ['Path', (b) => (b.relayed ? 'relayed' : 'direct') + (b.encoderPath ? ', ' + b.encoderPath : '')]])));
  out.append(grid);

  out.append(updateSection(d.update));

  out.append(commandSection(dev, d.commands));

  out.append(h('section', { class: 'card' }, h('h2', {}, 'Events'),
    d.events.length === 0 ? h('p', { id: 'device-events', class: 'muted' }, 'No events.') :
      h('table', { id: 'device-events' }, h('tbody', {}, d.events.map((e) => h('tr', { 'data-test': 'event-row' },
        h('td', {}, when(e.at)), h('td', {}, e.type), h('td', {}, e.message)))))));

  out.append(h('section', { class: 'card' }, h('h2', {}, 'Changes'), auditTable('device-audit', d.audit)));
  view.replaceChildren(out);
}

function commandSection(dev, commands) {
  const rows = h('tbody', { id: 'command-rows' });
  function fill(list) {
    rows.replaceChildren(...list.map((c) => h('tr', { 'data-test': 'command-row', 'data-command-id': c.id, 'data-kind': c.kind },
      h('td', {}, when(c.createdAt)), h('td', {}, c.kind), h('td', { class: 'mono' }, JSON.stringify(c.args)),
      h('td', { 'data-test': 'command-status', 'data-status': c.status }, badge(c.status)),
      h('td', { 'data-test': 'command-result' }, c.result || ''),
      h('td', {}, c.createdBy),
      h('td', {}, c.kind === 'collect-logs' && c.status === 'succeeded' ?
        h('a', { href: '/api/v1/commands/' + encodeURIComponent(c.id) + '/logs', 'data-test': 'command-logs', download: '' }, 'Download logs') : ''))));
  }
  fill(commands);
  const section = h('section', { class: 'card', id: 'device-commands' }, h('h2', {}, 'Commands'));
  if (isAdmin() && !dev.revoked) {
    const kind = h('select', { id: 'command-kind' }, state.session.commandKinds.map((k) => h('option', { value: k }, k)));
    const args = h('textarea', { id: 'command-args', rows: 2, placeholder: '{} — e.g. {"url": "https://…"} for join' });
    const hint = h('span', { class: 'muted', id: 'command-hint' });
    const result = h('p', { id: 'command-result', role: 'status' });
    const hints = {
      join: '{"url": "https://meet.example/room"}', 'collect-logs': '{"sinceMinutes": 60}',
      'set-setting': '{"key": "roomName", "value": "Board room"}', 'factory-reset': JSON.stringify({ confirm: dev.id }),
    };
    const setHint = () => { hint.textContent = hints[kind.value] ? 'Arguments: ' + hints[kind.value] : 'No arguments.'; };
    kind.addEventListener('change', setHint);
    setHint();
    // One key per form fill: a double click or a retried POST sends the
    // same key, so the command is queued once.
    let key = crypto.randomUUID();
    args.addEventListener('input', () => { key = crypto.randomUUID(); });
    kind.addEventListener('change', () => { key = crypto.randomUUID(); });
    const form = h('form', { id: 'command-form', class: 'row', onsubmit: async (ev) => {
      ev.preventDefault();
      result.className = '';
      let a = {};
      try { a = args.value.trim() ? JSON.parse(args.value) : {}; } catch (e) { result.className = 'error'; result.textContent = 'Arguments are not JSON: ' + e.message; return; }
      if (kind.value === 'factory-reset' && !confirm('Factory-reset ' + dev.id + '? This wipes the device.')) return;
      try {
        const c = await api('POST', '/devices/' + encodeURIComponent(dev.id) + '/commands', { kind: kind.value, args: a }, { 'Idempotency-Key': key });
        result.textContent = 'Command ' + c.kind + ' ' + c.status + ' (' + c.id + ')';
        result.dataset.commandId = c.id;
        key = crypto.randomUUID();
        fill(await api('GET', '/devices/' + encodeURIComponent(dev.id) + '/commands').then((l) => l.reverse()));
      } catch (e) {
        result.className = 'error';
        result.textContent = problemText(e);
      }
    } },
    h('label', {}, 'Command', kind), h('label', {}, 'Arguments (JSON)', args), hint,
    h('button', { id: 'command-send', type: 'submit' }, 'Send'));
    section.append(form, result);
  }
  section.append(h('button', { id: 'command-refresh', type: 'button', class: 'secondary', onclick: async () => {
    try { fill((await api('GET', '/devices/' + encodeURIComponent(dev.id) + '/commands')).reverse()); } catch (e) { flash(problemText(e), true); }
  } }, 'Refresh'));
  section.append(h('table', { id: 'command-table' },
    h('thead', {}, h('tr', {}, ['Queued', 'Command', 'Arguments', 'Status', 'Result', 'By', ''].map((t) => h('th', {}, t)))), rows));
  return section;
}

// ---- sites and rooms ----

async function pageHierarchy(view) {
  await loadTree();
  const tree = h('div', { class: 'tree card', id: 'hierarchy-tree' }, h('ul', {}, state.tree.map((o) =>
    h('li', { 'data-test': 'org-item', 'data-id': o.id, 'data-name': o.name }, h('strong', {}, o.name), ' ',
      h('a', { href: '#/profiles/org/' + encodeURIComponent(o.id), 'data-test': 'profile-link' }, 'profile'),
      h('ul', {}, (o.children || []).map((s) => h('li', { 'data-test': 'site-item', 'data-id': s.id, 'data-name': s.name },
        h('a', { href: '#/site/' + encodeURIComponent(s.id), 'data-test': 'site-link' }, s.name), ' ',
        h('a', { href: '#/profiles/site/' + encodeURIComponent(s.id), 'data-test': 'profile-link' }, 'profile'),
        h('ul', {}, (s.children || []).map((r) => h('li', { 'data-test': 'room-item', 'data-id': r.id, 'data-name': r.name }, r.name, ' ',
          h('a', { href: '#/profiles/room/' + encodeURIComponent(r.id), 'data-test': 'profile-link' }, 'profile')))))))))));
  if (state.tree.length === 0) tree.append(h('p', { class: 'muted' }, 'No organisation yet.'));
  const parts = [h('h1', {}, 'Sites and rooms'), tree];
  if (isAdmin()) {
    const create = (label, idp, parentOpts, path) => {
      const name = h('input', { id: idp + '-name', placeholder: label + ' name', required: true });
      const parent = parentOpts ? h('select', { id: idp + '-parent' }, parentOpts) : null;
      return h('form', { id: idp + '-form', class: 'row', onsubmit: async (ev) => {
        ev.preventDefault();
        try {
          const n = await api('POST', path(parent && parent.value), { name: name.value });
          flash(label + ' ' + n.name + ' created.');
          view.dataset.lastCreated = n.id;
          await pageHierarchy(view);
          view.dataset.lastCreated = n.id;
        } catch (e) { flash(problemText(e), true); }
      } }, parent ? h('label', {}, 'In', parent) : null, h('label', {}, label, name),
      h('button', { id: idp + '-create', type: 'submit' }, 'Create ' + label.toLowerCase()));
    };
    parts.push(h('section', { class: 'card' }, h('h2', {}, 'Add'),
      create('Organisation', 'org', null, () => '/orgs'),
      create('Site', 'site', state.tree.map((o) => h('option', { value: o.id }, o.name)), (p) => '/orgs/' + encodeURIComponent(p) + '/sites'),
      create('Room', 'room', allSites().map(({ org, site }) => h('option', { value: site.id }, org.name + ' / ' + site.name)),
        (p) => '/sites/' + encodeURIComponent(p) + '/rooms')));
  }
  view.replaceChildren(...parts);
}

// ---- enrollment codes ----

async function pageCodes(view) {
  await loadTree();
  const includeUsed = h('input', { id: 'code-include-used', type: 'checkbox' });
  const rows = h('tbody', { id: 'code-rows' });
  const scopeLabel = (c) => c.roomId ? 'room ' + scopeName('room', c.roomId) : 'site ' + scopeName('site', c.siteId);
  async function refresh() {
    const list = await api('GET', '/enrollment-codes' + (includeUsed.checked ? '?includeUsed=true' : ''));
    rows.replaceChildren(...list.map((c) => h('tr', { 'data-test': 'code-row', 'data-hash': c.hash, 'data-status': c.status },
      h('td', { class: 'mono' }, '…' + (c.hint || c.hash.slice(0, 6))), h('td', {}, scopeLabel(c)),
      h('td', { 'data-test': 'code-status' }, badge(c.status)), h('td', {}, when(c.expiresAt)), h('td', {}, c.createdBy),
      h('td', {}, c.deviceId ? h('a', { href: '#/device/' + encodeURIComponent(c.deviceId), class: 'mono' }, c.deviceId.slice(0, 12)) : ''),
      h('td', {}, isAdmin() && c.status === 'active' ? h('button', { type: 'button', class: 'secondary', 'data-test': 'code-revoke', onclick: async () => {
        try { await api('DELETE', '/enrollment-codes/' + encodeURIComponent(c.hash)); await refresh(); } catch (e) { flash(problemText(e), true); }
      } }, 'Revoke') : ''))));
  }
  includeUsed.addEventListener('change', () => refresh().catch((e) => flash(problemText(e), true)));
  const parts = [h('h1', {}, 'Enrollment codes')];
  if (isAdmin()) {
    const scope = h('select', { id: 'code-scope' },
      allRooms().map(({ org, site, room }) => h('option', { value: 'room:' + room.id }, 'Room ' + org.name + ' / ' + site.name + ' / ' + room.name)),
      allSites().map(({ org, site }) => h('option', { value: 'site:' + site.id }, 'Any room of site ' + org.name + ' / ' + site.name)));
    const lifetime = h('select', { id: 'code-lifetime' },
      [[60, '1 hour'], [24 * 60, '1 day'], [7 * 24 * 60, '7 days'], [30 * 24 * 60, '30 days']].map(([m, l]) => h('option', { value: m }, l)));
    lifetime.value = String(24 * 60);
    const shown = h('div', { id: 'code-display', hidden: true });
    const form = h('form', { id: 'code-form', class: 'row', onsubmit: async (ev) => {
      ev.preventDefault();
      const [kind, id] = scope.value.split(':');
      if (!id) { flash('Create a site or room first.', true); return; }
      try {
        const body = { lifetimeMinutes: Number(lifetime.value) };
        body[kind === 'room' ? 'roomId' : 'siteId'] = id;
        const c = await api('POST', '/enrollment-codes', body);
        shown.replaceChildren(
          h('p', {}, 'The code, shown this once — type it on the room\'s screen (dashes and case do not matter):'),
          h('div', { id: 'code-value', class: 'code-once', 'data-code': c.code }, c.grouped),
          h('p', { class: 'muted' }, 'For ' + scopeLabel(c.info) + ', valid until ' + when(c.info.expiresAt) + '.'));
        shown.hidden = false;
        await refresh();
      } catch (e) { flash(problemText(e), true); }
    } }, h('label', {}, 'For', scope), h('label', {}, 'Valid for', lifetime),
    h('button', { id: 'code-create', type: 'submit' }, 'Create code'));
    parts.push(h('section', { class: 'card' }, h('h2', {}, 'New code'), form, shown));
  }
  parts.push(h('section', { class: 'card' }, h('h2', {}, 'Codes'),
    h('label', {}, includeUsed, ' Show used, expired and revoked codes'),
    h('table', { id: 'code-table' }, h('thead', {}, h('tr', {}, ['Ends in', 'For', 'Status', 'Expires', 'By', 'Device', ''].map((t) => h('th', {}, t)))), rows)));
  view.replaceChildren(...parts);
  await refresh();
}

// ---- profiles ----

async function pageProfiles(view, [kind, id]) {
  await loadTree();
  const scope = h('select', { id: 'profile-scope' }, h('option', { value: '' }, 'Choose a scope…'));
  for (const o of state.tree) {
    scope.append(h('option', { value: 'org/' + o.id }, 'Organisation ' + o.name));
    for (const s of o.children || []) {
      scope.append(h('option', { value: 'site/' + s.id }, 'Site ' + o.name + ' / ' + s.name));
      for (const r of s.children || []) scope.append(h('option', { value: 'room/' + r.id }, 'Room ' + o.name + ' / ' + s.name + ' / ' + r.name));
    }
  }
  if (kind === 'device') scope.append(h('option', { value: 'device/' + id }, 'Device ' + id));
  scope.value = kind && id ? kind + '/' + id : '';
  scope.addEventListener('change', () => { location.hash = '#/profiles/' + scope.value.split('/').map(encodeURIComponent).join('/'); });
  const parts = [h('h1', {}, 'Profiles'), h('div', { class: 'row' }, h('label', {}, 'Scope', scope))];
  if (!kind || !id) {
    parts.push(h('p', { class: 'muted' }, 'Settings are inherited organisation → site → room → device; a narrower scope replaces a whole top-level key.'));
    view.replaceChildren(...parts);
    return;
  }
  const path = '/profiles/' + encodeURIComponent(kind) + '/' + encodeURIComponent(id);
  const p = await api('GET', path);
  let base = p.current.version;
  const body = h('textarea', { id: 'profile-body', rows: 18, spellcheck: 'false' });
  body.value = json(p.current.body);
  const version = h('span', { id: 'profile-version', 'data-version': base }, 'Version ' + base + (p.current.createdBy ? ' by ' + p.current.createdBy + ', ' + when(p.current.createdAt) : ''));
  const errors = h('ul', { id: 'profile-errors', class: 'error' });
  const diff = h('div', { id: 'profile-diff' });
  const status = h('p', { id: 'profile-status', role: 'status' });
  const save = h('button', { id: 'profile-save', type: 'button', disabled: true }, 'Save');
  let validated = null;

  function parseBody() {
    try { return JSON.parse(body.value); } catch (e) {
      errors.replaceChildren(h('li', { 'data-field': 'body' }, 'Not JSON: ' + e.message));
      return undefined;
    }
  }
  function showErrors(err) {
    const fields = (err.problem && err.problem.fields) || [];
    errors.replaceChildren(...(fields.length ? fields.map((f) => h('li', { 'data-test': 'profile-error', 'data-field': f.field }, (f.field || 'profile') + ': ' + f.reason)) :
      [h('li', { 'data-test': 'profile-error', 'data-field': (err.problem && err.problem.field) || '' }, problemText(err))]));
  }
  body.addEventListener('input', () => { validated = null; save.disabled = true; diff.replaceChildren(); status.textContent = ''; });

  const validate = h('button', { id: 'profile-validate', type: 'button', class: 'secondary', onclick: async () => {
    errors.replaceChildren(); diff.replaceChildren(); status.textContent = ''; save.disabled = true; validated = null;
    const b = parseBody();
    if (b === undefined) return;
    try {
      const r = await api('POST', path + '/validate', { body: b });
      validated = b;
      if (r.diff.length === 0) {
        diff.replaceChildren(h('p', { class: 'muted', 'data-test': 'diff-empty' }, 'No change against version ' + r.currentVersion + '.'));
      } else {
        diff.replaceChildren(h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Setting'), h('th', {}, 'Now (v' + r.currentVersion + ')'), h('th', {}, 'After saving'))),
          h('tbody', {}, r.diff.map((c) => h('tr', { 'data-test': 'diff-row', 'data-key': c.key, 'data-change': c.change, class: 'diff-' + c.change },
            h('td', {}, c.key + ' (' + c.change + ')'),
            h('td', {}, h('pre', {}, c.before === undefined ? '—' : json(c.before))),
            h('td', {}, h('pre', {}, c.after === undefined ? '—' : json(c.after))))))));
      }
      status.textContent = 'Valid. Review the changes, then save.';
      save.disabled = !isAdmin() || r.diff.length === 0;
    } catch (e) { showErrors(e); }
  } }, 'Validate and show changes');

  save.addEventListener('click', async () => {
    if (validated === null) return;
    save.disabled = true;
    try {
      const v = await api('PUT', path, { baseVersion: base, body: validated });
      base = v.version;
      version.dataset.version = base;
      version.textContent = 'Version ' + base + ' by ' + v.createdBy + ', ' + when(v.createdAt);
      body.value = json(v.body);
      validated = null;
      diff.replaceChildren();
      status.textContent = 'Saved version ' + v.version + '.';
      status.dataset.saved = String(v.version);
    } catch (e) {
      showErrors(e);
      if (e.status === 409) status.textContent = 'Someone saved meanwhile: reload the page to edit the new version.';
    }
  });

  parts.push(h('section', { class: 'card', id: 'profile-editor', 'data-kind': kind, 'data-scope-id': id },
    h('h2', {}, 'Profile of ' + (kind === 'device' ? 'device ' + id : scopeName(kind, id))), version,
    h('p', { class: 'muted' }, 'Keys: ' + state.session.profileKeys.join(', ') + '. Secrets show as ' + state.session.mask + '; leave that in place to keep the stored value.'),
    body, errors, h('div', { class: 'row' }, validate, save), diff, status));
  parts.push(h('section', { class: 'card' }, h('h2', {}, 'History'),
    h('table', { id: 'profile-history' }, h('tbody', {}, p.history.map((v) => h('tr', { 'data-test': 'history-row', 'data-version': v.version },
      h('td', {}, 'v' + v.version), h('td', {}, v.createdBy), h('td', {}, when(v.createdAt)), h('td', {}, h('pre', {}, json(v.body)))))))));
  view.replaceChildren(...parts);
}

// ---- updates: releases, rollouts, maintenance windows ----

const inProgressStates = ['checking', 'downloading', 'installing', 'rebooting', 'verifying'];

function bytes(n) {
  if (!n) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return n.toFixed(i === 0 ? 0 : 1) + ' ' + units[i];
}

// clockOf reads the local clock time ("02:00") of an RFC 3339 time as the
// device wrote it: the device reports its next window in its own zone, and
// the browser's zone may differ.
function clockOf(t) {
  return typeof t === 'string' && t.length >= 16 ? t.slice(11, 16) : '';
}

function deferredText(s) {
  if (s.deferred === 'maintenance-window') {
    const next = clockOf(s.nextWindow);
    return 'waiting for the maintenance window' + (next ? ' (next ' + next + ')' : '');
  }
  if (s.deferred === 'meeting') return 'waiting for the meeting to end';
  return s.deferred || '';
}

function scopeOfRollout(r) {
  return r.siteId ? scopeName('site', r.siteId) : scopeName('org', r.orgId) + ' (all sites)';
}

function ringsText(rings) {
  return rings.map((r) => r.name + ' ' + r.percent + '%').join(' → ');
}

// fieldError shows a problem under a form, with the field it names.
function fieldError(el, err) {
  el.textContent = problemText(err);
  el.dataset.field = (err.problem && err.problem.field) || '';
  el.hidden = false;
}

async function pageUpdates(view) {
  await loadTree();
  const [rels, rollouts] = await Promise.all([api('GET', '/releases'), api('GET', '/rollouts')]);
  const parts = [h('h1', {}, 'Updates')];

  const releases = h('section', { class: 'card', id: 'releases' }, h('h2', {}, 'Releases'));
  if (!rels.configured) {
    releases.append(h('p', { id: 'releases-none', class: 'muted' },
      'fleetd serves no update repository. Publish a release with `fleetd release` into a directory and start fleetd with `-updates DIR`; its releases show up here.'));
  } else if (rels.releases.length === 0) {
    releases.append(h('p', { id: 'releases-none', class: 'muted' }, 'The update repository holds no release yet. Publish one with `fleetd release`.'));
  } else {
    releases.append(h('table', { id: 'release-table' },
      h('thead', {}, h('tr', {}, ['Version', 'Target', 'Security version', 'Hardware', 'Size', 'Built'].map((t) => h('th', {}, t)))),
      h('tbody', {}, rels.releases.map((r) => h('tr', { 'data-test': 'release-row', 'data-target': r.target, 'data-version': r.version },
        h('td', {}, r.version), h('td', { class: 'mono' }, r.target), h('td', {}, String(r.securityVersion)),
        h('td', {}, r.hardware.join(', ') || '—'), h('td', {}, bytes(r.length)), h('td', {}, when(r.buildTime)))))));
  }
  parts.push(releases);

  if (isAdmin() && rels.releases.length > 0) parts.push(rolloutForm(rels.releases));

  const active = ['running', 'paused', 'halted'];
  parts.push(h('section', { class: 'card' }, h('h2', {}, 'Rollouts'),
    rollouts.length === 0 ? h('p', { id: 'rollout-table', class: 'muted' }, 'No rollout yet.') :
      h('table', { id: 'rollout-table' },
        h('thead', {}, h('tr', {}, ['Release', 'Scope', 'State', 'Ring', 'Started', 'By'].map((t) => h('th', {}, t)))),
        h('tbody', {}, rollouts.map((r) => h('tr', { 'data-test': 'rollout-row', 'data-rollout-id': r.id, 'data-state': r.state, class: active.includes(r.state) ? '' : 'muted' },
          h('td', {}, h('a', { href: '#/rollout/' + encodeURIComponent(r.id), 'data-test': 'rollout-link' }, r.version), ' ', h('span', { class: 'mono' }, r.target)),
          h('td', {}, scopeOfRollout(r)),
          h('td', {}, badge(r.state, 'rollout-state'), r.immediate ? ' urgent' : ''),
          h('td', {}, (r.rings[r.ring] || {}).name || '—'),
          h('td', {}, when(r.createdAt)), h('td', {}, r.createdBy)))))));
  view.replaceChildren(...parts);
}

function rolloutForm(releases) {
  const release = h('select', { id: 'rollout-release' }, releases.map((r) => h('option', { value: r.target }, r.version + ' (' + r.target + ')')));
  const scope = h('select', { id: 'rollout-scope' });
  for (const o of state.tree) {
    scope.append(h('option', { value: 'org:' + o.id }, 'Organisation ' + o.name + ' (all sites)'));
    for (const s of o.children || []) scope.append(h('option', { value: 'site:' + o.id + ':' + s.id }, 'Site ' + o.name + ' / ' + s.name));
  }
  const rings = h('tbody', { id: 'rollout-rings' });
  function ringRow(name, percent) {
    const tr = h('tr', { 'data-test': 'ring-edit' },
      h('td', {}, h('input', { 'data-test': 'ring-name', value: name, size: 12, required: true, maxlength: 40 })),
      h('td', {}, h('input', { 'data-test': 'ring-percent', type: 'number', min: 1, max: 100, value: String(percent), required: true }), ' %'),
      h('td', {}, h('button', { type: 'button', class: 'secondary', 'data-test': 'ring-remove', onclick: () => { if (rings.children.length > 1) tr.remove(); } }, 'Remove')));
    return tr;
  }
  function preset() { rings.replaceChildren(ringRow('canary', 1), ringRow('early', 10), ringRow('all', 100)); }
  preset();
  const threshold = h('input', { id: 'rollout-threshold', type: 'number', min: 0, max: 100, value: '10' });
  const soak = h('input', { id: 'rollout-soak', type: 'number', min: 0, max: 10080, value: '60' });
  const immediate = h('input', { id: 'rollout-immediate', type: 'checkbox' });
  const warning = h('p', { id: 'rollout-immediate-warning', class: 'warning', hidden: true },
    'Urgent: devices install and reboot as soon as they get the offer, ignoring their sites\' maintenance windows (never during a meeting). Use it for security fixes.');
  immediate.addEventListener('change', () => { warning.hidden = !immediate.checked; });
  const error = h('p', { id: 'rollout-error', class: 'error', role: 'alert', hidden: true });
  const form = h('form', { id: 'rollout-form', onsubmit: async (ev) => {
    ev.preventDefault();
    error.hidden = true;
    const [kind, orgId, siteId] = scope.value.split(':');
    if (!orgId) { error.textContent = 'Create an organisation first.'; error.hidden = false; return; }
    const body = {
      orgId, target: release.value, immediate: immediate.checked,
      rings: [...rings.children].map((tr) => ({
        name: tr.querySelector('[data-test=ring-name]').value.trim(),
        percent: Number(tr.querySelector('[data-test=ring-percent]').value),
      })),
    };
    // An empty field means the server's default, not 0.
    if (threshold.value !== '') body.failureThreshold = Number(threshold.value);
    if (soak.value !== '') body.soakMinutes = Number(soak.value);
    if (kind === 'site') body.siteId = siteId;
    if (immediate.checked && !confirm('Start an urgent rollout? Devices will not wait for their maintenance windows.')) return;
    try {
      const r = await api('POST', '/rollouts', body);
      location.hash = '#/rollout/' + encodeURIComponent(r.id);
    } catch (e) { fieldError(error, e); }
  } },
  h('div', { class: 'row' }, h('label', {}, 'Release', release), h('label', {}, 'Devices of', scope)),
  h('table', { class: 'rings' }, h('thead', {}, h('tr', {}, h('th', {}, 'Ring'), h('th', {}, 'Cumulative share'), h('th', {}, ''))), rings),
  h('div', { class: 'row' },
    h('button', { id: 'ring-add', type: 'button', class: 'secondary', onclick: () => { if (rings.children.length < 8) rings.append(ringRow('ring ' + (rings.children.length + 1), 100)); } }, 'Add ring'),
    h('button', { id: 'ring-preset', type: 'button', class: 'secondary', onclick: preset }, 'Canary 1% / 10% / 100%')),
  h('div', { class: 'row' },
    h('label', {}, 'Halt when more than this % of a ring fails', threshold),
    h('label', {}, 'Soak before the next ring (minutes)', soak),
    h('label', { class: 'inline' }, immediate, ' Urgent: ignore maintenance windows')),
  warning,
  h('button', { id: 'rollout-create', type: 'submit' }, 'Start rollout'), error);
  return h('section', { class: 'card' }, h('h2', {}, 'New rollout'),
    h('p', { class: 'muted' }, 'Each ring adds devices until its share of the fleet is reached; the next ring opens when every device of the current one has finished or been offline for a day, and the soak time has passed.'),
    form);
}

async function pageRollout(view, [id]) {
  await loadTree();
  const d = await api('GET', '/rollouts/' + encodeURIComponent(id));
  const r = d.rollout;
  const out = h('div', { id: 'rollout-page', 'data-rollout-id': r.id, 'data-state': r.state });
  out.append(h('h1', {}, 'Rollout of ', r.version, ' ', badge(r.state, 'rollout-state')),
    h('p', {}, scopeOfRollout(r), ' — ', h('span', { class: 'mono' }, r.target), ' — rings ', ringsText(r.rings),
      ', halt above ', r.failureThreshold + '% failures, soak ' + r.soakMinutes + ' min',
      r.immediate ? h('strong', { class: 'warning' }, ' — urgent: ignores maintenance windows') : ''),
    r.reason ? h('p', { id: 'rollout-reason', class: r.state === 'completed' ? 'muted' : 'error' }, r.reason) : '',
    h('p', { class: 'muted' }, 'Started by ' + r.createdBy + ', ' + when(r.createdAt) + '. Ring ' + ((r.rings[r.ring] || {}).name || '—') + ' open since ' + when(r.ringOpened) +
      (r.nextRingAt ? '; the next ring may open from ' + when(r.nextRingAt) + '.' : '.')));

  const actions = h('div', { class: 'row', id: 'rollout-actions' });
  const confirmBox = h('div', { id: 'rollout-confirm-box', class: 'card confirm', hidden: true });
  function ask(op, text, needsReason) {
    const reason = needsReason ? h('input', { id: 'rollout-abort-reason', size: 50, placeholder: 'why (kept in the audit log)', maxlength: 500 }) : null;
    const err = h('p', { id: 'rollout-action-error', class: 'error', hidden: true });
    confirmBox.replaceChildren(h('p', {}, text), reason ? h('label', {}, 'Reason ', reason) : '',
      h('div', { class: 'row' },
        h('button', { id: 'rollout-confirm', type: 'button', class: op === 'abort' ? 'danger' : '', 'data-op': op, onclick: async () => {
          try {
            await api('POST', '/rollouts/' + encodeURIComponent(r.id) + '/' + op, reason ? { reason: reason.value } : undefined);
            route();
          } catch (e) { fieldError(err, e); }
        } }, 'Yes, ' + op),
        h('button', { id: 'rollout-cancel', type: 'button', class: 'secondary', onclick: () => { confirmBox.hidden = true; } }, 'Cancel')), err);
    confirmBox.hidden = false;
    if (reason) reason.focus();
  }
  if (isAdmin()) {
    if (r.state === 'running') {
      actions.append(h('button', { id: 'rollout-pause', type: 'button', class: 'secondary', onclick: () => ask('pause',
        'Pause this rollout? No device gets a new offer while it is paused; devices that have not started installing cancel.') }, 'Pause'));
    }
    if (r.state === 'paused' || r.state === 'halted') {
      actions.append(h('button', { id: 'rollout-resume', type: 'button', onclick: () => ask('resume',
        r.state === 'halted' ? 'Resume a halted rollout? It stopped because too many devices failed: check why first.' : 'Resume this rollout?') }, 'Resume'));
    }
    if (['running', 'paused', 'halted'].includes(r.state)) {
      actions.append(h('button', { id: 'rollout-abort', type: 'button', class: 'danger', onclick: () => ask('abort',
        'Abort this rollout for good? Devices already updated keep the new version; the others are not offered it again.', true) }, 'Abort'));
    }
  }
  actions.append(h('button', { id: 'rollout-refresh', type: 'button', class: 'secondary', onclick: () => route() }, 'Refresh'));
  out.append(actions, confirmBox);

  out.append(h('section', { class: 'card' }, h('h2', {}, 'Rings'),
    h('table', { id: 'ring-table' },
      h('thead', {}, h('tr', {}, ['Ring', 'Share', 'Members', 'Committed', 'Failed', 'In progress', 'Pending', 'Not offered', ''].map((t) => h('th', {}, t)))),
      h('tbody', {}, d.rings.map((g, i) => h('tr', { 'data-test': 'ring-row', 'data-ring': g.name, 'data-open': String(g.open) },
        h('td', {}, g.name), h('td', {}, g.percent + '%'),
        h('td', { 'data-test': 'ring-members' }, String(g.members)),
        h('td', { 'data-test': 'ring-committed' }, String(g.committed)),
        h('td', { 'data-test': 'ring-failed', class: g.failed ? 'error' : '' }, String(g.failed)),
        h('td', { 'data-test': 'ring-inprogress' }, String(g.inProgress)),
        h('td', { 'data-test': 'ring-pending' }, String(g.pending)),
        h('td', { 'data-test': 'ring-skipped' }, String(g.skipped)),
        h('td', {}, i === r.ring && r.state === 'running' ? badge('open') : (g.open ? 'done' : 'waiting'))))))));

  const rows = d.devices.map((v) => h('tr', { 'data-test': 'rollout-device-row', 'data-device-id': v.deviceId, 'data-state': v.state },
    h('td', {}, h('a', { href: '#/device/' + encodeURIComponent(v.deviceId), class: 'mono' }, v.deviceId.slice(0, 12))),
    h('td', {}, v.roomName), h('td', {}, v.siteName), h('td', {}, v.ringName),
    h('td', {}, badge(v.skipped ? 'skipped' : v.state, 'device-update-state'), v.online ? '' : h('span', { class: 'muted' }, ' offline')),
    h('td', { 'data-test': 'device-progress' }, inProgressStates.includes(v.state) || v.state === 'committed' ? v.progress + ' %' : '—'),
    h('td', { 'data-test': 'device-deferred' }, v.skipped ? 'not offered: ' + v.skipped : deferredText(v)),
    h('td', { 'data-test': 'device-reason' }, v.reason || ''),
    h('td', {}, when(v.lastSeen))));
  out.append(h('section', { class: 'card' }, h('h2', {}, 'Devices'),
    rows.length === 0 ? h('p', { id: 'rollout-devices', class: 'muted' }, 'No device in this rollout\'s scope.') :
      h('table', { id: 'rollout-devices' },
        h('thead', {}, h('tr', {}, ['Device', 'Room', 'Site', 'Ring', 'State', 'Progress', 'Note', 'Reason', 'Last seen'].map((t) => h('th', {}, t)))),
        h('tbody', {}, rows))));
  view.replaceChildren(out);
}

async function pageSite(view, [id]) {
  await loadTree();
  const site = allSites().find(({ site }) => site.id === id);
  const w = await api('GET', '/sites/' + encodeURIComponent(id) + '/maintenance-window');
  const title = site ? site.org.name + ' / ' + site.site.name : w.siteName;
  const out = h('div', { id: 'site-page', 'data-site-id': id });
  out.append(h('h1', {}, 'Site ' + title),
    h('p', {}, h('a', { href: '#/profiles/site/' + encodeURIComponent(id) }, 'Edit this site\'s profile')));

  const start = h('input', { id: 'window-start', type: 'time', value: w.effective.start, required: true });
  const end = h('input', { id: 'window-end', type: 'time', value: w.effective.end, required: true });
  const status = h('p', { id: 'window-status', role: 'status', 'data-start': w.effective.start, 'data-end': w.effective.end, 'data-default': String(!w.window) },
    w.window ? 'This site\'s window: ' + w.window.start + '–' + w.window.end + '.' : 'This site uses the default window.');
  const error = h('p', { id: 'window-error', class: 'error', role: 'alert', hidden: true });
  async function save(body) {
    error.hidden = true;
    try {
      const v = await api('PUT', '/sites/' + encodeURIComponent(id) + '/maintenance-window', body);
      start.value = v.effective.start;
      end.value = v.effective.end;
      status.dataset.start = v.effective.start;
      status.dataset.end = v.effective.end;
      status.dataset.default = String(!v.window);
      status.textContent = v.window ? 'Saved: updates install between ' + v.window.start + ' and ' + v.window.end + ' local time.' :
        'Saved: this site uses the default window.';
    } catch (e) { fieldError(error, e); }
  }
  const editor = h('section', { class: 'card', id: 'window-editor' }, h('h2', {}, 'Maintenance window'),
    h('p', { class: 'muted' }, 'Rooms install updates and restart only inside this daily window, in their own time zone, and never during a meeting. An end before the start wraps past midnight. Default ' +
      w.default.start + '–' + w.default.end + '.'));
  if (isAdmin()) {
    editor.append(h('form', { id: 'window-form', class: 'row', onsubmit: (ev) => { ev.preventDefault(); save({ window: { start: start.value, end: end.value } }); } },
      h('label', {}, 'From', start), h('label', {}, 'Until', end),
      h('button', { id: 'window-save', type: 'submit' }, 'Save window'),
      h('button', { id: 'window-clear', type: 'button', class: 'secondary', onclick: () => save({ window: null }) }, 'Use the default (' + w.default.start + '–' + w.default.end + ')')));
  } else {
    start.disabled = true;
    end.disabled = true;
    editor.append(h('div', { class: 'row' }, h('label', {}, 'From', start), h('label', {}, 'Until', end)));
  }
  editor.append(status, error);
  out.append(editor);
  if (site) {
    out.append(h('section', { class: 'card' }, h('h2', {}, 'Rooms'),
      (site.site.children || []).length === 0 ? h('p', { class: 'muted' }, 'No room yet.') :
        h('ul', { id: 'site-rooms' }, site.site.children.map((r) => h('li', {}, r.name, ' ',
          h('a', { href: '#/profiles/room/' + encodeURIComponent(r.id) }, 'profile'))))));
  }
  view.replaceChildren(out);
}

// updateSection is the device page's update state.
function updateSection(u) {
  const section = h('section', { class: 'card', id: 'device-update' }, h('h2', {}, 'Software update'));
  if (!u) {
    section.append(h('p', { class: 'muted' }, 'The device has not reported an update state.'));
    return section;
  }
  const s = u.status;
  const facts = [
    ['Running', (s.running || '—') + (s.slot ? ' (slot ' + s.slot + ')' : '')],
    ['Hardware', s.hardware || '—'],
    ['State', badge(s.state, 'update-state')],
    ['Update', s.version ? s.version + (inProgressStates.includes(s.state) ? ', ' + u.progress + ' %' : '') +
      (s.rollout ? ' — ' : '') : '—', s.rollout ? h('a', { href: '#/rollout/' + encodeURIComponent(s.rollout) }, 'rollout') : ''],
    ['Waiting', deferredText(s) || '—'],
    ['Reason', s.reason || '—'],
    ['Never retried', (s.neverRetry || []).join(', ') || 'none'],
    ['Security floor', String(s.securityFloor || 0)],
    ['Reported', when(u.reportedAt)],
  ];
  section.append(h('table', {}, h('tbody', {}, facts.map(([k, ...v]) =>
    h('tr', {}, h('th', {}, k), h('td', { 'data-test': 'update-' + k.toLowerCase().replace(/\W+/g, '-') }, ...v))))));
  return section;
}

// ---- accounts ----

async function pageAccounts(view) {
  const list = await api('GET', '/accounts');
  const me = state.session.account.id;
  const rows = list.map((a) => {
    const role = h('select', { 'data-test': 'account-role', disabled: a.id === me }, ['admin', 'viewer'].map((r) => h('option', { value: r }, r)));
    role.value = a.role;
    role.addEventListener('change', async () => {
      try { await api('PATCH', '/accounts/' + encodeURIComponent(a.id), { role: role.value }); flash('Role of ' + a.username + ' is now ' + role.value + '.'); } catch (e) { flash(problemText(e), true); role.value = a.role; }
    });
    return h('tr', { 'data-test': 'account-row', 'data-username': a.username },
      h('td', {}, a.username), h('td', {}, role), h('td', {}, a.disabled ? badge('revoked', 'account-state') : badge('active', 'account-state')),
      h('td', {}, when(a.lastLogin)),
      h('td', {}, a.id === me ? '' : h('button', { type: 'button', class: 'secondary', 'data-test': 'account-disable', onclick: async () => {
        try { await api('PATCH', '/accounts/' + encodeURIComponent(a.id), { disabled: !a.disabled }); route(); } catch (e) { flash(problemText(e), true); }
      } }, a.disabled ? 'Enable' : 'Disable'), ' ',
      h('button', { type: 'button', class: 'secondary', 'data-test': 'account-reset', onclick: async () => {
        const pw = prompt('New password for ' + a.username + ' (12 to 72 characters):');
        if (!pw) return;
        try { await api('POST', '/accounts/' + encodeURIComponent(a.id) + '/password', { password: pw }); flash('Password of ' + a.username + ' reset; their sessions ended.'); } catch (e) { flash(problemText(e), true); }
      } }, 'Reset password')));
  });
  const username = h('input', { id: 'account-username', required: true, autocomplete: 'off' });
  const role = h('select', { id: 'account-role' }, h('option', { value: 'viewer' }, 'viewer'), h('option', { value: 'admin' }, 'admin'));
  const password = h('input', { id: 'account-password', type: 'password', required: true, autocomplete: 'new-password', minlength: 12 });
  view.replaceChildren(h('h1', {}, 'Accounts'),
    h('section', { class: 'card' }, h('table', { id: 'account-table' },
      h('thead', {}, h('tr', {}, ['Username', 'Role', 'State', 'Last login', ''].map((t) => h('th', {}, t)))), h('tbody', {}, rows))),
    h('section', { class: 'card' }, h('h2', {}, 'New account'), h('form', { id: 'account-form', class: 'row', onsubmit: async (ev) => {
      ev.preventDefault();
      try { await api('POST', '/accounts', { username: username.value, role: role.value, password: password.value }); route(); } catch (e) { flash(problemText(e), true); }
    } }, h('label', {}, 'Username', username), h('label', {}, 'Role', role), h('label', {}, 'Password', password),
    h('button', { id: 'account-create', type: 'submit' }, 'Create account'))));
}

// ---- audit ----

function auditTable(id, entries) {
  if (!entries.length) return h('p', { id, class: 'muted' }, 'No entries.');
  return h('table', { id }, h('thead', {}, h('tr', {}, ['When', 'Who', 'What', 'Subject', 'Before', 'After'].map((t) => h('th', {}, t)))),
    h('tbody', {}, entries.map((e) => h('tr', { 'data-test': 'audit-row', 'data-action': e.action },
      h('td', {}, when(e.at)), h('td', { 'data-test': 'audit-actor' }, e.actor), h('td', {}, e.action), h('td', { class: 'mono' }, e.subject),
      h('td', {}, e.before === undefined ? '' : h('pre', {}, json(e.before))),
      h('td', {}, e.after === undefined ? '' : h('pre', {}, json(e.after)))))));
}

async function pageAudit(view) {
  const subject = h('input', { id: 'audit-subject', placeholder: 'e.g. device:3f2a… or profile:room:…', size: 40 });
  const holder = h('div', {});
  async function refresh() {
    const q = subject.value.trim() ? '?subject=' + encodeURIComponent(subject.value.trim()) : '';
    holder.replaceChildren(auditTable('audit-table', await api('GET', '/audit' + q)));
  }
  subject.addEventListener('change', () => refresh().catch((e) => flash(problemText(e), true)));
  view.replaceChildren(h('h1', {}, 'Audit log'), h('div', { class: 'filters' }, h('label', {}, 'Subject', subject)), holder);
  await refresh();
}

// ---- start ----

async function start() {
  $('login-form').addEventListener('submit', onLogin);
  $('logout').addEventListener('click', async () => {
    try { await api('POST', '/logout'); } catch { /* the session may have ended already */ }
    showLogin();
  });
  window.addEventListener('hashchange', route);
  try {
    state.session = await api('GET', '/session');
    await enter();
  } catch (e) {
    if (!(e instanceof APIError && e.status === 401)) flash(problemText(e), true);
    showLogin();
  }
  document.body.dataset.started = 'true';
}

start();
