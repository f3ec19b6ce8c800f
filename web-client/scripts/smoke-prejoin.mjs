// Quick browser smoke check of the pre-join screen against `vite preview` (no server
// needed). Run inside a loopback-only namespace:
//   npm run build && unshare -n sh -c 'ip link set lo up; node scripts/smoke-prejoin.mjs'
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { HEARING_ID as HID, samplePayload, unsignedJwt } from './token-fixture.mjs';

const now = Math.floor(Date.now() / 1000);
const mint = (extra = {}) => unsignedJwt(samplePayload({ iat: now, exp: now + 3600, ...extra }));

const freePort = () =>
  new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });

const port = await freePort();
const preview = spawn(process.execPath, ['node_modules/vite/bin/vite.js', 'preview', '--host', '127.0.0.1', '--port', String(port), '--strictPort'], { stdio: ['ignore', 'pipe', 'inherit'] });
const base = `http://127.0.0.1:${port}`;
for (let i = 0; ; i++) {
  try {
    if ((await fetch(base)).ok) break;
  } catch {}
  if (i > 100) throw new Error('vite preview did not start');
  await new Promise((r) => setTimeout(r, 100));
}

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream', '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
});
mkdirSync('e2e/artifacts', { recursive: true });
try {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await ctx.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));

  await page.goto(`${base}/join/${HID}#token=${mint()}`);
  const tid = (id) => page.locator(`[data-testid="${id}"]`);
  assert.equal(await tid('prejoin-name').textContent(), 'Trần Văn B');
  assert.equal(await tid('prejoin-role').textContent(), 'Bị cáo');
  assert.equal(await tid('prejoin-site').textContent(), 'Trại tạm giam số 1');
  assert.match(await tid('prejoin-hearing').textContent(), /HS-123\/2026.*Phiên tòa thử nghiệm/);
  await tid('preview').waitFor();
  await page.waitForFunction(() => document.querySelector('[data-testid=preview]').videoWidth > 0, null, { timeout: 10000 });
  await page.waitForFunction(() => document.querySelector('[data-testid=camera-select]').options.length > 0, null, { timeout: 10000 });
  const cams = await tid('camera-select').locator('option').count();
  const mics = await tid('mic-select').locator('option').count();
  // Fake audio is a beep: the meter must move.
  await page.waitForFunction(() => Number(document.querySelector('[data-testid=mic-level]').getAttribute('aria-valuenow')) > 5, null, { timeout: 10000 });
  assert.ok(await tid('join').isEnabled());
  await page.screenshot({ path: 'e2e/artifacts/prejoin-vi.png' });

  await tid('lang-en').click();
  assert.equal(await tid('prejoin-role').textContent(), 'Defendant');
  assert.equal(await tid('join').textContent(), 'Join the hearing');
  await page.reload();
  assert.equal(await tid('prejoin-role').textContent(), 'Defendant', 'language persisted');
  await page.screenshot({ path: 'e2e/artifacts/prejoin-en.png' });
  await tid('lang-vi').click();

  // Switching camera re-acquires.
  if (mics > 1) {
    const second = await tid('mic-select').locator('option').nth(1).getAttribute('value');
    await tid('mic-select').selectOption(second);
    await page.waitForFunction(() => document.querySelector('[data-testid=preview]').srcObject?.getAudioTracks()[0]?.readyState === 'live', null, { timeout: 10000 });
    // The choice is remembered on this PC.
    await page.reload();
    await page.waitForFunction((v) => document.querySelector('[data-testid=mic-select]').value === v, second, { timeout: 10000 });
  }

  // Narrow screen.
  await page.setViewportSize({ width: 390, height: 800 });
  await page.screenshot({ path: 'e2e/artifacts/prejoin-narrow.png', fullPage: true });

  // Observer: no camera request.
  const obs = await ctx.newPage();
  await obs.goto(`${base}/join/${HID}#token=${mint({ role: 'observer', name: 'Người xem' })}`);
  assert.equal(await obs.locator('[data-testid=prejoin-role]').textContent(), 'Người quan sát');
  assert.equal(await obs.locator('[data-testid=preview]').count(), 0);

  // Bad links.
  for (const [url, re] of [
    [`${base}/join/${HID}`, /không có mã truy cập/],
    [`${base}/join/${HID}#token=abc.def`, /bị hỏng/],
    [`${base}/join/${HID}#token=${mint({ exp: now - 10 })}`, /hết hạn/],
    [`${base}/join/other-hearing#token=${mint()}`, /không thuộc phiên tòa này/],
  ]) {
    await obs.goto(url);
    await obs.reload();
    assert.match(await obs.locator('[data-testid=error-message]').textContent(), re, url);
  }
  console.log(`smoke ok: cameras=${cams} mics=${mics}`);
  if (logs.length) console.log(logs.join('\n'));
} finally {
  await browser.close();
  preview.kill();
}
