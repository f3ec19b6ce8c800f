// Browser end-to-end test of the pre-join self-test (issue 15): on the pre-join
// screen Chromium plays the speaker test's tone and takes the participant's answer,
// then runs the network test against the real server — a loopback of its camera
// (the fake device) through the SFU, or of a canvas for an observer, who has no
// camera — and shows a verdict with the round trip, the loss and the bitrate, in
// Vietnamese and then in English. The participant never joins meanwhile.
// Real server binary + Chromium; run through e2e/run.sh.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ARTIFACTS, createHearing, startHarness } from './harness.mjs';

const UI_TIMEOUT_MS = 15_000;
/** The test runs 8 s; connecting and the report come on top, on a loaded machine. */
const TEST_TIMEOUT_MS = 45_000;

let h;
before(async () => {
  h = await startHarness('selftest');
});
after(async () => {
  await h?.stop();
});

const tid = (id) => `[data-testid="${id}"]`;

async function visible(page, selector, what, timeout = UI_TIMEOUT_MS) {
  await page
    .locator(selector)
    .first()
    .waitFor({ state: 'visible', timeout })
    .catch(async (e) => {
      await page.screenshot({ path: join(ARTIFACTS, `selftest-fail-${what}.png`) }).catch(() => {});
      throw new Error(`${what}: ${selector} not visible: ${e.message}`);
    });
}

/** The pre-join screen of `p` in a fresh context, media acquired (join enabled). */
async function prejoin(p) {
  const context = await h.browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  const entry = { tag: h.tag, role: p.role, name: p.name, id: p.participant_id, page, logs: [] };
  page.on('console', (m) => entry.logs.push(`[${m.type()}] ${m.text()}`));
  page.on('pageerror', (e) => entry.logs.push(`[pageerror] ${e.message}`));
  h.pages.push(entry);
  await page.goto(p.join_url, { timeout: UI_TIMEOUT_MS });
  await visible(page, tid('join'), `${p.role}-prejoin`);
  await page.waitForFunction(() => !document.querySelector('[data-testid="join"]')?.disabled, null, {
    timeout: UI_TIMEOUT_MS,
  });
  return { page, context };
}

/** Runs the network test on `page` and returns what the result shows. */
async function networkTest(page, what) {
  await page.locator(tid('network-test')).click();
  await visible(page, tid('network-progress'), `${what}-progress`);
  await page
    .locator(`${tid('network-result')}, ${tid('network-error')}`)
    .first()
    .waitFor({ state: 'visible', timeout: TEST_TIMEOUT_MS })
    .catch(async (e) => {
      await page.screenshot({ path: join(ARTIFACTS, `selftest-fail-${what}-result.png`) }).catch(() => {});
      throw e;
    });
  if (await page.locator(tid('network-error')).isVisible()) {
    const text = await page.locator(tid('network-error')).textContent();
    await page.screenshot({ path: join(ARTIFACTS, `selftest-fail-${what}-error.png`) }).catch(() => {});
    assert.fail(`${what}: the network test failed: ${text}`);
  }
  const result = page.locator(tid('network-result'));
  const shown = {
    verdict: await result.getAttribute('data-verdict'),
    verdictText: await page.locator(tid('network-verdict')).textContent(),
    rtt: await page.locator(tid('network-rtt')).textContent(),
    loss: await page.locator(tid('network-loss')).textContent(),
    bitrate: await page.locator(tid('network-bitrate')).textContent(),
    advice: await page.locator(tid('network-advice')).textContent(),
  };
  await page.screenshot({ path: join(ARTIFACTS, `selftest-${what}.png`) }).catch(() => {});
  console.log(`# ${what}: ${JSON.stringify(shown)}`);
  return shown;
}

test('the pre-join self-test: speaker tone, then a network verdict through the SFU', { timeout: 180_000 }, async () => {
  const created = await createHearing(h, 'HS-15/2026', 'Phiên tòa trực tuyến', [
    'Nguyễn Văn A:presiding_judge:Phòng xử án 1',
    'Trần Văn B:defendant:Trại tạm giam số 1',
    'Phạm D:observer:Tòa án tỉnh',
  ]);
  const p = Object.fromEntries(created.participants.map((x) => [x.role, x]));
  const { page } = await prejoin(p.defendant);

  // Speaker test: the tone plays, the participant says they heard it.
  await page.locator(tid('speaker-test')).click();
  await visible(page, tid('speaker-heard'), 'speaker-question');
  await page.locator(tid('speaker-heard')).click();
  await visible(page, `${tid('speaker-result')}[data-state="heard"]`, 'speaker-heard');
  assert.equal(await page.locator(tid('speaker-result')).textContent(), 'Loa hoạt động tốt.');

  // Network test with the (fake) camera: a verdict, with its figures, in Vietnamese.
  const vi = await networkTest(page, 'camera');
  assert.ok(['good', 'weak', 'failing'].includes(vi.verdict), JSON.stringify(vi));
  assert.match(vi.verdictText, /^Mạng /);
  assert.match(vi.rtt, /^\d+ ms$/, 'a round-trip time was measured');
  assert.match(vi.loss, /^\d+\.\d % \/ \d+\.\d %$/, 'loss both ways was measured');
  const kbps = Number(/^(\d+) kbit\/s/.exec(vi.bitrate)?.[1]);
  assert.ok(kbps > 0, `the stream came back through the SFU: ${vi.bitrate}`);
  const adviceVi = {
    good: 'Mạng tốt: bạn có thể tham gia phiên tòa.',
    weak: 'Mạng yếu: hãy dùng dây mạng hoặc tắt camera.',
  }[vi.verdict];
  if (adviceVi) assert.equal(vi.advice, adviceVi);
  else assert.match(vi.advice, /thư ký phiên tòa/);

  // The same result in English after switching the language.
  await page.locator(tid('lang-en')).click();
  const verdictEn = await page.locator(tid('network-verdict')).textContent();
  assert.match(verdictEn, /network/i);
  assert.match(await page.locator(tid('network-advice')).textContent(), /network|clerk/i);
  assert.match(await page.locator(tid('network-bitrate')).textContent(), /kbit\/s/);

  // The test did not join: still the pre-join screen (that the hearing never sees
  // the participant is tests/selftest.rs's).
  assert.equal(await page.locator(tid('hearing-state')).count(), 0);

  // An observer has no camera: the test stream is a canvas, and it comes back too.
  const observer = await prejoin(p.observer);
  const canvas = await networkTest(observer.page, 'canvas');
  assert.ok(['good', 'weak', 'failing'].includes(canvas.verdict), JSON.stringify(canvas));
  assert.ok(Number(/^(\d+) kbit\/s/.exec(canvas.bitrate)?.[1]) > 0, `the canvas came back: ${canvas.bitrate}`);

  // Afterwards the defendant joins as usual.
  await page.locator(tid('join')).click();
  await visible(page, tid('hearing-state'), 'joined-after-test');
});
