// Browser end-to-end test: the real server binary + three Chromium participants.
// Run through e2e/run.sh (loopback-only network namespace); see README.md.
//
// Env:
//   OPENHEARING_BIN        server binary (default ../target/debug/openhearing, relative to web-client/)
//   OPENHEARING_CHROMIUM   Chromium executable (default /usr/bin/chromium)
//   OPENHEARING_E2E_MEDIA_TIMEOUT_MS  bound for the media poll (default 45000)
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const execFileP = promisify(execFile);
const WEB = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const REPO = resolve(WEB, '..');
const ARTIFACTS = join(WEB, 'e2e', 'artifacts');
const BIN = resolve(WEB, process.env.OPENHEARING_BIN || '../target/debug/openhearing');
const CHROMIUM = process.env.OPENHEARING_CHROMIUM || '/usr/bin/chromium';
const MEDIA_TIMEOUT_MS = Number(process.env.OPENHEARING_E2E_MEDIA_TIMEOUT_MS || 45_000);
const HEALTH_TIMEOUT_MS = 30_000;

const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--allow-loopback-in-peer-connection',
  '--disable-features=WebRtcHideLocalIpsWithMdns',
];

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Fetch with a per-request bound, so a hung server cannot hang the poll. */
async function fetchBounded(url, ms = 2000) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), ms);
  try {
    return await fetch(url, { signal: ac.signal });
  } finally {
    clearTimeout(timer);
  }
}

/** Parses the JSON object printed by `hearing create --json` (tolerates log lines around it). */
function parseJsonOutput(stdout) {
  try {
    return JSON.parse(stdout);
  } catch {
    const start = stdout.indexOf('{');
    const end = stdout.lastIndexOf('}');
    if (start < 0 || end < start) throw new Error(`no JSON in output:\n${stdout}`);
    return JSON.parse(stdout.slice(start, end + 1));
  }
}

let tmp;
let configPath;
let server;
let serverExit = null;
let browser;
let baseUrl;
const pages = []; // { role, name, id, page, logs }

before(async () => {
  assert.ok(existsSync(BIN), `server binary not found: ${BIN} (set OPENHEARING_BIN)`);
  assert.ok(existsSync(join(WEB, 'dist', 'index.html')), 'web-client/dist/ missing: run `npm run build` first');
  mkdirSync(ARTIFACTS, { recursive: true });
  tmp = mkdtempSync(join(tmpdir(), 'openhearing-e2e-'));
  const port = await freePort();
  baseUrl = `http://127.0.0.1:${port}`;
  configPath = join(tmp, 'openhearing.toml');
  writeFileSync(
    configPath,
    `[server]
listen = "127.0.0.1:${port}"
public_url = "${baseUrl}"
[server.tls]
enabled = false
[data]
dir = "${join(tmp, 'data')}"
[auth]
admin_api_key = "e2e-test-key-0123456789"
[media]
bind_address = "127.0.0.1"
udp_port_min = 41000
udp_port_max = 41999
`,
  );

  const logFd = openSync(join(ARTIFACTS, 'server.log'), 'w');
  server = spawn(BIN, ['serve', '--config', configPath], {
    cwd: REPO,
    env: {
      ...process.env,
      RUST_LOG: process.env.RUST_LOG || 'info',
      RUST_BACKTRACE: '1',
    },
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  server.on('exit', (code, signal) => {
    serverExit = { code, signal };
  });

  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  for (;;) {
    if (serverExit) throw new Error(`server exited early (${JSON.stringify(serverExit)}); see e2e/artifacts/server.log`);
    try {
      const r = await fetchBounded(`${baseUrl}/healthz`);
      if (r.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`GET /healthz not 200 within ${HEALTH_TIMEOUT_MS} ms`);
    await sleep(200);
  }

  browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
});

after(async () => {
  for (const p of pages) {
    if (p.logs.length) writeFileSync(join(ARTIFACTS, `${p.role}.console.log`), p.logs.join('\n') + '\n');
  }
  try {
    await browser?.close();
  } catch {
    /* already gone */
  }
  if (server && !serverExit) {
    server.kill('SIGTERM');
    const deadline = Date.now() + 5000;
    while (!serverExit && Date.now() < deadline) await sleep(100);
    if (!serverExit) server.kill('SIGKILL');
  }
  if (tmp) rmSync(tmp, { recursive: true, force: true });
});

/**
 * In the page: for each other participant, the largest framesDecoded / totalSamplesReceived
 * of inbound-rtp reports whose receiver is attributed to that participant. Attribution is
 * checked two independent ways: the remote SDP's msid stream id for the transceiver's mid
 * (what the server says it forwards) and the track shown in the tile's media element
 * (what the client displays). Both must name the participant.
 */
async function mediaFromOthers(page, others) {
  return page.evaluate(async (ids) => {
    const api = window.__openhearing;
    const pc = api && api.pc();
    if (!pc) return { error: 'no peer connection yet' };
    const sdp = pc.remoteDescription ? pc.remoteDescription.sdp : '';
    // mid → msid stream id, from the remote description.
    const streamOfMid = {};
    for (const section of sdp.split(/\r?\nm=/).slice(1)) {
      const mid = /\r?\na=mid:(\S+)/.exec(section);
      const msid = /\r?\na=msid:(\S+)/.exec(section) || /\r?\na=ssrc:\d+ msid:(\S+)/.exec(section);
      if (mid && msid) streamOfMid[mid[1]] = msid[1];
    }
    const out = { connectionState: pc.connectionState, participants: {}, transceivers: [] };
    for (const pid of ids) {
      const v = document.querySelector(`[data-testid="video-${pid}"]`);
      const a = document.querySelector(`[data-testid="audio-${pid}"]`);
      const tileVideo = v && v.srcObject ? v.srcObject.getVideoTracks()[0] : null;
      const tileAudio = a && a.srcObject ? a.srcObject.getAudioTracks()[0] : null;
      out.participants[pid] = { framesDecoded: 0, totalSamplesReceived: 0, videoInTile: !!tileVideo, audioInTile: !!tileAudio };
    }
    for (const tr of pc.getTransceivers()) {
      const track = tr.receiver.track;
      if (!track || !tr.mid) continue;
      const pid = streamOfMid[tr.mid];
      const entry = out.participants[pid];
      if (!entry) continue;
      const v = document.querySelector(`[data-testid="video-${pid}"]`);
      const a = document.querySelector(`[data-testid="audio-${pid}"]`);
      const el = track.kind === 'video' ? v : a;
      const shown = el && el.srcObject ? el.srcObject.getTracks().some((t) => t.id === track.id) : false;
      const stats = await tr.receiver.getStats();
      const diag = { mid: tr.mid, kind: track.kind, stream: pid, direction: tr.currentDirection, muted: track.muted, shown };
      out.transceivers.push(diag);
      stats.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        Object.assign(diag, { packetsReceived: s.packetsReceived, framesDecoded: s.framesDecoded, totalSamplesReceived: s.totalSamplesReceived, codec: s.codecId });
      });
      if (!shown) continue;
      stats.forEach((s) => {
        if (s.type !== 'inbound-rtp') return;
        if (s.kind === 'video' && track.kind === 'video') {
          entry.framesDecoded = Math.max(entry.framesDecoded, s.framesDecoded || 0);
        }
        if (s.kind === 'audio' && track.kind === 'audio') {
          entry.totalSamplesReceived = Math.max(entry.totalSamplesReceived, s.totalSamplesReceived || 0);
        }
      });
    }
    return out;
  }, others);
}

test('three participants join and receive each other\'s audio and video', { timeout: 180_000 }, async () => {
  const { stdout } = await execFileP(
    BIN,
    [
      'hearing', 'create',
      '--config', configPath,
      '--case', 'HS-123/2026',
      '--title', 'Phiên tòa thử nghiệm',
      '--participant', 'Nguyễn Văn A:presiding_judge:Phòng xử án 1',
      '--participant', 'Trần Văn B:defendant:Trại tạm giam số 1',
      '--participant', 'Lê Thị C:defence_counsel:Văn phòng luật sư',
      '--json',
    ],
    { cwd: REPO, timeout: 30_000 },
  );
  const created = parseJsonOutput(stdout);
  assert.ok(created.hearing_id, `hearing_id missing: ${stdout}`);
  assert.equal(created.participants.length, 3, stdout);

  // The SPA must be served at the join path (fallback to index.html).
  const first = created.participants[0];
  const joinPath = new URL(first.join_url).pathname;
  const html = await (await fetchBounded(`${baseUrl}${joinPath}`)).text();
  assert.match(html, /id="app"/, `GET ${joinPath} did not return the web client`);

  for (const p of created.participants) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
    const page = await context.newPage();
    const entry = { role: p.role, name: p.name, id: p.participant_id, page, logs: [] };
    page.on('console', (m) => entry.logs.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => entry.logs.push(`[pageerror] ${e.message}`));
    pages.push(entry);
    await page.goto(p.join_url, { timeout: 15_000 });
    const join = page.locator('[data-testid="join"]');
    await join.waitFor({ state: 'visible', timeout: 15_000 });
    assert.equal(await page.locator('[data-testid="prejoin-name"]').textContent(), p.name);
    // Enabled once the camera/microphone are acquired.
    await page.waitForFunction(() => !document.querySelector('[data-testid="join"]')?.disabled, null, { timeout: 15_000 });
    await join.click();
    await page.locator('[data-testid="tile-self"]').waitFor({ state: 'visible', timeout: 15_000 });
  }

  // Poll every page until it decodes video and receives audio from both others.
  const deadline = Date.now() + MEDIA_TIMEOUT_MS;
  let last = {};
  for (;;) {
    let done = true;
    for (const me of pages) {
      const others = pages.filter((o) => o !== me).map((o) => o.id);
      const r = await mediaFromOthers(me.page, others);
      last[me.role] = r;
      const ok = r.participants && others.every((id) => r.participants[id].framesDecoded > 0 && r.participants[id].totalSamplesReceived > 0);
      if (!ok) done = false;
    }
    if (done) break;
    if (Date.now() > deadline) {
      for (const me of pages) await me.page.screenshot({ path: join(ARTIFACTS, `timeout-${me.role}.png`) }).catch(() => {});
      assert.fail(`media not flowing between all participants within ${MEDIA_TIMEOUT_MS} ms:\n${JSON.stringify(last, null, 2)}`);
    }
    await sleep(500);
  }

  for (const me of pages) {
    for (const other of pages) {
      if (other === me) continue;
      assert.ok(
        await me.page.locator(`[data-testid="tile-${other.id}"]`).isVisible(),
        `${me.role} does not show a visible tile for ${other.role}`,
      );
    }
  }

  const judge = pages.find((p) => p.role === 'presiding_judge') ?? pages[0];
  await judge.page.screenshot({ path: join(ARTIFACTS, 'judge.png') });

  const lines = [];
  for (const me of pages) {
    const t = await me.page.evaluate(() => {
      const api = window.__openhearing;
      const a = api.joinedAt();
      const b = api.firstRemoteFrameAt();
      return a === null || b === null ? null : Math.round(b - a);
    });
    lines.push(`join-time-ms: ${me.role} ${t ?? 'n/a'}`);
  }
  for (const l of lines) console.log(l);
  writeFileSync(join(ARTIFACTS, 'join-times.txt'), lines.join('\n') + '\n');
});
