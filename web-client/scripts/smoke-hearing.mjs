// Hearing-screen flow check against the mock server (toy SFU): mic toggle reaches
// others, leave/rejoin, observer, "replaced", connection lost. Run after `npm run build`:
//   unshare -n sh -c 'ip link set lo up; node scripts/smoke-hearing.mjs'
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const port = await new Promise((res) => {
  const s = createServer().listen(0, '127.0.0.1', () => {
    const p = s.address().port;
    s.close(() => res(p));
  });
});
const tmp = mkdtempSync(join(tmpdir(), 'oh-smoke-'));
const cfg = join(tmp, 'c.toml');
writeFileSync(cfg, `[server]\nlisten = "127.0.0.1:${port}"\npublic_url = "http://127.0.0.1:${port}"\n[data]\ndir = "${tmp}/data"\n`);
const BIN = 'scripts/mock-openhearing';
const server = spawn(BIN, ['serve', '--config', cfg], { stdio: ['ignore', 'inherit', 'ignore'] });
for (let i = 0; ; i++) {
  try {
    if ((await fetch(`http://127.0.0.1:${port}/healthz`)).ok) break;
  } catch {}
  if (i > 150) throw new Error('mock did not start');
  await sleep(200);
}
const created = JSON.parse(
  execFileSync(BIN, ['hearing', 'create', '--config', cfg, '--case', 'HS-1/2026', '--title', 'Thử', '--participant', 'Nguyễn Văn A:presiding_judge:Phòng xử án 1', '--participant', 'Trần Văn B:defendant:Trại tạm giam số 1', '--participant', 'Phạm D:observer:Tòa án tỉnh', '--json'], { encoding: 'utf8' }),
);
const [A, B, O] = created.participants;

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--allow-loopback-in-peer-connection', '--disable-features=WebRtcHideLocalIpsWithMdns'],
});
mkdirSync('e2e/artifacts', { recursive: true });
const errors = [];
async function open(p, viewport = { width: 1280, height: 720 }) {
  const ctx = await browser.newContext({ viewport });
  const page = await ctx.newPage();
  page.on('pageerror', (e) => errors.push(`${p.role}: ${e.message}`));
  await page.goto(p.join_url);
  await page.waitForFunction(() => !document.querySelector('[data-testid=join]')?.disabled);
  await page.click('[data-testid=join]');
  return page;
}
const frames = (page, pid) =>
  page.waitForFunction((id) => document.querySelector(`[data-testid="video-${id}"]`)?.videoWidth > 0, pid, { timeout: 20000 });
const tid = (page, id) => page.locator(`[data-testid="${id}"]`);

try {
  const a = await open(A);
  const b = await open(B, { width: 390, height: 844 });
  await frames(a, B.participant_id);
  await frames(b, A.participant_id);
  await a.waitForFunction(() => document.querySelector('[data-testid=connection-status]').dataset.state === 'connected');

  // Mic toggle reaches the other side.
  await tid(b, 'toggle-mic').click();
  assert.equal(await tid(b, 'toggle-mic').getAttribute('aria-pressed'), 'true');
  await a.waitForFunction((id) => document.querySelector(`[data-testid="tile-${id}"] .state.off`) !== null, B.participant_id, { timeout: 5000 });
  await tid(b, 'toggle-mic').click();
  await b.screenshot({ path: 'e2e/artifacts/hearing-narrow.png', fullPage: true });

  // Language switch in the hearing.
  await tid(a, 'lang-en').click();
  assert.equal(await tid(a, 'connection-status').textContent(), 'Connected');
  assert.match(await tid(a, `tile-${B.participant_id}`).textContent(), /Defendant/);
  await tid(a, 'lang-vi').click();

  // Observer: no camera, controls disabled, still sees both.
  const o = await open(O);
  assert.equal(await tid(o, 'toggle-mic').isDisabled(), true);
  assert.equal(await tid(o, 'toggle-camera').isDisabled(), true);
  await frames(o, A.participant_id);
  await frames(o, B.participant_id);
  assert.ok(await tid(a, `tile-${O.participant_id}`).isVisible());

  // Leave: B sees the left screen; A sees B not connected with media blanked.
  await tid(b, 'leave').click();
  await tid(b, 'rejoin').waitFor();
  await a.waitForFunction((id) => {
    const t = document.querySelector(`[data-testid="tile-${id}"]`);
    return t.dataset.present === 'false' && document.querySelector(`[data-testid="video-${id}"]`).srcObject === null;
  }, B.participant_id, { timeout: 5000 });
  await a.screenshot({ path: 'e2e/artifacts/hearing-after-leave.png' });
  // Rejoin.
  await tid(b, 'rejoin').click();
  await frames(b, A.participant_id);
  await a.waitForFunction((id) => document.querySelector(`[data-testid="tile-${id}"]`).dataset.present === 'true', B.participant_id);
  await frames(a, B.participant_id);

  // Replaced: B joins from a second tab.
  const b2 = await open(B);
  await tid(b, 'error-message').waitFor({ timeout: 5000 });
  assert.match(await tid(b, 'error-message').textContent(), /thiết bị hoặc thẻ trình duyệt khác/);
  assert.ok(await tid(b, 'rejoin').isVisible());
  await frames(b2, A.participant_id);

  // Server gone: connection lost banner with reconnect button.
  server.kill('SIGTERM');
  await a.waitForFunction(() => ['reconnecting', 'lost'].includes(document.querySelector('[data-testid=connection-status]').dataset.state), null, { timeout: 10000 });
  assert.ok(await tid(a, 'rejoin').isVisible());
  await a.screenshot({ path: 'e2e/artifacts/hearing-lost.png' });
  assert.deepEqual(errors, []);
  console.log('hearing smoke ok');
} finally {
  await browser.close();
  server.kill('SIGKILL');
}
