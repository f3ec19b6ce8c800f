// Shared harness of the browser e2e tests: the real server binary in a temporary
// directory, a hearing created through its CLI, one Chromium context per participant.
// Run through e2e/run.sh (loopback-only network namespace); see README.md.
//
// Env:
//   OPENHEARING_BIN        server binary (default ../target/debug/openhearing, relative to web-client/)
//   OPENHEARING_CHROMIUM   Chromium executable (default /usr/bin/chromium)
//   OPENHEARING_E2E_MEDIA_TIMEOUT_MS  bound for media polls (default 45000)
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
export const WEB = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO = resolve(WEB, '..');
export const ARTIFACTS = join(WEB, 'e2e', 'artifacts');
export const BIN = resolve(WEB, process.env.OPENHEARING_BIN || '../target/debug/openhearing');
export const CHROMIUM = process.env.OPENHEARING_CHROMIUM || '/usr/bin/chromium';
export const MEDIA_TIMEOUT_MS = Number(process.env.OPENHEARING_E2E_MEDIA_TIMEOUT_MS || 45_000);
const HEALTH_TIMEOUT_MS = 30_000;
/** The admin key of the harness's server config (test-only). */
export const ADMIN_KEY = 'e2e-test-key-0123456789abcdef012345';

export const CHROMIUM_ARGS = [
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

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort(host) {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

/** Fetch with a per-request bound, so a hung server cannot hang the poll. */
export async function fetchBounded(url, ms = 2000) {
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

/**
 * Starts the server (plain HTTP on a free port of `host`, media bound to `host` too) and
 * Chromium. `tag` names the artifacts (`server-<tag>.log`, `<tag>-<role>.console.log`);
 * `media` is extra TOML lines for the server's `[media]` table.
 * `host` is 127.0.0.1 unless a test needs the server where another namespace reaches it
 * (netns.mjs). The config sets no ICE keys: ICE runs on the server's defaults. Call
 * `stop()` in `after`.
 */
export async function startHarness(tag, { host = '127.0.0.1', media = '' } = {}) {
  assert.ok(existsSync(BIN), `server binary not found: ${BIN} (set OPENHEARING_BIN)`);
  assert.ok(existsSync(join(WEB, 'dist', 'index.html')), 'web-client/dist/ missing: run `npm run build` first');
  mkdirSync(ARTIFACTS, { recursive: true });
  const tmp = mkdtempSync(join(tmpdir(), `openhearing-e2e-${tag}-`));
  const port = await freePort(host);
  const baseUrl = `http://${host}:${port}`;
  const configPath = join(tmp, 'openhearing.toml');
  writeFileSync(
    configPath,
    `[server]
listen = "${host}:${port}"
public_url = "${baseUrl}"
[server.tls]
enabled = false
[data]
dir = "${join(tmp, 'data')}"
[auth]
admin_api_key = "${ADMIN_KEY}"
[media]
bind_address = "${host}"
udp_port_min = 41000
udp_port_max = 41999
${media}
`,
  );
  const logFd = openSync(join(ARTIFACTS, `server-${tag}.log`), 'w');
  const server = spawn(BIN, ['serve', '--config', configPath], {
    cwd: REPO,
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG || 'info', RUST_BACKTRACE: '1' },
    stdio: ['ignore', logFd, logFd],
  });
  closeSync(logFd);
  let serverExit = null;
  server.on('exit', (code, signal) => {
    serverExit = { code, signal };
  });
  const h = {
    tag,
    tmp,
    baseUrl,
    configPath,
    server,
    browser: null,
    pages: [], // { role, name, id, page, logs }
    serverExit: () => serverExit,
    async stop() {
      for (const p of h.pages) {
        if (p.logs.length) writeFileSync(join(ARTIFACTS, `${tag}-${p.role}.console.log`), p.logs.join('\n') + '\n');
      }
      try {
        await h.browser?.close();
      } catch {
        /* already gone */
      }
      if (!serverExit) {
        server.kill('SIGTERM');
        const deadline = Date.now() + 5000;
        while (!serverExit && Date.now() < deadline) await sleep(100);
        if (!serverExit) server.kill('SIGKILL');
      }
      rmSync(tmp, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + HEALTH_TIMEOUT_MS;
  for (;;) {
    if (serverExit) throw new Error(`server exited early (${JSON.stringify(serverExit)}); see e2e/artifacts/server-${tag}.log`);
    try {
      const r = await fetchBounded(`${baseUrl}/healthz`);
      if (r.status === 200) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) throw new Error(`GET /healthz not 200 within ${HEALTH_TIMEOUT_MS} ms`);
    await sleep(200);
  }
  h.browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, timeout: 30_000 });
  return h;
}

/** `hearing create` through the CLI; `participants` as "Name:role:Site". */
export async function createHearing(h, caseNumber, title, participants) {
  const args = ['hearing', 'create', '--config', h.configPath, '--case', caseNumber, '--title', title];
  for (const p of participants) args.push('--participant', p);
  args.push('--json');
  const { stdout } = await execFileP(BIN, args, { cwd: REPO, timeout: 30_000 });
  const created = parseJsonOutput(stdout);
  assert.ok(created.hearing_id, `hearing_id missing: ${stdout}`);
  assert.equal(created.participants.length, participants.length, stdout);
  return created;
}

/**
 * `POST /api/v1/hearings` through the admin HTTP API (the CLI has no `--party`), e.g.
 * participants `[{ name, role, site, party? }]`. Answers like `hearing create --json`:
 * `{ hearing_id, participants: [{ participant_id, name, role, site, join_url }] }`.
 */
export async function createHearingApi(h, body) {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(), 15_000);
  let r;
  try {
    r = await fetch(`${h.baseUrl}/api/v1/hearings`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: ac.signal,
    });
  } finally {
    clearTimeout(timer);
  }
  const text = await r.text();
  assert.equal(r.status, 201, `POST /api/v1/hearings: ${r.status} ${text}`);
  const created = JSON.parse(text);
  assert.ok(created.hearing_id, `hearing_id missing: ${text}`);
  assert.equal(created.participants.length, body.participants.length, text);
  return created;
}

/**
 * Opens a participant's join link in a fresh browser context and clicks `join`; in
 * `browser` when given (e.g. one in another network namespace), else the harness's.
 * `query` is added to the link's query string (e.g. `simulcast=1`).
 */
export async function openAndJoin(h, p, { browser = h.browser, query = '' } = {}) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const entry = { tag: h.tag, role: p.role, name: p.name, id: p.participant_id, page, logs: [] };
  page.on('console', (m) => entry.logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => entry.logs.push(`[pageerror] ${e.message}`));
  h.pages.push(entry);
  const url = new URL(p.join_url);
  for (const [k, v] of new URLSearchParams(query)) url.searchParams.set(k, v);
  await page.goto(url.toString(), { timeout: 15_000 });
  const join = page.locator('[data-testid="join"]');
  await join.waitFor({ state: 'visible', timeout: 15_000 });
  assert.equal(await page.locator('[data-testid="prejoin-name"]').textContent(), p.name);
  // Enabled once the camera/microphone are acquired.
  await page.waitForFunction(() => !document.querySelector('[data-testid="join"]')?.disabled, null, { timeout: 15_000 });
  await join.click();
  // Every participant, lobby included, sees the hearing's state once welcomed.
  await page.locator('[data-testid="hearing-state"]').waitFor({ state: 'visible', timeout: 15_000 });
  return entry;
}

/** Per remote participant inbound counters of `who`'s page, from the client's test hook. */
export function inbound(who) {
  return who.page.evaluate(() => window.__openhearing.inbound());
}

const ZERO = { audio: { packetsReceived: 0, totalSamplesReceived: 0 }, video: { packetsReceived: 0, framesDecoded: 0 } };
/** The counters of participant `id` in an `inbound()` sample (zeros when absent). */
export const of = (stats, id) => stats[id] ?? ZERO;

/**
 * Waits (≤ `ms`) until `who` decodes video and receives audio from each of `from`, both
 * counters growing between two samples (flowing now, not just earlier). Returns the
 * last sample; on a timeout saves `<tag>-timeout-<role>.png` and fails with both samples.
 */
export async function waitDecodes(who, from, ms = MEDIA_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  let first = await inbound(who);
  for (;;) {
    await sleep(700);
    const last = await inbound(who);
    const ok = from.every((o) => {
      const a = of(first, o.id);
      const b = of(last, o.id);
      return b.video.framesDecoded > a.video.framesDecoded && b.audio.totalSamplesReceived > a.audio.totalSamplesReceived;
    });
    if (ok) return last;
    if (Date.now() > deadline) {
      await who.page.screenshot({ path: join(ARTIFACTS, `${who.tag}-timeout-${who.role}.png`) }).catch(() => {});
      assert.fail(`${who.role} does not decode ${from.map((o) => o.role).join(', ')} within ${ms} ms:\n${JSON.stringify({ first, last }, null, 2)}`);
    }
    // Compare against a recent sample so that "grew" means "grows now".
    first = last;
  }
}
