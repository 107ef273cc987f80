// otter web console: plain ES module, no framework, no build step. Talks to the otter-server that serves it
// (REST API v1 + the original POST /api/upload) and follows its event stream (/api/v1/events).
// Every piece of server data reaches the page through textContent / attributes, never innerHTML.

const $ = (sel, root = document) => root.querySelector(sel);
const TOKEN_KEY = 'otter.token';

const state = {
  devices: [],
  artifacts: [],
  live: null,        // the job shown in the live panel
  rates: new Map(),  // "job/device" -> bytes per second from target.progress
  sendJob: null,     // job started by the original form
  probes: new Map(), // device -> {text, state} of the last probe (kept across re-renders)
  jobsBefore: null,  // paging cursor of the history
};

// ---------- formatting ----------
export function formatSize(n) {
  if (n == null) return '-';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}
const formatRate = (r) => (r > 0 ? `${formatSize(Math.round(r))}/s` : '');
const formatTime = (s) => (s ? new Date(s).toLocaleString() : 'never');
const errorText = (e) => (e ? `${e.name} (${e.code}): ${e.message}` : '');

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

// ---------- API ----------
class ApiError extends Error {
  constructor(status, name, message, code) {
    super(message);
    this.status = status;
    this.name = name;
    this.code = code;
  }
  toString() { return this.code ? `${this.name} (${this.code}): ${this.message}` : this.message; }
}

function authHeaders() {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? { Authorization: `Bearer ${token}` } : {};
}

/// fetch with the session's token; a 401 asks for the token once and retries. Returns {status, data}.
async function call(method, path, body, retried = false) {
  const headers = { Accept: 'application/json', ...authHeaders() };
  const init = { method, headers };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'NETWORK', `cannot reach otter-server (${e.message})`);
  }
  if (res.status === 401 && !retried && (await askToken())) return call(method, path, body, true);
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  return { status: res.status, data, text };
}

/// A JSON call that throws ApiError on anything but 2xx.
async function api(method, path, body) {
  const r = await call(method, path, body);
  if (r.status >= 200 && r.status < 300) return r.data;
  const e = r.data && r.data.error;
  throw new ApiError(r.status, e ? e.name : `HTTP ${r.status}`,
    (e && e.message) || (r.data && r.data.message) || `the server answered HTTP ${r.status}`, e && e.code);
}

function askToken() {
  const dlg = $('#token-dialog');
  if (dlg.open) return Promise.resolve(false);
  return new Promise((resolve) => {
    const input = $('#token-input');
    input.value = '';
    const done = (ok) => {
      dlg.removeEventListener('close', onClose);
      $('#token-cancel').removeEventListener('click', onCancel);
      if (dlg.open) dlg.close();
      resolve(ok);
    };
    const onClose = () => {
      const token = input.value.trim();
      if (dlg.returnValue === 'ok' && token) {
        sessionStorage.setItem(TOKEN_KEY, token);
        done(true);
      } else {
        done(false);
      }
    };
    const onCancel = () => { dlg.returnValue = 'cancel'; done(false); };
    dlg.addEventListener('close', onClose);
    $('#token-cancel').addEventListener('click', onCancel);
    dlg.returnValue = '';
    dlg.showModal();
    input.focus();
  });
}

function banner(message) {
  const b = $('#banner');
  b.textContent = message;
  b.hidden = !message;
}

function showError(target, err) {
  $(target).textContent = err ? (err instanceof ApiError ? err.toString() : String(err.message || err)) : '';
}

// ---------- views ----------
const VIEWS = ['send', 'devices', 'artifacts', 'deploy', 'jobs'];

function showView() {
  const name = VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'send';
  for (const v of VIEWS) $(`#view-${v}`).hidden = v !== name;
  for (const a of document.querySelectorAll('nav a')) {
    if (a.dataset.view === name) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  if (name === 'jobs') loadJobs(true);
  if (name === 'artifacts' || name === 'deploy') loadArtifacts();
  if (name === 'devices' || name === 'deploy' || name === 'send') loadDevices();
}

// ---------- the original form ----------
async function submitOriginal(ev) {
  ev.preventDefault();
  const filePath = $('#filePath').value;
  const device = $('#send-device').value;
  const body = device ? { filePath, device } : { filePath };
  let r;
  try {
    r = await call('POST', '/api/upload', body);
  } catch (e) {
    alert('Failed to send the file path.');
    $('#send-result').textContent = String(e);
    return;
  }
  const message = (r.data && r.data.message) || `the server answered HTTP ${r.status}`;
  alert(message);
  const result = $('#send-result');
  if (r.status === 202 && r.data && r.data.job) {
    state.sendJob = r.data.job;
    result.dataset.state = 'running';
    result.textContent = `Job ${r.data.job}: ${message}`;
    followSendJob(r.data.job);
  } else {
    result.dataset.state = 'error';
    result.textContent = message;
  }
}

async function followSendJob(id) {
  // The event stream says when; the job itself says what the device confirmed.
  for (let i = 0; i < 3600 && state.sendJob === id; i++) {
    let job;
    try { job = await api('GET', `/api/v1/jobs/${id}`); } catch (e) { $('#send-result').textContent = String(e); return; }
    if (['succeeded', 'failed', 'canceled'].includes(job.state)) {
      const t = job.devices[0] || {};
      const result = $('#send-result');
      result.dataset.state = job.state;
      if (job.state === 'succeeded') {
        result.textContent = `Job ${id}: ${t.device} confirmed ${job.as} (${formatSize(job.size)}, SHA-256 ${job.sha256.slice(0, 12)}…)` +
          (t.unchanged ? ' — it already had this content.' : '.');
      } else {
        result.textContent = `Job ${id} ${job.state}: ${t.device}: ${t.error ? errorText(t.error) : job.state}`;
      }
      return;
    }
    await waitForJobEvent(id, 2000);
  }
}

// ---------- events ----------
const jobWaiters = new Set();
function waitForJobEvent(id, ms) {
  return new Promise((resolve) => {
    const w = { id, resolve };
    jobWaiters.add(w);
    setTimeout(() => { jobWaiters.delete(w); resolve(); }, ms);
  });
}
function wakeJob(id) {
  for (const w of [...jobWaiters]) if (w.id === id) { jobWaiters.delete(w); w.resolve(); }
}

let refreshTimers = {};
function soon(key, fn, ms = 150) {
  clearTimeout(refreshTimers[key]);
  refreshTimers[key] = setTimeout(fn, ms);
}

function connectEvents() {
  const conn = $('#conn');
  const es = new EventSource('/api/v1/events');
  es.onopen = () => { conn.textContent = 'live'; conn.dataset.state = 'live'; };
  es.onerror = () => { conn.textContent = 'reconnecting…'; conn.dataset.state = 'down'; };
  const on = (type, fn) => es.addEventListener(type, (e) => {
    let d = null;
    try { d = JSON.parse(e.data); } catch { return; }
    fn(d);
  });
  on('target.progress', (d) => {
    state.rates.set(`${d.job}/${d.device}`, d.rate);
    if (state.live && state.live.id === d.job) {
      const t = state.live.devices.find((x) => x.device === d.device);
      if (t && !['succeeded', 'failed', 'canceled'].includes(t.state)) {
        t.bytes = d.bytes;
        t.total = d.total;
        t.state = 'running';
        renderTarget(t);
      }
    }
  });
  on('target.updated', (d) => {
    wakeJob(d.job);
    if (state.live && state.live.id === d.job) soon('live', refreshLive, 50);
  });
  for (const type of ['job.created', 'job.updated', 'job.finished']) {
    on(type, (d) => {
      wakeJob(d.id);
      if (state.live && state.live.id === d.id) soon('live', refreshLive, 50);
      if (!$('#view-jobs').hidden) soon('jobs', () => loadJobs(true), 300);
      if (type === 'job.finished') soon('devices', loadDevices, 200);
    });
  }
  for (const type of ['device.created', 'device.updated', 'device.deleted']) on(type, () => soon('devices', loadDevices));
  for (const type of ['artifact.updated', 'artifact.deleted']) on(type, () => soon('artifacts', loadArtifacts));
}

// ---------- devices ----------
async function loadDevices() {
  try {
    const r = await api('GET', '/api/v1/devices');
    state.devices = r.devices;
    banner('');
  } catch (e) {
    banner(`Could not load devices: ${e}`);
    return;
  }
  renderDevices();
  renderDeviceChoices();
}

function renderDevices() {
  const tbody = $('#devices-table tbody');
  tbody.replaceChildren();
  for (const d of state.devices) {
    const lr = d.last_result;
    let last = '-';
    if (lr && typeof lr === 'object') last = `${lr.state}${lr.error ? `: ${errorText(lr.error)}` : ''}${lr.job ? ` (job ${lr.job})` : ''}`;
    const p = state.probes.get(d.name);
    const probeOut = el('span', { class: 'probe', 'data-probe': d.name, 'data-state': p && p.state, text: p && p.text });
    tbody.append(el('tr', { 'data-device': d.name },
      el('td', { 'data-label': 'Name' }, el('strong', { text: d.name })),
      el('td', { 'data-label': 'Address', text: d.address }),
      el('td', { 'data-label': 'Protocol', text: d.protocol }),
      el('td', { 'data-label': 'State' }, el('span', { class: `badge ${d.online ? 'ok' : 'off'}`, text: d.online ? 'online' : 'offline' })),
      el('td', { 'data-label': 'Last seen', text: formatTime(d.last_seen) }),
      el('td', { 'data-label': 'Last result', class: 'wrap', text: last }),
      el('td', { 'data-label': 'Tags', text: (d.tags || []).join(', ') }),
      el('td', { class: 'actions' },
        el('button', { type: 'button', class: 'small', text: 'Probe', 'aria-label': `Probe ${d.name}`, onclick: () => probe(d.name) }),
        el('button', { type: 'button', class: 'small secondary', text: 'Edit', 'aria-label': `Edit ${d.name}`, onclick: () => editDevice(d) }),
        el('button', { type: 'button', class: 'small danger', text: 'Delete', 'aria-label': `Delete ${d.name}`, onclick: () => deleteDevice(d.name) }),
        probeOut)));
  }
  $('#devices-empty').hidden = state.devices.length > 0;
}

function renderDeviceChoices() {
  const sel = $('#send-device');
  const keep = sel.value;
  sel.replaceChildren(el('option', { value: '', text: '(default)' }),
    ...state.devices.map((d) => el('option', { value: d.name, text: d.name })));
  sel.value = state.devices.some((d) => d.name === keep) ? keep : '';

  const box = $('#deploy-devices');
  const checked = new Set([...box.querySelectorAll('input:checked')].map((i) => i.value));
  box.replaceChildren(el('legend', { text: 'Devices' }));
  for (const d of state.devices) {
    box.append(el('label', { class: 'check' },
      el('input', { type: 'checkbox', name: 'devices', value: d.name, checked: checked.has(d.name) }),
      ` ${d.name} `, el('span', { class: `badge ${d.online ? 'ok' : 'off'}`, text: d.online ? 'online' : 'offline' })));
  }
  if (!state.devices.length) box.append(el('p', { class: 'hint', text: 'No devices registered yet.' }));
  const tags = [...new Set(state.devices.flatMap((d) => d.tags || []))].sort();
  const tagSel = $('#deploy-tag');
  const keepTag = tagSel.value;
  tagSel.replaceChildren(el('option', { value: '', text: '(choose devices below)' }),
    ...tags.map((t) => el('option', { value: t, text: `tag: ${t}` })));
  tagSel.value = tags.includes(keepTag) ? keepTag : '';
}

async function probe(name) {
  // The result is kept in state.probes: the table may be re-rendered (device events) while the probe runs.
  const show = (text, st) => {
    state.probes.set(name, { text, state: st });
    const out = document.querySelector(`[data-probe="${CSS.escape(name)}"]`);
    if (out) { out.textContent = text; out.dataset.state = st; }
  };
  show('probing…', 'running');
  try {
    const r = await api('POST', `/api/v1/devices/${encodeURIComponent(name)}/probe`);
    show(`online · id ${r.device_id} · free ${formatSize(r.free)}`, 'ok');
  } catch (e) {
    show(String(e), 'error');
  }
}

// The device's secret depends on its protocol (docs/adapters.md): otter's pre-shared key, a WebREPL password, an
// optional ArduinoOTA password, none for the original receiver.
const KEY_RULES = {
  otter: { min: 16, max: 1024, required: true, hint: 'pre-shared key (16+ characters)' },
  webrepl: { min: 4, max: 9, required: true, hint: 'WebREPL password (4 to 9 characters)' },
  'arduino-ota': { min: 0, max: 1024, required: false, hint: 'ArduinoOTA password (if it has one)' },
  legacy: { min: 0, max: 0, required: false, hint: 'none: the original receiver has no password' },
};

function applyKeyRule() {
  const f = $('#device-form');
  const rule = KEY_RULES[f.protocol.value] || KEY_RULES.otter;
  f.key.maxLength = 1024;  // widen first: minLength may never exceed maxLength
  f.key.minLength = rule.min;
  f.key.maxLength = rule.max || 1;
  f.key.disabled = rule.max === 0;
  if (rule.max === 0) f.key.value = '';
  f.key.placeholder = editing && rule.max !== 0 ? 'leave empty to keep the current key' : rule.hint;
}

let editing = null;
function editDevice(d) {
  editing = d.name;
  const f = $('#device-form');
  f.name.value = d.name;
  f.name.readOnly = true;
  f.address.value = d.address;
  f.protocol.value = d.protocol;
  f.key.value = '';
  applyKeyRule();
  f.tags.value = (d.tags || []).join(', ');
  $('#device-form-h').textContent = `Edit ${d.name}`;
  $('#device-save').textContent = 'Save';
  $('#device-cancel').hidden = false;
  f.address.focus();
}

function resetDeviceForm() {
  editing = null;
  const f = $('#device-form');
  f.reset();
  f.name.readOnly = false;
  applyKeyRule();
  $('#device-form-h').textContent = 'Add a device';
  $('#device-save').textContent = 'Add device';
  $('#device-cancel').hidden = true;
}

async function saveDevice(ev) {
  ev.preventDefault();
  const f = ev.target;
  const body = {
    address: f.address.value.trim(),
    protocol: f.protocol.value,
    tags: f.tags.value.split(',').map((t) => t.trim()).filter(Boolean),
  };
  if (f.key.value) body.key = f.key.value;
  showError('#device-error', null);
  try {
    if (editing) {
      await api('PATCH', `/api/v1/devices/${encodeURIComponent(editing)}`, body);
    } else {
      const rule = KEY_RULES[body.protocol] || KEY_RULES.otter;
      if (!body.key && rule.required) throw new Error(`the key is required: ${rule.hint}`);
      await api('POST', '/api/v1/devices', { name: f.name.value.trim(), ...body });
    }
    resetDeviceForm();
    await loadDevices();
  } catch (e) {
    showError('#device-error', e);
  }
}

async function deleteDevice(name) {
  if (!confirm(`Remove device ${name}? Its history stays.`)) return;
  try {
    await api('DELETE', `/api/v1/devices/${encodeURIComponent(name)}`);
    await loadDevices();
  } catch (e) {
    banner(String(e));
  }
}

// ---------- artifacts ----------
async function loadArtifacts() {
  try {
    const r = await api('GET', '/api/v1/artifacts');
    state.artifacts = r.artifacts;
  } catch (e) {
    banner(`Could not load artifacts: ${e}`);
    return;
  }
  const tbody = $('#artifacts-table tbody');
  tbody.replaceChildren();
  for (const a of state.artifacts) {
    tbody.append(el('tr', { 'data-artifact': a.name },
      el('td', { 'data-label': 'Name' }, el('strong', { text: a.name })),
      el('td', { 'data-label': 'Size', text: formatSize(a.size) }),
      el('td', { 'data-label': 'SHA-256', class: 'mono wrap', text: a.sha256, title: a.sha256 }),
      el('td', { 'data-label': 'Modified', text: formatTime(a.modified) }),
      el('td', { class: 'actions' },
        el('button', { type: 'button', class: 'small secondary', text: 'Deploy', 'aria-label': `Deploy ${a.name}`,
          onclick: () => { location.hash = '#deploy'; $('#deploy-artifact').value = a.name; } }),
        el('button', { type: 'button', class: 'small danger', text: 'Delete', 'aria-label': `Delete ${a.name}`,
          onclick: () => deleteArtifact(a.name) }))));
  }
  $('#artifacts-empty').hidden = state.artifacts.length > 0;
  const sel = $('#deploy-artifact');
  const keep = sel.value;
  sel.replaceChildren(...state.artifacts.map((a) => el('option', { value: a.name, text: `${a.name} (${formatSize(a.size)})` })));
  if (state.artifacts.some((a) => a.name === keep)) sel.value = keep;
}

function encodePath(name) { return name.split('/').map(encodeURIComponent).join('/'); }

function upload(file, retried = false) {
  const box = $('#upload-progress');
  const bar = $('#upload-bar');
  box.hidden = false;
  $('#upload-name').textContent = file.name;
  bar.value = 0;
  showError('#artifact-error', null);
  const xhr = new XMLHttpRequest();
  xhr.open('PUT', `/api/v1/artifacts/${encodePath(file.name)}`);
  for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
  xhr.setRequestHeader('Content-Type', 'application/octet-stream');
  xhr.upload.onprogress = (e) => {
    if (!e.lengthComputable) return;
    bar.value = Math.floor((e.loaded / e.total) * 100);
    $('#upload-text').textContent = `${formatSize(e.loaded)} / ${formatSize(e.total)}`;
  };
  xhr.onload = async () => {
    if (xhr.status === 401 && !retried && (await askToken())) return upload(file, true);
    let data = null;
    try { data = JSON.parse(xhr.responseText); } catch { data = null; }
    if (xhr.status >= 200 && xhr.status < 300) {
      bar.value = 100;
      $('#upload-text').textContent = `uploaded · SHA-256 ${data.sha256.slice(0, 12)}…`;
      box.dataset.state = 'done';
      loadArtifacts();
    } else {
      const e = data && data.error;
      box.dataset.state = 'error';
      $('#artifact-error').textContent = e ? `${e.name} (${e.code}): ${e.message}` : `upload failed: HTTP ${xhr.status}`;
    }
  };
  xhr.onerror = () => { box.dataset.state = 'error'; $('#artifact-error').textContent = 'upload failed: cannot reach otter-server'; };
  box.dataset.state = 'running';
  xhr.send(file);
}

async function deleteArtifact(name) {
  if (!confirm(`Delete artifact ${name} from the server?`)) return;
  try {
    await api('DELETE', `/api/v1/artifacts/${encodePath(name)}`);
    await loadArtifacts();
  } catch (e) {
    showError('#artifact-error', e);
  }
}

// ---------- deploy + live progress ----------
async function startDeploy(ev) {
  ev.preventDefault();
  const f = ev.target;
  const body = { artifact: f.artifact.value, reboot: f.reboot.checked };
  if (f.as.value.trim()) body.as = f.as.value.trim();
  const tag = $('#deploy-tag').value;
  const devices = [...f.querySelectorAll('input[name=devices]:checked')].map((i) => i.value);
  if (tag) body.tag = tag; else body.devices = devices;
  showError('#deploy-error', null);
  if (!body.artifact) return showError('#deploy-error', 'choose an artifact (upload one under Artifacts)');
  if (!tag && !devices.length) return showError('#deploy-error', 'choose at least one device, or a tag');
  try {
    const job = await api('POST', '/api/v1/jobs', body);
    showLive(job);
  } catch (e) {
    showError('#deploy-error', e);
  }
}

function showLive(job) {
  state.live = job;
  $('#live').hidden = false;
  $('#live-targets').replaceChildren();
  renderLive();
  pollLive(job.id);
}

async function pollLive(id) {
  // The events drive the bars; this slow poll only covers a lost event stream.
  while (state.live && state.live.id === id && !isFinal(state.live.state)) {
    await waitForJobEvent(id, 2000);
    if (state.live && state.live.id === id) await refreshLive();
  }
}

const isFinal = (s) => ['succeeded', 'failed', 'canceled'].includes(s);

async function refreshLive() {
  if (!state.live) return;
  try {
    const job = await api('GET', `/api/v1/jobs/${state.live.id}`);
    if (state.live && state.live.id === job.id) {
      state.live = job;
      renderLive();
    }
  } catch (e) {
    $('#live-state').textContent = String(e);
  }
}

function renderLive() {
  const job = state.live;
  $('#live').dataset.job = job.id;
  $('#live').dataset.state = job.state;
  $('#live-title').textContent = `Job ${job.id}: ${job.artifact} → ${job.as}`;
  const n = (s) => job.devices.filter((t) => t.state === s).length;
  $('#live-state').textContent = `${job.state} · ${n('succeeded')}/${job.devices.length} done` +
    (n('failed') ? ` · ${n('failed')} failed` : '') + (n('canceled') ? ` · ${n('canceled')} canceled` : '');
  $('#live-state').dataset.state = job.state;
  $('#live-cancel').hidden = isFinal(job.state);
  for (const t of job.devices) renderTarget(t);
}

function renderTarget(t) {
  const list = $('#live-targets');
  let li = list.querySelector(`li[data-device="${CSS.escape(t.device)}"]`);
  if (!li) {
    li = el('li', { 'data-device': t.device },
      el('div', { class: 'row space' }, el('strong', { text: t.device }), el('span', { class: 'badge tstate' })),
      el('progress', { max: 1, value: 0, 'aria-label': `progress of ${t.device}` }),
      el('div', { class: 'tinfo' }),
      el('div', { class: 'terror error' }));
    list.append(li);
  }
  const total = t.total || (state.live && state.live.size) || 0;
  const done = t.state === 'succeeded' ? total : t.bytes || 0;
  li.dataset.state = t.state;
  const badge = li.querySelector('.tstate');
  badge.textContent = t.state === 'succeeded' && t.unchanged ? 'unchanged' : t.state;
  badge.className = `badge tstate ${t.state === 'succeeded' ? 'ok' : t.state === 'failed' ? 'bad' : t.state === 'running' ? 'run' : 'off'}`;
  const bar = li.querySelector('progress');
  bar.max = Math.max(total, 1);
  bar.value = total ? done : t.state === 'succeeded' ? 1 : 0;
  const rate = t.state === 'running' ? formatRate(state.rates.get(`${state.live && state.live.id}/${t.device}`)) : '';
  li.querySelector('.tinfo').textContent = `${formatSize(done)} / ${formatSize(total)}${rate ? ` · ${rate}` : ''}` +
    (t.attempts > 1 ? ` · attempt ${t.attempts}` : '');
  li.querySelector('.terror').textContent = t.error ? errorText(t.error) : '';
}

async function cancelLive() {
  if (!state.live) return;
  try {
    state.live = await api('POST', `/api/v1/jobs/${state.live.id}/cancel`);
    renderLive();
  } catch (e) {
    $('#live-state').textContent = String(e);
  }
}

// ---------- history ----------
async function loadJobs(reset) {
  if (reset) state.jobsBefore = null;
  let r;
  try {
    r = await api('GET', `/api/v1/jobs?limit=20${state.jobsBefore ? `&before=${state.jobsBefore}` : ''}`);
  } catch (e) {
    banner(`Could not load jobs: ${e}`);
    return;
  }
  const list = $('#jobs-list');
  if (reset) list.replaceChildren();
  for (const job of r.jobs) {
    const n = (s) => job.devices.filter((t) => t.state === s).length;
    const details = el('details', {},
      el('summary', {},
        el('span', { class: `badge ${job.state === 'succeeded' ? 'ok' : job.state === 'failed' ? 'bad' : job.state === 'running' ? 'run' : 'off'}`, text: job.state }),
        ` #${job.id} ${job.artifact} → ${job.as} · ${n('succeeded')}/${job.devices.length} ok · ${formatTime(job.created)}`),
      el('ul', { class: 'results' }, ...job.devices.map((t) => el('li', { 'data-device': t.device, 'data-state': t.state },
        `${t.device}: ${t.state}${t.unchanged ? ' (unchanged)' : ''}${t.error ? ` — ${errorText(t.error)}` : ''}`))),
      el('button', { type: 'button', class: 'small secondary', text: 'Show progress',
        onclick: () => { location.hash = '#deploy'; showLive(job); } }));
    list.append(el('li', { 'data-job': job.id, 'data-state': job.state }, details));
  }
  state.jobsBefore = r.next;
  $('#jobs-more').hidden = !r.next;
  $('#jobs-empty').hidden = list.children.length > 0;
}

// ---------- start ----------
function init() {
  $('#upload-form').addEventListener('submit', submitOriginal);
  $('#device-form').addEventListener('submit', saveDevice);
  $('#device-cancel').addEventListener('click', resetDeviceForm);
  $('#device-form').protocol.addEventListener('change', applyKeyRule);
  $('#deploy-form').addEventListener('submit', startDeploy);
  $('#live-cancel').addEventListener('click', cancelLive);
  $('#jobs-more').addEventListener('click', () => loadJobs(false));
  const drop = $('#dropzone');
  const input = $('#artifact-file');
  drop.addEventListener('click', () => input.click());
  drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); input.click(); } });
  input.addEventListener('change', () => { if (input.files[0]) upload(input.files[0]); input.value = ''; });
  drop.addEventListener('dragover', (e) => { e.preventDefault(); drop.classList.add('over'); });
  drop.addEventListener('dragleave', () => drop.classList.remove('over'));
  drop.addEventListener('drop', (e) => {
    e.preventDefault();
    drop.classList.remove('over');
    if (e.dataTransfer.files[0]) upload(e.dataTransfer.files[0]);
  });
  window.addEventListener('hashchange', showView);
  connectEvents();
  showView();
  document.body.dataset.ready = '1';
}

init();
