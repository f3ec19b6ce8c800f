// Browser end-to-end test of a join link opened on a second device (issue 12, item
// 3): the second browser waits and says so, the presiding judge sees the notice and
// lets it in, and the first browser is told it was replaced.
// Real server binary + Chromium; run through e2e/run.sh.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ARTIFACTS, createHearing, openAndJoin, startHarness } from './harness.mjs';

const UI_TIMEOUT_MS = 15_000;

let h;
before(async () => {
  h = await startHarness('links');
});
after(async () => {
  await h?.stop();
});

const tid = (id) => `[data-testid="${id}"]`;

async function visible(page, selector, what) {
  await page
    .locator(selector)
    .first()
    .waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS })
    .catch(async (e) => {
      await page.screenshot({ path: join(ARTIFACTS, `links-fail-${what}.png`) }).catch(() => {});
      throw new Error(`${what}: ${selector} not visible: ${e.message}`);
    });
}

test('a link opened on a second browser waits until the judge lets it in', { timeout: 120_000 }, async () => {
  const created = await createHearing(h, 'HS-12/2026', 'Phiên tòa trực tuyến', [
    'Nguyễn Văn A:presiding_judge:Phòng xử án 1',
    'Trần Văn B:defendant:Trại tạm giam số 1',
  ]);
  const p = Object.fromEntries(created.participants.map((x) => [x.role, x]));
  const pid = p.defendant.participant_id;
  const judge = await openAndJoin(h, p.presiding_judge);
  const first = await openAndJoin(h, p.defendant);

  // The same link in another browser context (another device: its own sessionStorage).
  const context = await h.browser.newContext({ viewport: { width: 1280, height: 800 } });
  const second = await context.newPage();
  await second.goto(p.defendant.join_url, { timeout: UI_TIMEOUT_MS });
  await second.waitForFunction(() => !document.querySelector('[data-testid="join"]')?.disabled, null, {
    timeout: UI_TIMEOUT_MS,
  });
  await second.locator(tid('join')).click();
  await visible(second, tid('device-waiting'), 'second-waits');

  // The judge is told, in the page's language, with the second browser named.
  const notice = `${tid('second-device-notice')}[data-participant="${pid}"]`;
  await visible(judge.page, `${notice}[data-event="waiting"]`, 'judge-notice');
  const text = await judge.page.locator(notice).textContent();
  assert.match(text, /Trần Văn B/);
  assert.match(text, /Chrome|Mozilla/, 'the browser is named');
  // The first device keeps its seat meanwhile.
  assert.equal(await first.page.locator(tid('error-message')).count(), 0);

  await judge.page.locator(tid(`second-device-admit-${pid}`)).click();
  await second.locator(tid('hearing-state')).waitFor({ state: 'visible', timeout: UI_TIMEOUT_MS });
  await second.locator(tid('device-waiting')).waitFor({ state: 'hidden', timeout: UI_TIMEOUT_MS });
  await visible(judge.page, `${notice}[data-event="replaced"]`, 'judge-replaced');
  await visible(first.page, tid('error-message'), 'first-replaced');
  await context.close();
});
