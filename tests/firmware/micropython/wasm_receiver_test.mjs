// The MicroPython receiver under the real MicroPython (1.27, WebAssembly port) in Node, fed with byte streams that
// the project's own C++ pusher (core::Pusher, via otter-record-session) produced for it.
//
//   node wasm_receiver_test.mjs CASE        runs one case (CTest registers one test per test("...") line)
//   node wasm_receiver_test.mjs             runs every case
// Environment: OTTER_BIN_DIR (otter-record-session), OTTER_MPY_DIR (firmware/micropython).
//
// Each session: the receiver's HELLO is taken from MicroPython (deterministic nonce injected through rng=),
// otter-record-session runs core::Pusher against a reference core::Receiver configured from that HELLO and
// records both directions; the pusher's bytes are replayed into otter.handle() through an in-memory connection
// (mp_harness.MemConn), and what MicroPython answers is compared with the reference device, frame by frame.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import crypto from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const HERE = path.dirname(fileURLToPath(import.meta.url));
const BIN = process.env.OTTER_BIN_DIR;
const FW = process.env.OTTER_MPY_DIR || path.resolve(HERE, "../../../firmware/micropython");
const MPJS = path.join(HERE, "node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs");
const RECORD = BIN ? path.join(BIN, "otter-record-session") : "";

const KEY = "mpy-test-device-key-0123456789";
const T = { HELLO: 0x01, READY: 0x02, ACK: 0x03, DONE: 0x04, STAT_RESULT: 0x05, PUSH: 0x10, DATA: 0x12, ERROR: 0x7f };
const E = {
  BAD_NAME: 1, TOO_LARGE: 2, NO_SPACE: 3, AUTH_FAILED: 4, HASH_MISMATCH: 5, PROTOCOL: 8, TIMEOUT: 9,
  UNSUPPORTED_VERSION: 10, UNSUPPORTED_KIND: 11, CONNECTION_CLOSED: 101,
};

// --- helpers ---------------------------------------------------------------------------------------------------

function sha256(buf) { return crypto.createHash("sha256").update(buf).digest(); }

/// Deterministic pseudo-random content (SHA-256 in counter mode).
function content(n, seed = "c") {
  const out = Buffer.alloc(n);
  let off = 0;
  for (let i = 0; off < n; i++) {
    const h = sha256(Buffer.from(`${seed}:${i}`));
    off += h.copy(out, off, 0, Math.min(32, n - off));
  }
  return out;
}

function frames(buf) {
  const out = [];
  let i = 0;
  while (i + 3 <= buf.length) {
    const len = buf.readUInt16BE(i + 1);
    if (i + 3 + len > buf.length) break;
    out.push({ type: buf[i], payload: buf.subarray(i + 3, i + 3 + len), raw: buf.subarray(i, i + 3 + len) });
    i += 3 + len;
  }
  return { frames: out, rest: buf.length - i };
}

function errorOf(buf) {
  const f = frames(buf).frames.find((x) => x.type === T.ERROR);
  if (!f) return null;
  return { code: f.payload.readUInt16BE(0), message: f.payload.subarray(3, 3 + f.payload[2]).toString() };
}

function frameTypes(buf) { return frames(buf).frames.map((f) => f.type); }

/// MicroPython's answer must equal the reference device's, frame for frame. ACK frames are compared exactly too
/// unless `acks: "rules"`: then they must be increasing, within the received bytes and end at the total.
function assertSameAnswer(mp, ref, { acks = "exact", ackEvery = 16384, chunk = 4096 } = {}) {
  const a = frames(mp), b = frames(ref);
  assert.equal(a.rest, 0, "MicroPython sent a partial frame");
  if (acks === "exact") {
    assert.deepEqual(a.frames.map((f) => f.raw.toString("hex")), b.frames.map((f) => f.raw.toString("hex")),
                     "MicroPython's answer differs from the reference device (core::Receiver)");
    return;
  }
  const strip = (fs_) => fs_.filter((f) => f.type !== T.ACK).map((f) => f.raw.toString("hex"));
  assert.deepEqual(strip(a.frames), strip(b.frames), "non-ACK frames differ from the reference device");
  const offs = a.frames.filter((f) => f.type === T.ACK).map((f) => Number(f.payload.readBigUInt64BE(0)));
  const refOffs = b.frames.filter((f) => f.type === T.ACK).map((f) => Number(f.payload.readBigUInt64BE(0)));
  for (let i = 1; i < offs.length; i++) {
    assert.ok(offs[i] > offs[i - 1], `ACK offsets must increase: ${offs}`);
    assert.ok(offs[i] - offs[i - 1] <= ackEvery + chunk, `ACK gap too large: ${offs}`);
  }
  if (refOffs.length) assert.equal(offs[offs.length - 1], refOffs[refOffs.length - 1], "last ACK offset");
}

// --- the MicroPython side --------------------------------------------------------------------------------------

class MicroPython {
  static async load() {
    const { loadMicroPython } = await import(MPJS);
    const self = new MicroPython();
    self.stdout = [];
    self.mp = await loadMicroPython({
      heapsize: 512 * 1024,
      stdout: (s) => { self.stdout.push(s); if (process.env.OTTER_VERBOSE) console.log("mpy:", s); },
      stderr: (s) => { self.stdout.push(s); console.error("mpy(stderr):", s); },
    });
    self.FS = self.mp.FS;
    self.FS.mkdirTree("/lib/otter");
    for (const f of fs.readdirSync(path.join(FW, "otter"))) {
      if (f.endsWith(".py")) self.FS.writeFile(`/lib/otter/${f}`, fs.readFileSync(path.join(FW, "otter", f)));
    }
    self.FS.writeFile("/lib/mp_harness.py", fs.readFileSync(path.join(HERE, "mp_harness.py")));
    self.FS.writeFile("/lib/otter_bootstrap.py", fs.readFileSync(path.join(FW, "main.py")));
    self.py("import sys\nsys.path.append('/lib')\nimport mp_harness");
    return self;
  }

  py(code) {
    try {
      return this.mp.runPython(code);
    } catch (e) {
      throw new Error(`MicroPython raised: ${e.type || e.name}: ${String(e.message).slice(0, 2000)}\n` +
                      this.stdout.slice(-20).join("\n"));
    }
  }

  call(req) {
    this.FS.writeFile("/tmp/req.json", JSON.stringify(req));
    this.py("mp_harness.main('/tmp/req.json', '/tmp/res.json')");
    const res = JSON.parse(this.FS.readFile("/tmp/res.json", { encoding: "utf8" }));
    if (res.exception) throw new Error(`harness: ${res.exception}\n${this.stdout.slice(-20).join("\n")}`);
    return res;
  }

  exists(p) { return this.FS.analyzePath(p).exists; }
  read(p) { return this.exists(p) ? Buffer.from(this.FS.readFile(p)) : null; }
  write(p, data) { this.FS.mkdirTree(path.posix.dirname(p)); this.FS.writeFile(p, data); }
  list(dir) { return this.exists(dir) ? this.FS.readdir(dir).filter((x) => x !== "." && x !== "..") : []; }
}

/// A device: a root in MicroPython's file system plus the reference device's state directory on the host.
class Device {
  constructor(t, opts = {}) {
    this.t = t;
    this.id = ++t.devices;
    this.root = `/dev${this.id}`;
    t.mpy.FS.mkdirTree(this.root);
    this.state = path.join(t.tmp, `ref${this.id}`);
    fs.mkdirSync(this.state, { recursive: true });
    this.cfg = { key: KEY, root: this.root, name: `mpy-${this.id}`, ...opts };
    this.sessions = 0;
  }

  nonce() { return sha256(Buffer.from(`nonce:${this.id}:${this.sessions++}`)).toString("hex"); }

  hello(nonce) { return this.t.mpy.call({ ...this.cfg, op: "hello", nonce }).hello; }

  /// One session: `args` are otter-record-session options (pusher mode) or {input: Buffer} (raw mode).
  session(args = {}, { end = "eof", maxread = 0, measure = false, nonce = this.nonce(), cfg = {} } = {}) {
    const t = this.t;
    const n = ++t.count;
    const prefix = path.join(t.tmp, `s${n}`);
    const hello = this.hello(nonce);
    const argv = ["--hello", hello, "--device-key", KEY, "--state", this.state, "--out", prefix, "--end", end];
    if (args.input) {
      fs.writeFileSync(`${prefix}.raw`, args.input);
      argv.push("--input", `${prefix}.raw`);
    } else {
      if (args.content !== undefined) {
        fs.writeFileSync(`${prefix}.content`, args.content);
        argv.push("--file", `${prefix}.content`);
      }
      for (const [k, v] of Object.entries(args)) {
        if (k === "content") continue;
        if (v === true) argv.push(`--${k}`);
        else argv.push(`--${k}`, String(v));
      }
    }
    const ref = JSON.parse(execFileSync(RECORD, argv, { encoding: "utf8" }));
    const input = fs.readFileSync(`${prefix}.in`);
    const refOut = fs.readFileSync(`${prefix}.out`);
    t.mpy.write("/tmp/s.in", input);
    const req = { ...this.cfg, ...cfg, nonce, input: "/tmp/s.in", output: "/tmp/s.out", end, maxread };
    let res;
    if (!measure) {
      res = t.mpy.call({ ...req, op: "run" });
    } else {
      // Live heap: gc.mem_alloc() after a collection, before the device exists and then every 8 reads.
      const alloc = () => { t.mpy.py("gc.collect()\n_m = gc.mem_alloc()"); return t.mpy.mp.globals.get("_m"); };
      t.mpy.py("import gc");
      // Stale words on the wasm shadow stack can keep the last call's garbage alive once: take the minimum.
      const base = Math.min(alloc(), alloc(), alloc());
      t.mpy.call({ ...req, op: "start" });
      let peak = 0, samples = 0;
      for (;;) {
        t.mpy.py("_c = mp_harness.step(8)");
        const over = t.mpy.mp.globals.get("_c");
        const a = alloc(); if (process.env.OTTER_MEMDEBUG) console.log("sample", a, base); peak = Math.max(peak, a - base);
        samples++;
        if (over) break;
      }
      res = { ...t.mpy.call({ ...req, op: "finish" }), peak, samples };
    }
    const out = t.mpy.read("/tmp/s.out");
    return { ref, refOut, input, out, res, hello: Buffer.from(hello, "hex") };
  }

  push(name, data, opts = {}, sess = {}) {
    return this.session({ content: data, [Buffer.isBuffer(name) ? "name-hex" : "name"]: Buffer.isBuffer(name) ? name.toString("hex") : name, ...opts }, sess);
  }

  file(name) { return this.t.mpy.read(`${this.root}/${name}`); }
}

// --- cases -----------------------------------------------------------------------------------------------------

const tests = new Map();
function test(name, fn) { tests.set(name, fn); }

/// A successful push: same answer as the reference device, DONE, the file in place, no partial copy left.
function expectCommitted(dev, s, name, data, { acks = "exact" } = {}) {
  assertSameAnswer(s.out, s.refOut, { acks });
  assert.equal(s.ref.pusher_result, 0, `the C++ pusher failed: ${s.ref.pusher_message}`);
  assert.equal(s.res.result, 0, `receiver result ${s.res.result}: ${s.res.message}`);
  const types = frameTypes(s.out);
  assert.equal(types[0], T.HELLO);
  assert.equal(types[1], T.READY);
  assert.equal(types[types.length - 1], T.DONE);
  const done = frames(s.out).frames.at(-1).payload;
  assert.equal(Number(done.readBigUInt64BE(0)), data.length);
  assert.ok(done.subarray(8, 40).equals(sha256(data)), "DONE carries the content's SHA-256");
  const got = dev.file(name);
  assert.ok(got, `${name} was not written`);
  assert.ok(got.equals(data), `${name} differs from what was pushed`);
  const key = sha256(Buffer.isBuffer(name) ? name : Buffer.from(name)).toString("hex");
  const left = dev.t.mpy.list(`${dev.root}/.otter/part`).filter((f) => f.startsWith(key));
  assert.deepEqual(left, [], "no partial copy of the name is left after a commit");
}

/// A refused request: the reference device's exact answer, the expected ERROR code, and nothing written.
function expectRefused(dev, s, code, name) {
  assertSameAnswer(s.out, s.refOut);
  const err = errorOf(s.out);
  assert.ok(err, `expected ERROR ${code}, got frames ${frameTypes(s.out)}`);
  assert.equal(err.code, code, `ERROR code (message: ${err.message})`);
  assert.equal(s.res.result, code);
  if (name !== undefined) assert.equal(dev.file(name), null, "a refused push must not create the target");
}

test("worked_example", (t) => {
  // protocol.md section 8, byte for byte: HELLO, READY, ACK and DONE as MicroPython produces them.
  const md = fs.readFileSync(path.resolve(HERE, "../../../docs/protocol.md"), "utf8");
  const section = md.slice(md.indexOf("<!-- worked-example:begin -->"), md.indexOf("<!-- worked-example:end -->"));
  const blocks = {};
  for (const m of section.matchAll(/\*\*\d+\. (\w+)\*\*[^\n]*\n\n```text\n([\s\S]*?)```/g)) {
    const hex = m[2].split("\n").map((l) => (/^([0-9a-f]{2}( [0-9a-f]{2})*)\s*\|/.exec(l) || [])[1] || "").join(" ");
    blocks[m[1]] = Buffer.from(hex.replace(/\s+/g, ""), "hex");
  }
  for (const k of ["HELLO", "PUSH", "READY", "DATA", "ACK", "DONE"]) assert.ok(blocks[k]?.length, `no ${k} block`);
  const probe = new Device(t, { reboot: true, window: 65536, max_size: 1048576, name: "dev-1" });
  const free = t.mpy.call({ ...probe.cfg, op: "hello", nonce: "00".repeat(32) }).hello;
  const freeNow = Number(Buffer.from(free, "hex").readBigUInt64BE(20));
  const dev = new Device(t, {
    key: "otter-example-key-0123", reboot: true, window: 65536, max_size: 1048576, name: "dev-1",
    reserve: freeNow - 2097152,
  });
  const nonce = Buffer.from([...Array(32).keys()]).toString("hex");
  assert.equal(dev.hello(nonce), blocks.HELLO.subarray(3).toString("hex"), "HELLO");
  t.mpy.write("/tmp/w.in", Buffer.concat([blocks.PUSH, blocks.DATA]));
  const res = t.mpy.call({ ...dev.cfg, op: "run", nonce, input: "/tmp/w.in", output: "/tmp/w.out" });
  assert.equal(res.result, 0, res.message);
  const out = t.mpy.read("/tmp/w.out");
  assert.equal(out.toString("hex"), Buffer.concat([blocks.HELLO, blocks.READY, blocks.ACK, blocks.DONE]).toString("hex"));
  assert.equal(dev.file("greeting.txt").toString(), "hello");
});

function pushSize(t, label, size) {
  const dev = new Device(t);
  const data = content(size, label);
  const s = dev.push(`bin/${label}.bin`, data);
  expectCommitted(dev, s, `bin/${label}.bin`, data);
  assert.deepEqual(s.res.commits, [[`bin/${label}.bin`, 0, size, false]]);
  assert.ok(s.res.biggest_read <= 4096, "reads never exceed the 4 KiB buffer");
}
test("push_0B", (t) => pushSize(t, "0B", 0));
test("push_1B", (t) => pushSize(t, "1B", 1));
test("push_100KiB", (t) => pushSize(t, "100KiB", 100 * 1024));
test("push_2MiB", (t) => pushSize(t, "2MiB", 2 * 1024 * 1024));

test("memory_2MiB", (t) => {
  // gc.mem_alloc() after a collection, sampled on every read while receiving: the live heap stays bounded and
  // does not grow with the file (100 KiB vs 2 MiB).
  const dev = new Device(t);
  const small = dev.push("m/small.bin", content(100 * 1024, "ms"), {}, { measure: true });
  expectCommitted(dev, small, "m/small.bin", content(100 * 1024, "ms"));
  const data = content(2 * 1024 * 1024, "mb");
  const big = dev.push("m/big.bin", data, {}, { measure: true });
  expectCommitted(dev, big, "m/big.bin", data);
  console.log(`receiver's live heap (device + session + buffer + open files), peak over ${big.res.samples} samples: ` +
              `100 KiB -> ${small.res.peak} B, 2 MiB -> ${big.res.peak} B`);
  assert.ok(big.res.samples > 50, "sampled throughout the transfer");
  assert.ok(big.res.peak < 16 * 1024, `receiving 2 MiB kept ${big.res.peak} B live (bound 16 KiB)`);
  assert.ok(big.res.peak <= small.res.peak + 1024, "memory must not grow with the file size");
});

test("chunked_reads", (t) => {
  // The connection hands out at most 7 bytes per read (TCP segmentation): same answer, same file.
  const dev = new Device(t);
  const data = content(50000, "chunked");
  const s = dev.push("chunked.bin", data, { chunk: 1000 }, { maxread: 7 });
  expectCommitted(dev, s, "chunked.bin", data, { acks: "rules" });
});

test("socket_like_connection", (t) => {
  // recv_into() and a send() that takes 5 bytes per call (no sendall/readinto/write): same answer, same file.
  const dev = new Device(t);
  const data = content(30000, "sock");
  const s = dev.push("sock.bin", data, {}, { cfg: { socketlike: true } });
  expectCommitted(dev, s, "sock.bin", data);
});

test("small_window_acks", (t) => {
  // window 4096: an ACK every 1024 bytes at the latest (window/4), and once at the end.
  const dev = new Device(t, { window: 4096 });
  const data = content(40000, "win");
  const s = dev.push("win.bin", data, { chunk: 1500 });
  expectCommitted(dev, s, "win.bin", data, { acks: "rules" });
  const acks = frames(s.out).frames.filter((f) => f.type === T.ACK).map((f) => Number(f.payload.readBigUInt64BE(0)));
  assert.equal(acks.at(-1), 40000);
  let prev = 0;
  for (const a of acks) { assert.ok(a - prev <= 1500, `ACK gap ${a - prev} > one frame`); prev = a; }
});

test("replace_existing", (t) => {
  const dev = new Device(t);
  const v1 = content(3000, "v1"), v2 = content(1234, "v2");
  expectCommitted(dev, dev.push("lib/app.py", v1), "lib/app.py", v1);
  expectCommitted(dev, dev.push("lib/app.py", v2), "lib/app.py", v2);
});

test("name_255_and_utf8_ok", (t) => {
  const dev = new Device(t);
  const long = "n".repeat(251) + ".txt";
  assert.equal(Buffer.byteLength(long), 255);
  expectCommitted(dev, dev.push(long, Buffer.from("x")), long, Buffer.from("x"));
  const utf8 = "d\u00e9j\u00e0/\u00fcber.txt";
  expectCommitted(dev, dev.push(utf8, Buffer.from("y")), utf8, Buffer.from("y"));
});

test("stat", (t) => {
  const dev = new Device(t);
  const data = content(5000, "stat");
  expectCommitted(dev, dev.push("s/file.bin", data), "s/file.bin", data);
  const s = dev.session({ op: "stat", name: "s/file.bin" });
  assertSameAnswer(s.out, s.refOut);
  const r = frames(s.out).frames.at(-1);
  assert.equal(r.type, T.STAT_RESULT);
  assert.equal(r.payload[0], 1);
  assert.equal(Number(r.payload.readBigUInt64BE(1)), 5000);
  assert.ok(r.payload.subarray(9, 41).equals(sha256(data)));
  for (const missing of ["s/none.bin", "s"]) {  // absent, and a directory: both "does not exist"
    const m = dev.session({ op: "stat", name: missing });
    assertSameAnswer(m.out, m.refOut);
    const p = frames(m.out).frames.at(-1).payload;
    assert.equal(p[0], 0);
    assert.ok(p.subarray(1, 41).equals(Buffer.alloc(40)));
  }
  const bad = dev.session({ op: "stat", name: "../etc/passwd" });
  expectRefused(dev, bad, E.BAD_NAME);
});

// Bad names: protocol.md section 5, exactly (the messages are the core's).
function badName(t, name, msg) {
  const dev = new Device(t);
  const s = dev.push(name, Buffer.from("payload"));
  expectRefused(dev, s, E.BAD_NAME);
  assert.equal(errorOf(s.out).message, msg);
  assert.deepEqual(frameTypes(s.out), [T.HELLO, T.ERROR], "refused before READY: no data accepted");
  assert.deepEqual(t.mpy.list(dev.root).filter((x) => x !== ".otter"), [], "nothing written");
}
test("name_dotdot", (t) => badName(t, "../x", "name has a '..' segment"));
test("name_dotdot_inner", (t) => badName(t, "a/../../x", "name has a '..' segment"));
test("name_absolute", (t) => badName(t, "/etc/x", "name is an absolute path"));
test("name_backslash", (t) => badName(t, "a\\b", "name contains a backslash"));
test("name_nul", (t) => badName(t, Buffer.from("a\0b"), "name contains a NUL byte"));
test("name_control", (t) => badName(t, Buffer.from("a\x01b"), "name contains a control character"));
test("name_newline", (t) => badName(t, Buffer.from("a\nb"), "name contains a control character"));
test("name_del", (t) => badName(t, Buffer.from("a\x7fb"), "name contains a control character"));
test("name_too_long", (t) => badName(t, "n".repeat(256), "name is longer than 255 bytes"));
test("name_empty", (t) => badName(t, Buffer.alloc(0), "name is empty"));
test("name_empty_segment", (t) => badName(t, "a//b", "name has an empty segment"));
test("name_trailing_slash", (t) => badName(t, "a/", "name has an empty segment"));
test("name_dot", (t) => badName(t, "./a", "name has a '.' segment"));
test("name_reserved", (t) => badName(t, ".otter/part/x.part", "name starts with the reserved segment '.otter'"));

test("name_reserved_prefix_ok", (t) => {
  // Only the exact first segment ".otter" is reserved.
  const dev = new Device(t);
  expectCommitted(dev, dev.push(".otterly/x", Buffer.from("z")), ".otterly/x", Buffer.from("z"));
});

test("too_large", (t) => {
  const dev = new Device(t, { max_size: 1000 });
  expectCommitted(dev, dev.push("ok.bin", content(1000)), "ok.bin", content(1000));
  const s = dev.push("big.bin", content(1001));
  expectRefused(dev, s, E.TOO_LARGE, "big.bin");
});

test("no_space", (t) => {
  const dev = new Device(t);
  const free = Number(Buffer.from(dev.hello("00".repeat(32)), "hex").readBigUInt64BE(20));
  dev.cfg.reserve = free - 500;  // 500 bytes left for artifacts
  const s = dev.push("big.bin", content(501));
  expectRefused(dev, s, E.NO_SPACE, "big.bin");
  expectCommitted(dev, dev.push("fits.bin", content(500)), "fits.bin", content(500));
});

test("wrong_sha256", (t) => {
  const dev = new Device(t);
  const data = content(20000, "sha");
  const s = dev.push("h.bin", data, { sha256: sha256(Buffer.from("something else")).toString("hex") });
  expectRefused(dev, s, E.HASH_MISMATCH, "h.bin");
  assert.equal(s.res.received, 20000, "all content was streamed before the check");
  assert.deepEqual(t.mpy.list(`${dev.root}/.otter/part`), [], "the mismatching copy is deleted");
});

test("wrong_key", (t) => {
  const dev = new Device(t);
  const s = dev.push("k.bin", Buffer.from("data"), { key: "not-the-device-key-0123456789" });
  expectRefused(dev, s, E.AUTH_FAILED, "k.bin");
  assert.deepEqual(frameTypes(s.out), [T.HELLO, T.ERROR]);
});

test("replayed_authentication", (t) => {
  // A complete, valid session recorded against one HELLO is useless on a new connection (new nonce).
  const dev = new Device(t);
  const data = content(3000, "replay");
  const first = dev.push("r.bin", data);
  expectCommitted(dev, first, "r.bin", data);
  t.mpy.FS.unlink(`${dev.root}/r.bin`);
  fs.rmSync(path.join(dev.state, "r.bin"));
  const replay = dev.session({ input: first.input });
  expectRefused(dev, replay, E.AUTH_FAILED, "r.bin");
});

test("tampered_request", (t) => {
  // Flip one bit of the recorded PUSH's size field: the MAC no longer verifies.
  const dev = new Device(t);
  const nonce = dev.nonce();
  const rec = dev.push("t.bin", content(100), {}, { nonce });
  const input = Buffer.from(rec.input);
  input[3 + 35 + 7] ^= 1;  // PUSH payload: size is at offset 35..42
  dev.sessions--;  // replay under the same nonce the request was made for
  const s = dev.session({ input }, { nonce });
  const err = errorOf(s.out);
  assert.equal(err.code, E.AUTH_FAILED);
  assertSameAnswer(s.out, s.refOut);
});

test("garbage", (t) => {
  const dev = new Device(t);
  const s = dev.session({ input: Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n") });
  expectRefused(dev, s, E.PROTOCOL);
  assert.equal(errorOf(s.out).message, "unknown frame type");
  const r = dev.session({ input: crypto.randomBytes(5000) });
  assertSameAnswer(r.out, r.refOut);
});

test("truncated_header", (t) => {
  // Two bytes of a header, then the peer closes: nothing but HELLO goes out, nothing is written.
  const dev = new Device(t);
  const s = dev.session({ input: Buffer.from([0x10, 0x00]) });
  assertSameAnswer(s.out, s.refOut);
  assert.deepEqual(frameTypes(s.out), [T.HELLO]);
  assert.equal(s.res.result, E.CONNECTION_CLOSED);
  // The same, then silence: ERROR TIMEOUT.
  const q = dev.session({ input: Buffer.from([0x10, 0x00]) }, { end: "timeout" });
  expectRefused(dev, q, E.TIMEOUT);
});

test("truncated_request", (t) => {
  const dev = new Device(t);
  const rec = dev.push("x.bin", Buffer.from("abc"), {}, { nonce: "11".repeat(32) });
  dev.sessions--;
  const s = dev.session({ input: rec.input.subarray(0, 60) }, { end: "timeout", nonce: "11".repeat(32) });
  expectRefused(dev, s, E.TIMEOUT);
});

test("silent_client", (t) => {
  const dev = new Device(t, { idle_timeout: 1 });
  const s = dev.session({ input: Buffer.alloc(0) }, { end: "timeout" });
  expectRefused(dev, s, E.TIMEOUT);
  assert.deepEqual(frameTypes(s.out), [T.HELLO, T.ERROR]);
  assert.equal(errorOf(s.out).message, "peer silent for longer than the idle timeout");
});

test("frame_errors", (t) => {
  const dev = new Device(t);
  const cases = [
    [Buffer.from([0x12, 0x00, 0x03, 1, 2, 3]), "DATA before an accepted PUSH"],
    [Buffer.from([0x10, 0x07, 0xd0]), "control frame too long"],
    [Buffer.from([0x02, 0x00, 0x00]), "frame not allowed in this state"],
    [Buffer.from([0x10, 0x00, 0x02, 0x01, 0x00]), "PUSH length mismatch"],
    [Buffer.from([0x10, 0x00, 0x02, 0x02, 0x00]), "request version not supported"],
  ];
  for (const [input, msg] of cases) {
    const s = dev.session({ input });
    assertSameAnswer(s.out, s.refOut);
    assert.equal(errorOf(s.out)?.message, msg);
  }
});

test("too_much_data", (t) => {
  // A DATA frame longer than the announced size: PROTOCOL, nothing committed.
  const dev = new Device(t);
  const nonce = "22".repeat(32);
  const rec = dev.push("d.bin", Buffer.from("12345"), {}, { nonce });
  t.mpy.FS.unlink(`${dev.root}/d.bin`);
  fs.rmSync(path.join(dev.state, "d.bin"));
  const push = frames(rec.input).frames[0].raw;
  const input = Buffer.concat([push, Buffer.from([0x12, 0x00, 0x06]), Buffer.from("123456")]);
  dev.sessions--;
  const s = dev.session({ input }, { nonce });
  expectRefused(dev, s, E.PROTOCOL, "d.bin");
  assert.equal(errorOf(s.out).message, "more DATA than the announced size");
});

test("unsupported_kind", (t) => {
  const dev = new Device(t);  // no partition: firmware refused, FIRMWARE cap not advertised
  assert.equal(Buffer.from(dev.hello("00".repeat(32)), "hex").readUInt16BE(5) & 2, 0);
  expectRefused(dev, dev.push("fw.bin", content(100), { kind: "firmware" }), E.UNSUPPORTED_KIND, "fw.bin");
  expectRefused(dev, dev.push("k7.bin", content(100), { kind: 7 }), E.UNSUPPORTED_KIND, "k7.bin");
});

test("resume_after_cut", (t) => {
  const dev = new Device(t);
  const data = content(300000, "resume");
  const cut = dev.push("r/big.bin", data, { "cut-after": 123457 });
  assertSameAnswer(cut.out, cut.refOut);
  assert.equal(cut.res.result, E.CONNECTION_CLOSED);
  assert.equal(dev.file("r/big.bin"), null, "no partial target");
  const parts = t.mpy.list(`${dev.root}/.otter/part`).sort();
  assert.equal(parts.length, 2, `partial copy + meta kept: ${parts}`);
  const again = dev.push("r/big.bin", data);
  const ready = frames(again.out).frames[1];
  assert.equal(ready.type, T.READY);
  assert.equal(Number(ready.payload.readBigUInt64BE(0)), 123457, "resumes where the cut left it");
  assert.equal(again.ref.resume_offset, 123457);
  assert.equal(again.res.resumed, 123457);
  expectCommitted(dev, again, "r/big.bin", data);
});

test("resume_after_timeout_and_peer_error", (t) => {
  const dev = new Device(t);
  const data = content(70000, "rt");
  const cut = dev.push("rt.bin", data, { "cut-after": 40000 }, { end: "timeout" });
  expectRefused(dev, cut, E.TIMEOUT, "rt.bin");
  // The pusher gives up with an ERROR frame after one more DATA frame: the partial copy is kept too.
  const pe = dev.push("rt.bin", data, { "cut-after": 16384 }, { end: "error" });
  assertSameAnswer(pe.out, pe.refOut);
  assert.equal(pe.res.resumed, 40000);
  assert.equal(pe.res.result, 12, "the pusher's code is the session's result");
  assert.equal(errorOf(pe.out), null, "no answer to an ERROR");
  const again = dev.push("rt.bin", data);
  assert.equal(again.res.resumed, 40000 + 16384);
  expectCommitted(dev, again, "rt.bin", data);
});

test("resume_other_content_restarts", (t) => {
  const dev = new Device(t);
  const a = content(50000, "A"), b = content(50000, "B");
  dev.push("x.bin", a, { "cut-after": 20000 });
  const s = dev.push("x.bin", b);
  assert.equal(s.res.resumed, 0, "another sha256 for the name discards the partial copy");
  expectCommitted(dev, s, "x.bin", b);
});

test("resume_complete_partial", (t) => {
  // Everything arrived but the connection broke before the commit: the next PUSH gets READY offset == size.
  const dev = new Device(t);
  const data = content(10000, "full");
  const nonce = dev.nonce();
  dev.sessions--;
  const rec = dev.push("f.bin", data, {}, { nonce });
  t.mpy.FS.unlink(`${dev.root}/f.bin`);
  fs.rmSync(path.join(dev.state, "f.bin"));
  // Replay all but the last byte of the last DATA frame, then EOF.
  dev.sessions--;
  const cut = dev.session({ input: rec.input.subarray(0, rec.input.length - 1) }, { nonce });
  assertSameAnswer(cut.out, cut.refOut);
  const s = dev.push("f.bin", data);
  assert.equal(s.res.resumed, 9999);
  expectCommitted(dev, s, "f.bin", data);
});

test("reboot_flag_backup", (t) => {
  const dev = new Device(t, { reboot: true });
  const caps = Buffer.from(dev.hello("00".repeat(32)), "hex").readUInt16BE(5);
  assert.equal(caps, 0x1d, "FILE | RESUME | STAT | REBOOT");
  const v1 = Buffer.from("VERSION = 1\n"), v2 = Buffer.from("VERSION = 2\n");
  const a = dev.push("app.py", v1);
  expectCommitted(dev, a, "app.py", v1);
  assert.equal(a.res.reboots, 0);
  const b = dev.push("app.py", v2, { reboot: true });
  expectCommitted(dev, b, "app.py", v2);
  assert.equal(frames(b.out).frames.at(-1).payload[40], 1, "DONE rebooting = 1");
  assert.equal(b.res.reboots, 1, "the reboot hook ran after DONE");
  const pending = JSON.parse(t.mpy.read(`${dev.root}/.otter/pending`).toString());
  assert.equal(pending.name, "app.py");
  assert.equal(t.mpy.read(`${dev.root}/${pending.backup}`).toString(), "VERSION = 1\n", "previous version kept");
});

test("self_update_rollback", (t) => {
  // main.py (the bootstrap) on the real MicroPython: a good update is confirmed; one whose module raises on
  // import is rolled back to the backup, and the board resets.
  const dev = new Device(t, { reboot: true });
  const root = dev.root;
  t.mpy.write(`${root}/otter.json`, JSON.stringify({ key: KEY, app: "app" }));
  const good1 = Buffer.from("VERSION = 1\n");
  expectCommitted(dev, dev.push("app.py", good1), "app.py", good1);
  t.mpy.py(`import sys\nsys.path.insert(0, '${root}')\nimport otter_bootstrap\nresets = []\n` +
           `def boot():\n    return otter_bootstrap.boot(root='${root}', reset=lambda: resets.append(1), start=False)\n`);
  const value = (expr) => { t.mpy.py(`_v = ${expr}`); return t.mpy.mp.globals.get("_v"); };
  const boot = () => value("boot()");
  assert.equal(boot(), "ok");
  assert.equal(value("sys.modules['app'].VERSION"), 1);

  const bad = Buffer.from("VERSION = 2\nraise RuntimeError('broken update')\n");
  const s = dev.push("app.py", bad, { reboot: true });
  expectCommitted(dev, s, "app.py", bad);
  assert.equal(boot(), "rolled-back");
  assert.equal(value("len(resets)"), 1, "reset after the rollback");
  assert.equal(dev.file("app.py").toString(), "VERSION = 1\n", "previous version restored");
  assert.equal(t.mpy.exists(`${root}/.otter/pending`), false);
  assert.equal(boot(), "ok");
  assert.equal(value("sys.modules['app'].VERSION"), 1);

  const good3 = Buffer.from("VERSION = 3\n");
  expectCommitted(dev, dev.push("app.py", good3, { reboot: true }), "app.py", good3);
  assert.equal(boot(), "confirmed");
  assert.equal(value("sys.modules['app'].VERSION"), 3);
  assert.equal(t.mpy.exists(`${root}/.otter/pending`), false);
  assert.equal(boot(), "ok");

  // A trial boot that died before confirming (pending left with tries = 1): rolled back on the next boot.
  const good4 = Buffer.from("VERSION = 4\n");
  expectCommitted(dev, dev.push("app.py", good4, { reboot: true }), "app.py", good4);
  const p = JSON.parse(t.mpy.read(`${root}/.otter/pending`).toString());
  t.mpy.write(`${root}/.otter/pending`, JSON.stringify({ ...p, tries: 1 }));
  assert.equal(boot(), "rolled-back");
  assert.equal(dev.file("app.py").toString(), "VERSION = 3\n");

  // A new file (no previous version) that breaks the boot is removed.
  const newBad = Buffer.from("raise ValueError('x')\n");
  t.mpy.write(`${root}/otter.json`, JSON.stringify({ key: KEY, app: "app2" }));
  expectCommitted(dev, dev.push("app2.py", newBad, { reboot: true }), "app2.py", newBad);
  assert.equal(boot(), "rolled-back");
  assert.equal(dev.file("app2.py"), null);
  assert.equal(boot(), "app-failed", "no update pending: the receiver keeps running for a fix");
  assert.equal(value("len(resets)"), 3);
});

test("firmware_partition", (t) => {
  const dev = new Device(t, { partition: { path: "/tmp/ota_1.img", blocks: 64 } });
  const caps = Buffer.from(dev.hello("00".repeat(32)), "hex").readUInt16BE(5);
  assert.equal(caps & 2, 2, "FIRMWARE advertised with a partition");
  const image = content(4096 * 5 + 1000, "fw");
  const cut = dev.push("firmware.bin", image, { kind: "firmware", "cut-after": 4096 * 2 + 100 });
  assertSameAnswer(cut.out, cut.refOut);
  // Only whole flash blocks count as held: the partition holds 8192 bytes. The reference device stores firmware
  // as a file (8292 bytes held): trim its partial copy to the same point so both resume at 8192.
  const refPart = path.join(dev.state, ".otter/part", sha256(Buffer.from("firmware.bin")).toString("hex") + ".part");
  assert.equal(fs.statSync(refPart).size, 8292);
  fs.truncateSync(refPart, 8192);
  const s = dev.push("firmware.bin", image, { kind: "firmware" });
  assertSameAnswer(s.out, s.refOut);
  assert.equal(s.res.resumed, 8192);
  assert.equal(s.res.result, 0, s.res.message);
  assert.equal(errorOf(s.out), null);
  const done = frames(s.out).frames.at(-1);
  assert.equal(done.type, T.DONE);
  assert.ok(done.payload.subarray(8, 40).equals(sha256(image)));
  const img = t.mpy.read("/tmp/ota_1.img");
  assert.ok(img.subarray(0, image.length).equals(image), "image written to the partition");
  assert.ok(img.subarray(image.length, 4096 * 6).equals(Buffer.alloc(4096 * 6 - image.length, 0xff)), "padded");
  assert.ok(t.mpy.exists("/tmp/ota_1.img.boot"), "set_boot() called");
  assert.ok(t.mpy.exists(`${dev.root}/.otter/fw_pending`));
  assert.equal(dev.file("firmware.bin"), null, "a firmware image is not a file");
  // Too large for the partition.
  const big = dev.push("firmware.bin", content(64 * 4096 + 1, "fwbig"), { kind: "firmware" });
  assert.equal(errorOf(big.out)?.code, E.NO_SPACE, JSON.stringify(errorOf(big.out)));
});

// --- runner ----------------------------------------------------------------------------------------------------

async function runOne(name) {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "otter-mpy-"));
  const t = { tmp, devices: 0, count: 0, mpy: await MicroPython.load() };
  try {
    await tests.get(name)(t);
  } catch (e) {
    if (t.mpy.stdout.length) console.log(`--- MicroPython output (last lines):\n${t.mpy.stdout.slice(-30).join("\n")}`);
    throw e;
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

const only = process.argv[2];
if (only === "--list") {
  console.log([...tests.keys()].join("\n"));
  process.exit(0);
}
if (only === "--check-registered") {
  // CTest registers the cases it finds with a regular expression: every case must be among them.
  const registered = new Set(process.argv.slice(3));
  const missing = [...tests.keys()].filter((n) => !registered.has(n));
  const stale = [...registered].filter((n) => !tests.has(n));
  console.log(missing.length || stale.length ? `missing: ${missing} stale: ${stale}` : `${tests.size} cases registered`);
  console.log(missing.length || stale.length ? "0 passed, 1 failed" : "1 passed, 0 failed");
  process.exit(missing.length || stale.length ? 1 : 0);
}
if (!RECORD || !fs.existsSync(RECORD)) {
  console.error(`otter-record-session not found (OTTER_BIN_DIR=${BIN})`);
  process.exit(2);
}
if (!fs.existsSync(MPJS)) {
  console.error(`MicroPython wasm package missing: run ${path.join(HERE, "setup.sh")}`);
  process.exit(2);
}
const names = only ? [only] : [...tests.keys()];
let passed = 0, failed = 0;
for (const name of names) {
  if (!tests.has(name)) { console.error(`no such case: ${name}`); process.exit(2); }
  const t0 = Date.now();
  try {
    await runOne(name);
    passed++;
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (e) {
    failed++;
    console.log(`FAIL ${name}: ${String(e.stack || e).slice(0, 4000)}`);
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
