// A signaling-only stand-in for the Rust server, for developing the client and
// checking the e2e harness before the real server exists. It speaks the protocol
// (join/welcome/errors/presence/media_state/ping/leave). Media: unless --no-media,
// it launches a headless Chromium page (scripts/mock-sfu-page.js) that acts as a toy
// SFU made of browser peer connections, so audio/video really flows.
//
//   mock-openhearing serve --config <toml>
//   mock-openhearing hearing create --config <toml> --case C --title T --participant "Name:role:Site"... --json
import { createHash, createHmac, randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const SECRET = 'mock-secret-not-for-production';
const HERE = dirname(fileURLToPath(import.meta.url));
const DIST = process.env.OPENHEARING_WEB_DIR || resolve(dirname(fileURLToPath(import.meta.url)), '..', 'dist');
const args = process.argv.slice(2);
const opt = (name) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const config = readFileSync(opt('--config'), 'utf8');
const tomlStr = (key) => new RegExp(`^${key}\\s*=\\s*"([^"]*)"`, 'm').exec(config)?.[1];
const listen = tomlStr('listen');
const publicUrl = tomlStr('public_url');
const dataDir = tomlStr('dir');
mkdirSync(dataDir, { recursive: true });
const hearingFile = (id) => join(dataDir, `hearing-${id}.json`);

const b64 = (s) => Buffer.from(s).toString('base64url');
const sign = (payload) => {
  const head = b64(JSON.stringify({ alg: 'HS256', typ: 'JWT' })) + '.' + b64(JSON.stringify(payload));
  return head + '.' + createHmac('sha256', SECRET).update(head).digest('base64url');
};
const verify = (token) => {
  const parts = String(token || '').split('.');
  if (parts.length !== 3) return { error: 'token_malformed' };
  const want = createHmac('sha256', SECRET).update(parts[0] + '.' + parts[1]).digest('base64url');
  if (want !== parts[2]) return { error: 'token_invalid' };
  const p = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
  if (p.exp <= Date.now() / 1000) return { error: 'token_expired' };
  return { payload: p };
};

if (args[0] === 'hearing' && args[1] === 'create') {
  const id = randomUUID();
  const now = Math.floor(Date.now() / 1000);
  const participants = [];
  args.forEach((a, i) => {
    if (a !== '--participant') return;
    const [name, role, site] = args[i + 1].split(':');
    participants.push({ participant_id: randomUUID(), name, role, site });
  });
  const hearing = { id, case_number: opt('--case'), title: opt('--title'), participants };
  writeFileSync(hearingFile(id), JSON.stringify(hearing));
  for (const p of participants) {
    const token = sign({ sub: p.participant_id, hearing_id: id, role: p.role, name: p.name, site: p.site, case_number: hearing.case_number, title: hearing.title, iat: now, exp: now + 86400 });
    p.join_url = `${publicUrl}/join/${id}#token=${token}`;
  }
  console.log(JSON.stringify({ hearing_id: id, participants }));
  process.exit(0);
}

if (args[0] !== 'serve') {
  console.error('usage: mock-openhearing serve|hearing create --config <file>');
  process.exit(2);
}

// ---------------------------------------------------------------- minimal WebSocket
function wsAccept(req, socket, onText, onClose) {
  const accept = createHash('sha1').update(req.headers['sec-websocket-key'] + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64');
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`);
  let buf = Buffer.alloc(0);
  let closed = false;
  const frame = (op, payload) => {
    const len = payload.length;
    const head = len < 126 ? Buffer.from([0x80 | op, len]) : len < 65536 ? Buffer.from([0x80 | op, 126, len >> 8, len & 255]) : (() => { const b = Buffer.alloc(10); b[0] = 0x80 | op; b[1] = 127; b.writeBigUInt64BE(BigInt(len), 2); return b; })();
    if (!socket.destroyed) socket.write(Buffer.concat([head, payload]));
  };
  const conn = {
    send: (obj) => frame(1, Buffer.from(JSON.stringify(obj))),
    close: (code = 1000) => {
      if (closed) return;
      closed = true;
      const b = Buffer.alloc(2);
      b.writeUInt16BE(code);
      frame(8, b);
      socket.end();
      onClose();
    },
  };
  socket.on('data', (d) => {
    buf = Buffer.concat([buf, d]);
    for (;;) {
      if (buf.length < 2) return;
      const op = buf[0] & 15;
      let len = buf[1] & 127;
      let off = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); off = 10; }
      if (buf.length < off + 4 + len) return;
      const mask = buf.subarray(off, off + 4);
      const data = Buffer.from(buf.subarray(off + 4, off + 4 + len));
      for (let i = 0; i < data.length; i++) data[i] ^= mask[i & 3];
      buf = buf.subarray(off + 4 + len);
      if (op === 1) onText(data.toString('utf8'));
      else if (op === 8) conn.close();
      else if (op === 9) frame(10, data);
    }
  });
  socket.on('close', () => { if (!closed) { closed = true; onClose(); } });
  socket.on('error', () => {});
  return conn;
}

// ---------------------------------------------------------------- hearings
const live = new Map(); // hearing id -> Map(participant id -> { conn, state })
const info = (h, p, state) => ({ id: p.participant_id, name: p.name, role: p.role, site: p.site, present: !!state, audio: state?.audio ?? false, video: state?.video ?? false });
const broadcast = (hid, except, msg) => {
  for (const [pid, s] of live.get(hid) ?? []) if (pid !== except) s.conn.send(msg);
};

function onSocket(req, socket, hid) {
  let me = null;
  let hearing = null;
  const conn = wsAccept(req, socket, (text) => {
    let msg;
    try { msg = JSON.parse(text); } catch { return conn.send({ type: 'error', code: 'malformed_message', message: 'not JSON', fatal: false }); }
    if (!me) {
      if (msg.type !== 'join') return fatal('not_joined', 'join first');
      if (msg.v !== 1) return fatal('unsupported_version', 'v1 only');
      const v = verify(msg.token);
      if (v.error) return fatal(v.error, v.error);
      if (v.payload.hearing_id !== hid) return fatal('token_wrong_hearing', 'wrong hearing');
      if (!existsSync(hearingFile(hid))) return fatal('hearing_not_found', 'no such hearing');
      hearing = JSON.parse(readFileSync(hearingFile(hid), 'utf8'));
      const p = hearing.participants.find((x) => x.participant_id === v.payload.sub);
      if (!p) return fatal('participant_unknown', 'unknown participant');
      if (!live.has(hid)) live.set(hid, new Map());
      const room = live.get(hid);
      const old = room.get(p.participant_id);
      if (old) { sfu?.send({ pid: p.participant_id, msg: { type: 'gone' } }); old.conn.send({ type: 'error', code: 'replaced', message: 'joined elsewhere', fatal: true }); old.replaced = true; old.conn.close(4409); }
      me = p;
      const state = { conn, audio: p.role !== 'observer', video: p.role !== 'observer' };
      room.set(p.participant_id, state);
      conn.send({
        type: 'welcome', v: 1, you: info(hearing, p, state), hearing: { id: hid, case_number: hearing.case_number, title: hearing.title },
        participants: hearing.participants.filter((x) => x !== p).map((x) => info(hearing, x, room.get(x.participant_id))),
        max_message_bytes: 65536, can_publish: p.role !== 'observer',
      });
      broadcast(hid, p.participant_id, { type: old ? 'participant_updated' : 'participant_joined', participant: info(hearing, p, state) });
      return;
    }
    const room = live.get(hid);
    const state = room.get(me.participant_id);
    switch (msg.type) {
      case 'ping': return conn.send({ type: 'pong', id: msg.id ?? 0 });
      case 'media_state':
        state.audio = !!msg.audio; state.video = !!msg.video;
        return broadcast(hid, me.participant_id, { type: 'participant_updated', participant: info(hearing, me, state) });
      case 'leave': return conn.close(1000);
      case 'offer': case 'answer': case 'candidate':
        return sfu?.send({ pid: me.participant_id, msg }); // dropped without a media stack
      default: return conn.send({ type: 'error', code: 'unknown_message_type', message: String(msg.type), fatal: false });
    }
  }, () => {
    if (!me) return;
    const room = live.get(hid);
    const state = room?.get(me.participant_id);
    if (state && state.conn === conn) {
      room.delete(me.participant_id);
      sfu?.send({ pid: me.participant_id, msg: { type: 'gone' } });
      broadcast(hid, me.participant_id, { type: 'participant_left', participant_id: me.participant_id, reason: 'left' });
    }
  });
  function fatal(code, message) {
    conn.send({ type: 'error', code, message, fatal: true });
    conn.close(4401);
  }
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
const server = createServer((req, res) => {
  const path = new URL(req.url, 'http://x').pathname;
  if (path === '/healthz' || path === '/readyz') {
    if (withMedia && !sfu) res.statusCode = 503;
    return res.end(res.statusCode === 200 ? 'ok' : 'starting');
  }
  if (path === '/__sfu') {
    res.setHeader('content-type', 'text/html');
    return res.end(`<!doctype html><title>sfu</title><script>${readFileSync(join(HERE, 'mock-sfu-page.js'), 'utf8')}</script>`);
  }
  if (path.startsWith('/api/') || path.startsWith('/ws/')) { res.statusCode = 404; return res.end(); }
  let file = join(DIST, path);
  if (!file.startsWith(DIST) || !existsSync(file) || path === '/') file = join(DIST, 'index.html');
  try {
    const body = readFileSync(file);
    res.setHeader('content-type', TYPES[extname(file)] ?? 'application/octet-stream');
    res.end(body);
  } catch {
    res.statusCode = 404;
    res.end();
  }
});
server.on('upgrade', (req, socket) => {
  if (req.url === '/ws/__sfu') {
    const conn = wsAccept(req, socket, (text) => {
      const { to, msg } = JSON.parse(text);
      for (const room of live.values()) room.get(to)?.conn.send(msg);
    }, () => { sfu = null; });
    sfu = conn;
    return;
  }
  const m = /^\/ws\/hearings\/([^/?]+)/.exec(req.url);
  if (!m) return socket.destroy();
  onSocket(req, socket, decodeURIComponent(m[1]));
});
const [host, port] = listen.split(':');
let sfu = null;
let browser = null;
const withMedia = !args.includes('--no-media');
server.listen(Number(port), host, async () => {
  console.error(`mock-openhearing listening on ${listen}`);
  if (!withMedia) return;
  const { chromium } = await import('playwright-core');
  browser = await chromium.launch({
    executablePath: process.env.OPENHEARING_CHROMIUM || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns', '--autoplay-policy=no-user-gesture-required'],
  });
  const page = await browser.newPage();
  page.on('console', (m) => console.error(`[sfu] ${m.text()}`));
  await page.goto(`http://${listen}/__sfu`);
  console.error('mock SFU page started');
});
const stop = async () => {
  await browser?.close().catch(() => {});
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
