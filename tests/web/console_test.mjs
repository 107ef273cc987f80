// The otter web console in a real browser: Debian's chromium driven by playwright-core, against a real otter-server
// with real otter-agent devices on loopback (ephemeral ports).
//
//   node console_test.mjs CASE                 runs one case (CTest registers one test per test("...") line)
//   node console_test.mjs --check-registered CASE...   fails if a case here is not in the list
//
// Environment: OTTER_BIN_DIR (otter-server, otter-agent), OTTER_TEST_OUTPUT (screenshots; default
// build/test-output/web), OTTER_UPDATE_DOCS=1 to refresh docs/console.png.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SOURCE = path.resolve(HERE, '../..');
const BIN = process.env.OTTER_BIN_DIR || path.join(SOURCE, 'build/bin');
const OUT = process.env.OTTER_TEST_OUTPUT || path.join(SOURCE, 'build/test-output/web');
const KEY = '0123456789abcdef-otter-web-key';
const TIMEOUT = 30_000;

const tests = new Map();
function test(name, fn) { tests.set(name, fn); }

function assert(cond, message) { if (!cond) throw new Error(`assertion failed: ${message}`); }
function assertEq(a, b, message) {
  if (a !== b) throw new Error(`assertion failed: ${message}: got ${JSON.stringify(a)}, want ${JSON.stringify(b)}`);
}
const sha256 = (buf) => createHash('sha256').update(buf).digest('hex');
const sha256File = (p) => sha256(fs.readFileSync(p));

// ---------- processes ----------
const children = new Set();
class Proc {
  constructor(argv, name) {
    this.name = name;
    this.out = '';
    this.child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(this);
    this.waiters = [];
    const feed = (d) => { this.out += d.toString(); for (const w of [...this.waiters]) w(); };
    this.child.stdout.on('data', feed);
    this.child.stderr.on('data', feed);
    this.exited = new Promise((resolve) => this.child.on('exit', (code, sig) => { this.code = code ?? 128; children.delete(this); resolve(code); for (const w of [...this.waiters]) w(); }));
  }
  /// Resolves with the first match of `rx` in the output (bounded by `ms`).
  waitFor(rx, ms = TIMEOUT) {
    return new Promise((resolve, reject) => {
      const check = () => {
        const m = this.out.match(rx);
        if (m) { done(); resolve(m); } else if (this.code !== undefined) { done(); reject(new Error(`${this.name} exited:\n${this.out}`)); }
      };
      const timer = setTimeout(() => { done(); reject(new Error(`${this.name}: no ${rx} within ${ms} ms:\n${this.out}`)); }, ms);
      const done = () => { clearTimeout(timer); this.waiters = this.waiters.filter((w) => w !== check); };
      this.waiters.push(check);
      check();
    });
  }
  async stop() {
    if (this.code !== undefined) return this.code;
    this.child.kill('SIGTERM');
    const t = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(t);
    return this.code;
  }
}

function tempDir() { return fs.mkdtempSync(path.join(os.tmpdir(), 'otter-web-')); }

async function startServer(dir, args = []) {
  fs.mkdirSync(path.join(dir, 'artifacts'), { recursive: true });
  const p = new Proc([path.join(BIN, 'otter-server'), '--listen', '127.0.0.1:0', '--data', path.join(dir, 'data'),
    '--artifacts', path.join(dir, 'artifacts'), ...args], 'otter-server');
  const m = await p.waitFor(/listening on (http:\/\/127\.0\.0\.1:\d+)/);
  return { proc: p, url: m[1], root: path.join(dir, 'artifacts') };
}

async function startAgent(root, name, args = []) {
  const keyFile = path.join(path.dirname(root), `${name}.key`);
  fs.writeFileSync(keyFile, `${KEY}\n`, { mode: 0o600 });
  const p = new Proc([path.join(BIN, 'otter-agent'), '--listen', '127.0.0.1:0', '--root', root, '--key-file', keyFile,
    '--name', name, '--quiet', ...args], `otter-agent ${name}`);
  const m = await p.waitFor(/listening on (127\.0\.0\.1:\d+)/);
  return { proc: p, address: m[1], root };
}

async function apiCall(server, method, p, body, headers = {}) {
  const res = await fetch(server.url + p, {
    method, headers: { 'Content-Type': 'application/json', ...headers }, body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  return { status: res.status, data: text ? JSON.parse(text) : null };
}

async function addDevice(server, name, address, tags = [], headers = {}) {
  const r = await apiCall(server, 'POST', '/api/v1/devices', { name, address, key: KEY, tags }, headers);
  assertEq(r.status, 201, `register ${name}: ${JSON.stringify(r.data)}`);
}

// ---------- browser ----------
async function withBrowser(fn, viewport = { width: 1280, height: 860 }, { pageErrorsExpected = false } = {}) {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  try {
    const context = await browser.newContext({ viewport });
    context.setDefaultTimeout(TIMEOUT);
    const page = await context.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => { if (m.type() === 'error' && !/Failed to load resource|net::ERR|CORS/.test(m.text())) errors.push(m.text()); });
    await fn(page, context);
    if (!pageErrorsExpected) assertEq(errors.join('\n'), '', 'no JavaScript errors on the page');
  } finally {
    await browser.close();
  }
}

/// Collects alert()/confirm() texts and accepts them.
function dialogs(page) {
  const seen = [];
  const waiters = [];
  page.on('dialog', async (d) => {
    seen.push(d.message());
    await d.accept();
    for (const w of waiters.splice(0)) w();
  });
  let consumed = 0;
  return {
    seen,
    /// The next dialog's text not yet returned (it may already have been shown and accepted).
    async next(ms = TIMEOUT) {
      const deadline = Date.now() + ms;
      while (seen.length <= consumed) {
        if (Date.now() > deadline) throw new Error(`no dialog appeared (seen so far: ${JSON.stringify(seen)})`);
        await new Promise((r) => { waiters.push(r); setTimeout(r, 200); });
      }
      return seen[consumed++];
    },
  };
}

async function screenshot(page, name) {
  fs.mkdirSync(OUT, { recursive: true });
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
}

async function open(page, server, view = 'send') {
  await page.goto(`${server.url}/#${view}`);
  await page.waitForSelector('body[data-ready="1"]');
  await page.waitForSelector('#conn[data-state="live"]');
}

// ---------- cases ----------
test('original_flow', async () => {
  const dir = tempDir();
  const server = await startServer(dir);
  const dev = await startAgent(path.join(dir, 'dev'), 'esp32');
  await addDevice(server, 'esp32', dev.address);
  const content = 'print("hello from otter")\n'.repeat(200);  // 5 KB: more than the original's recv(1024)
  fs.writeFileSync(path.join(server.root, 'main.py'), content);
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'outside the root');
  await withBrowser(async (page) => {
    const d = dialogs(page);
    await open(page, server);
    await page.fill('#filePath', 'main.py');
    await page.click('#send-submit');
    assertEq(await d.next(), 'File is being transmitted to ESP32.', 'alert for an existing file');
    await page.waitForSelector('#send-result[data-state="succeeded"]');
    assert((await page.textContent('#send-result')).includes('esp32 confirmed main.py'), 'the confirmed result is shown');
    assertEq(sha256File(path.join(dev.root, 'main.py')), sha256(content), 'the device holds the whole file');
    await screenshot(page, 'send');

    // Keyboard only: focus the field, type, press Enter.
    await page.focus('#filePath');
    await page.fill('#filePath', '');
    await page.keyboard.type('missing.bin');
    await page.keyboard.press('Enter');
    assertEq(await d.next(), 'File does not exist.', 'alert for a missing file');

    for (const outside of ['../secret.txt', path.join(dir, 'secret.txt'), '%2e%2e/secret.txt']) {
      const want = (await apiCall(server, 'POST', '/api/upload', { filePath: outside })).data.message;
      await page.fill('#filePath', outside);
      await page.click('#send-submit');
      assertEq(await d.next(), want, `alert for ${outside} is the server's message`);
    }
    assert(/outside|not found|not exist/i.test(d.seen.at(-1)), `a readable refusal: ${d.seen.at(-1)}`);
    assert(!fs.existsSync(path.join(dev.root, 'secret.txt')), 'nothing outside the root was sent');
  });
  await server.proc.stop();
});

test('upload_deploy_three', async () => {
  const dir = tempDir();
  const server = await startServer(dir);
  const agents = [];
  for (const n of [1, 2, 3]) {
    const a = await startAgent(path.join(dir, `dev${n}`), `esp32-${n}`, ['--rate', '1M']);
    await addDevice(server, `esp32-${n}`, a.address, ['lab']);
    agents.push(a);
  }
  const local = path.join(dir, 'firmware-1.2.bin');
  const data = Buffer.alloc(2 * 1024 * 1024 + 123);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) >>> 24;
  fs.writeFileSync(local, data);
  await withBrowser(async (page) => {
    await open(page, server, 'artifacts');
    // Upload with the file picker.
    await page.setInputFiles('#artifact-file', local);
    await page.waitForSelector('#upload-progress[data-state="done"]');
    assertEq(await page.getAttribute('#upload-bar', 'value'), '100', 'upload bar at 100%');
    await page.waitForSelector('tr[data-artifact="firmware-1.2.bin"]');
    assert((await page.textContent('tr[data-artifact="firmware-1.2.bin"]')).includes(sha256(data)), 'SHA-256 listed');
    assertEq(sha256File(path.join(server.root, 'firmware-1.2.bin')), sha256(data), 'stored in the artifact root');
    // And by drag and drop.
    const dt = await page.evaluateHandle(() => {
      const t = new DataTransfer();
      t.items.add(new File(['dropped content\n'], 'dropped.txt', { type: 'text/plain' }));
      return t;
    });
    await page.dispatchEvent('#dropzone', 'drop', { dataTransfer: dt });
    await page.waitForSelector('tr[data-artifact="dropped.txt"]');
    assertEq(fs.readFileSync(path.join(server.root, 'dropped.txt'), 'utf8'), 'dropped content\n', 'dropped file stored');
    await screenshot(page, 'artifacts');
    // Delete asks first, then removes the file from the artifact root.
    const d = dialogs(page);
    await page.click('tr[data-artifact="dropped.txt"] button:has-text("Delete")');
    assert((await d.next()).includes('Delete artifact dropped.txt'), 'delete asks first');
    await page.waitForSelector('tr[data-artifact="dropped.txt"]', { state: 'detached' });
    assert(!fs.existsSync(path.join(server.root, 'dropped.txt')), 'deleted from the artifact root');

    await page.click('a[data-view="deploy"]');
    await page.selectOption('#deploy-artifact', 'firmware-1.2.bin');
    for (const n of [1, 2, 3]) await page.check(`#deploy-devices input[value="esp32-${n}"]`);
    await page.click('#deploy-start');
    await page.waitForSelector('#live[data-state="running"], #live[data-state="queued"]');
    // Live progress: some bar shows a partial value before the job ends.
    await page.waitForFunction(() => [...document.querySelectorAll('#live-targets progress')]
      .some((p) => p.value > 0 && p.value < p.max));
    await screenshot(page, 'deploy-live');
    if (process.env.OTTER_UPDATE_DOCS === '1') {
      await page.screenshot({ path: path.join(SOURCE, 'docs/console.png') });
    }
    await page.waitForSelector('#live[data-state="succeeded"]', { timeout: 60_000 });
    for (const n of [1, 2, 3]) {
      const li = `#live-targets li[data-device="esp32-${n}"]`;
      assertEq(await page.getAttribute(li, 'data-state'), 'succeeded', `esp32-${n} succeeded`);
      const full = await page.$eval(`${li} progress`, (p) => p.value === p.max);
      assert(full, `esp32-${n}'s bar reached 100%`);
      assertEq(sha256File(path.join(agents[n - 1].root, 'firmware-1.2.bin')), sha256(data), `esp32-${n} holds the file`);
    }
    await screenshot(page, 'deploy-done');

    await page.click('a[data-view="jobs"]');
    await page.waitForSelector('#jobs-list li[data-state="succeeded"]');
    await page.click('#jobs-list li summary');
    assertEq(await page.locator('#jobs-list li[data-job] .results li[data-state="succeeded"]').count(), 3,
      'history shows every device result');
    await screenshot(page, 'history');
  });
  await server.proc.stop();
});

test('failure_and_cancel', async () => {
  const dir = tempDir();
  const server = await startServer(dir, ['--retries', '0']);
  const slow = await startAgent(path.join(dir, 'slow'), 'slow', ['--rate', '64K']);
  await addDevice(server, 'slow', slow.address);
  await addDevice(server, 'ghost', '127.0.0.1:1');
  fs.writeFileSync(path.join(server.root, 'big.bin'), Buffer.alloc(4 * 1024 * 1024, 7));
  fs.writeFileSync(path.join(server.root, 'small.txt'), 'x');
  await withBrowser(async (page) => {
    await open(page, server, 'deploy');
    await page.waitForSelector('#deploy-artifact option[value="small.txt"]', { state: 'attached' });
    await page.selectOption('#deploy-artifact', 'small.txt');
    await page.check('#deploy-devices input[value="ghost"]');
    await page.click('#deploy-start');
    await page.waitForSelector('#live[data-state="failed"]');
    const err = await page.textContent('#live-targets li[data-device="ghost"] .terror');
    assert(err.includes('CONNECT_FAILED (100)') && err.includes('127.0.0.1:1'), `a readable error: ${err}`);
    await screenshot(page, 'deploy-failed');

    await page.selectOption('#deploy-artifact', 'big.bin');
    await page.uncheck('#deploy-devices input[value="ghost"]');
    await page.check('#deploy-devices input[value="slow"]');
    await page.click('#deploy-start');
    await page.waitForSelector('#live-targets li[data-device="slow"][data-state="running"]');
    await page.click('#live-cancel');
    await page.waitForSelector('#live[data-state="canceled"]');
    assert(!fs.existsSync(path.join(slow.root, 'big.bin')), 'a canceled push leaves no file on the device');
  });
  await server.proc.stop();
});

test('devices_crud', async () => {
  const dir = tempDir();
  const server = await startServer(dir);
  const dev = await startAgent(path.join(dir, 'dev'), 'kitchen');
  await withBrowser(async (page) => {
    const d = dialogs(page);
    await open(page, server, 'devices');
    await page.fill('#device-form input[name=name]', 'kitchen');
    await page.fill('#device-form input[name=address]', dev.address);
    await page.fill('#device-form input[name=key]', KEY);
    await page.fill('#device-form input[name=tags]', 'home, esp32');
    await page.click('#device-save');
    await page.waitForSelector('tr[data-device="kitchen"]');
    assert(!(await page.content()).includes(KEY), 'the key is never shown back');
    assert((await page.textContent('tr[data-device="kitchen"]')).includes('esp32, home'), 'tags shown (sorted)');

    await page.click('tr[data-device="kitchen"] button:has-text("Probe")');
    await page.waitForSelector('[data-probe="kitchen"][data-state="ok"]');
    await page.waitForSelector('tr[data-device="kitchen"] .badge.ok');  // recorded as online

    await page.click('tr[data-device="kitchen"] button:has-text("Edit")');
    await page.fill('#device-form input[name=tags]', 'garage');
    await page.click('#device-save');
    await page.waitForFunction(() => document.querySelector('tr[data-device="kitchen"]').textContent.includes('garage'));

    // Validation errors are readable.
    await page.fill('#device-form input[name=name]', 'bad name');
    await page.fill('#device-form input[name=address]', 'nowhere');
    await page.fill('#device-form input[name=key]', KEY);
    await page.$eval('#device-form', (f) => { f.noValidate = true; });
    await page.click('#device-save');
    await page.waitForFunction(() => document.querySelector('#device-error').textContent.includes('INVALID_ARGUMENT (104)'));
    await screenshot(page, 'devices');

    await page.click('tr[data-device="kitchen"] button:has-text("Delete")');
    assert((await d.next()).includes('Remove device kitchen'), 'delete asks first');
    await page.waitForSelector('tr[data-device="kitchen"]', { state: 'detached' });
  });
  await server.proc.stop();
});

test('stock_devices', async () => {
  // Devices without otter firmware (docs/adapters.md): the key field follows the protocol, and a job reaches them.
  const dir = tempDir();
  const server = await startServer(dir);
  const legacyRoot = path.join(dir, 'legacy');
  const legacy = new Proc([path.join(BIN, 'otter-agent'), '--mode', 'legacy', '--listen', '127.0.0.1:0', '--root',
    legacyRoot, '--name', 'old-1'], 'legacy simulator');
  const legacyAddr = (await legacy.waitFor(/listening on (127\.0\.0\.1:\d+)/))[1];
  fs.writeFileSync(path.join(dir, 'wr.pw'), 's3cret!\n', { mode: 0o600 });
  const replRoot = path.join(dir, 'webrepl');
  const repl = new Proc([path.join(BIN, 'otter-agent'), '--mode', 'webrepl', '--listen', '127.0.0.1:0', '--root',
    replRoot, '--name', 'mp-1', '--password-file', path.join(dir, 'wr.pw')], 'webrepl simulator');
  const replAddr = (await repl.waitFor(/listening on (127\.0\.0\.1:\d+)/))[1];
  await withBrowser(async (page) => {
    await open(page, server, 'devices');
    await page.fill('#device-form input[name=name]', 'old-1');
    await page.fill('#device-form input[name=address]', legacyAddr);
    await page.selectOption('#device-form select[name=protocol]', 'legacy');
    assert(await page.isDisabled('#device-form input[name=key]'), 'the original receiver has no key');
    await page.click('#device-save');
    await page.waitForSelector('tr[data-device="old-1"]');

    await page.fill('#device-form input[name=name]', 'mp-1');
    await page.fill('#device-form input[name=address]', replAddr);
    await page.selectOption('#device-form select[name=protocol]', 'webrepl');
    assert((await page.getAttribute('#device-form input[name=key]', 'placeholder')).includes('WebREPL password'));
    await page.fill('#device-form input[name=key]', 's3cret!');  // 7 characters: a valid WebREPL password
    await page.click('#device-save');
    await page.waitForSelector('tr[data-device="mp-1"]');
    assert((await page.textContent('tr[data-device="mp-1"]')).includes('webrepl'), 'protocol shown');
  });
  fs.writeFileSync(path.join(server.root, 'hello.txt'), 'hello, stock devices\n');
  const job = await apiCall(server, 'POST', '/api/v1/jobs', { artifact: 'hello.txt', devices: ['old-1', 'mp-1'] });
  assert(job.status === 201, JSON.stringify(job.data));
  let state = '';
  for (let i = 0; i < 600 && !['succeeded', 'failed', 'canceled'].includes(state); i++) {
    await new Promise((r) => setTimeout(r, 50));  // poll interval; the loop re-checks the job
    state = (await apiCall(server, 'GET', `/api/v1/jobs/${job.data.id}`)).data.state;
  }
  assert(state === 'succeeded', `job ${state}`);
  assert(fs.readFileSync(path.join(legacyRoot, 'hello.txt'), 'utf8') === 'hello, stock devices\n');
  assert(fs.readFileSync(path.join(replRoot, 'hello.txt'), 'utf8') === 'hello, stock devices\n');
  await legacy.stop();
  await repl.stop();
  await server.proc.stop();
});

test('token_asked_once', async () => {
  const dir = tempDir();
  const token = 's3cret-token-0123456789';
  fs.writeFileSync(path.join(dir, 'token'), `${token}\n`, { mode: 0o600 });
  const server = await startServer(dir, ['--token-file', path.join(dir, 'token')]);
  await withBrowser(async (page) => {
    await open(page, server, 'devices');
    await page.fill('#device-form input[name=name]', 'd1');
    await page.fill('#device-form input[name=address]', '127.0.0.1:1');
    await page.fill('#device-form input[name=key]', KEY);
    await page.click('#device-save');
    await page.waitForSelector('#token-dialog[open]');
    await page.fill('#token-input', token);
    await page.click('#token-ok');
    await page.waitForSelector('tr[data-device="d1"]');
    // Kept for the session: the next change does not ask again.
    await page.fill('#device-form input[name=name]', 'd2');
    await page.fill('#device-form input[name=address]', '127.0.0.1:2');
    await page.fill('#device-form input[name=key]', KEY);
    await page.click('#device-save');
    await page.waitForSelector('tr[data-device="d2"]');
    assert(!(await page.isVisible('#token-dialog')), 'no second token prompt');
  });
  await server.proc.stop();
});

test('cross_origin', async () => {
  // The original page, served by a static-file server on another origin, as in the original design.
  const dir = tempDir();
  const seed = (api) => `<!DOCTYPE html><html><head><title>ESP32 File Sender</title></head><body>
<input type="text" id="filePath" placeholder="Enter file path"><button onclick="submitFilePath()">Submit</button>
<script>
function submitFilePath() {
  var filePath = document.getElementById('filePath').value;
  fetch('${api}/api/upload', { method: 'POST', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({filePath: filePath}) })
  .then(response => response.json())
  .then(data => { alert(data.message); })
  .catch((error) => { console.error('Error:', error); alert('Failed to send the file path.'); });
}
</script></body></html>`;
  const statics = [];
  const listen = () => new Promise((resolve) => {
    let html = '';
    const s = createServer((req, res) => { res.writeHead(200, { 'Content-Type': 'text/html' }); res.end(html); });
    s.listen(0, '127.0.0.1', () => { statics.push(s); resolve({ origin: `http://127.0.0.1:${s.address().port}`, set: (h) => { html = h; } }); });
  });
  const allowed = await listen();
  const other = await listen();
  const server = await startServer(dir, ['--cors-origin', allowed.origin]);
  const dev = await startAgent(path.join(dir, 'dev'), 'esp32');
  await addDevice(server, 'esp32', dev.address);
  fs.writeFileSync(path.join(server.root, 'boot.py'), 'import otter\n');
  allowed.set(seed(server.url));
  other.set(seed(server.url));
  try {
    await withBrowser(async (page) => {
      const d = dialogs(page);
      await page.goto(`${allowed.origin}/remote-transfer.html`);
      await page.fill('#filePath', 'boot.py');
      await page.click('button');
      assertEq(await d.next(), 'File is being transmitted to ESP32.', 'the allowed origin reads the reply');
      await page.fill('#filePath', 'nope.py');
      await page.click('button');
      assertEq(await d.next(), 'File does not exist.', 'errors too');

      await page.goto(`${other.origin}/remote-transfer.html`);
      await page.fill('#filePath', 'boot.py');
      await page.click('button');
      assertEq(await d.next(), 'Failed to send the file path.', 'another origin cannot read the reply');
    }, undefined, { pageErrorsExpected: true });  // the original page logs its failed fetch
  } finally {
    for (const s of statics) s.close();
  }
  const deadline = Date.now() + TIMEOUT;
  while (!fs.existsSync(path.join(dev.root, 'boot.py')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assertEq(fs.readFileSync(path.join(dev.root, 'boot.py'), 'utf8'), 'import otter\n', 'the allowed page pushed the file');
  const jobs = (await apiCall(server, 'GET', '/api/v1/jobs')).data.jobs;
  assertEq(jobs.length, 1, 'the refused origin started no job');
  await server.proc.stop();
});

test('narrow_screen_and_keyboard', async () => {
  const dir = tempDir();
  const server = await startServer(dir);
  await addDevice(server, 'a-device-with-a-rather-long-name-01', '192.168.100.200:12345', ['lab', 'kitchen']);
  fs.writeFileSync(path.join(server.root, 'a-long-artifact-name-firmware-v1.2.3-esp32s3.bin'), 'x'.repeat(1000));
  await withBrowser(async (page) => {
    for (const view of ['send', 'devices', 'artifacts', 'deploy', 'jobs']) {
      await open(page, server, view);
      await page.waitForTimeout(0);
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert(overflow <= 0, `${view} fits 360 px (overflow ${overflow} px)`);
      await screenshot(page, `mobile-${view}`);
    }
    // Keyboard: the skip link, then the navigation, reach every view.
    await open(page, server, 'send');
    await page.keyboard.press('Tab');
    assertEq(await page.evaluate(() => document.activeElement.className), 'skip', 'skip link first');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Tab');
    await page.keyboard.press('Enter');
    await page.waitForSelector('#view-devices:not([hidden])');
  }, { width: 360, height: 740 });
  await server.proc.stop();
});

// ---------- main ----------
const args = process.argv.slice(2);
if (args[0] === '--check-registered') {
  const registered = new Set(args.slice(1));
  const missing = [...tests.keys()].filter((t) => !registered.has(t));
  if (missing.length) { console.error(`not registered with CTest: ${missing.join(', ')}`); process.exit(1); }
  process.exit(0);
}
const fn = tests.get(args[0]);
if (!fn) { console.error(`unknown case '${args[0]}'; cases: ${[...tests.keys()].join(', ')}`); process.exit(2); }
const killAll = () => { for (const c of children) c.child.kill('SIGKILL'); };
const overall = setTimeout(() => { console.error('case timed out'); killAll(); process.exit(1); }, 240_000);
try {
  await fn();
  console.log(`ok ${args[0]}`);
  clearTimeout(overall);
  killAll();
  process.exit(0);
} catch (e) {
  console.error(`FAILED ${args[0]}: ${e.stack || e}`);
  for (const c of children) console.error(`--- ${c.name} output ---\n${c.out.slice(-3000)}`);
  killAll();
  process.exit(1);
}
