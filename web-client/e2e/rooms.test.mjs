// Browser end-to-end test of the private rooms (issue 4): a defendant asks for a
// consultation with their counsel, the presiding judge approves; the judge's and the
// prosecutor's pages stop receiving both members' audio and video while the two
// members decode each other; the counsel ends it and everyone decodes everyone again.
// Then a refused request, a recalled consultation, and the panel's deliberation.
// Real server binary + four Chromium participants; run through e2e/run.sh.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ARTIFACTS, MEDIA_TIMEOUT_MS, createHearingApi, inbound, of, openAndJoin, sleep, startHarness, waitDecodes } from './harness.mjs';

const UI_TIMEOUT_MS = 15_000;
/** How long a track must stay silent to count as "not received". */
const QUIET_WINDOW_MS = 3000;
const PARTY = 'Bị cáo 1';

let h;
before(async () => {
  h = await startHarness('rooms');
});
after(async () => {
  await h?.stop();
});

const tid = (id) => `[data-testid="${id}"]`;

async function shot(who, name) {
  await who.page.screenshot({ path: join(ARTIFACTS, `rooms-${name}.png`) }).catch(() => {});
}

async function click(who, id) {
  await who.page.locator(tid(id)).click({ timeout: UI_TIMEOUT_MS });
}

async function visible(who, id, ms = UI_TIMEOUT_MS) {
  await who.page.locator(tid(id)).waitFor({ state: 'visible', timeout: ms }).catch(async (e) => {
    await shot(who, `fail-${who.role}`);
    throw new Error(`${who.role}: ${id} not visible within ${ms} ms: ${e.message}`);
  });
}

async function hidden(who, id, ms = UI_TIMEOUT_MS) {
  await who.page.locator(tid(id)).waitFor({ state: 'hidden', timeout: ms }).catch(async (e) => {
    await shot(who, `fail-${who.role}`);
    throw new Error(`${who.role}: ${id} still visible after ${ms} ms: ${e.message}`);
  });
}

async function attr(who, id, name) {
  return who.page.locator(tid(id)).getAttribute(name, { timeout: UI_TIMEOUT_MS });
}

async function text(who, id) {
  return (await who.page.locator(tid(id)).textContent({ timeout: UI_TIMEOUT_MS })) ?? '';
}

async function stateIs(who, state) {
  await who.page.waitForFunction(
    (s) => document.querySelector('[data-testid="hearing-state"]')?.getAttribute('data-state') === s,
    state,
    { timeout: UI_TIMEOUT_MS },
  );
}

/** Waits (bounded) until `fn(value)` holds for the page's `__openhearing` expression. */
async function until(who, what, expr, arg, ms = UI_TIMEOUT_MS) {
  const handle = await who.page.waitForFunction(expr, arg, { timeout: ms }).catch(async (e) => {
    await shot(who, `fail-${who.role}`);
    throw new Error(`${who.role}: ${what} not within ${ms} ms: ${e.message}`);
  });
  return handle.jsonValue();
}

async function everyoneDecodesEveryone(all) {
  for (const me of all) await waitDecodes(me, all.filter((o) => o !== me));
}

/**
 * Every inbound RTP stream of `who`'s peer connection (pc.getStats(), not the client's
 * own attribution): ssrc, kind, packets, and the participant id the current remote
 * description names (a=msid) on the m-section of the receiver that gets it (null when
 * that m-section carries no msid, e.g. made inactive).
 */
function rtp(who) {
  return who.page.evaluate(async () => {
    const pc = window.__openhearing.pc();
    if (!pc) return [];
    const msidOfMid = new Map();
    for (const section of (pc.remoteDescription?.sdp ?? '').split(/\r?\nm=/).slice(1)) {
      const mid = /\r?\na=mid:(\S+)/.exec(section);
      const msid = /\r?\na=msid:(\S+)/.exec(section) ?? /\r?\na=ssrc:\d+ msid:(\S+)/.exec(section);
      if (mid) msidOfMid.set(mid[1], msid ? msid[1] : null);
    }
    const midOfTrack = new Map();
    for (const tr of pc.getTransceivers()) if (tr.receiver.track) midOfTrack.set(tr.receiver.track.id, tr.mid);
    const out = [];
    (await pc.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      const mid = r.mid ?? midOfTrack.get(r.trackIdentifier) ?? null;
      out.push({
        ssrc: r.ssrc,
        kind: r.kind,
        mid,
        owner: mid !== null ? (msidOfMid.get(mid) ?? null) : null,
        packets: r.packetsReceived ?? 0,
      });
    });
    return out;
  });
}

/**
 * Over one quiet window: which inbound streams of `who` grew, and whose they are.
 * Returns { grew: [{ owner, kind, packets }], ok, diag } where ok = every stream that
 * grew belongs to one of `allowed`, and each of `allowed` grew in audio and in video.
 */
async function window_(who, allowed) {
  const a = await rtp(who);
  await sleep(QUIET_WINDOW_MS);
  const b = await rtp(who);
  const before = new Map(a.map((r) => [r.ssrc, r.packets]));
  const grew = b
    .filter((r) => r.packets > (before.get(r.ssrc) ?? 0))
    .map((r) => ({ owner: r.owner, kind: r.kind, packets: r.packets - (before.get(r.ssrc) ?? 0) }));
  const ids = new Set(allowed.map((o) => o.id));
  const leaks = grew.filter((g) => !ids.has(g.owner));
  const missing = allowed.flatMap((o) =>
    ['audio', 'video'].filter((k) => !grew.some((g) => g.owner === o.id && g.kind === k)).map((k) => `${o.role} ${k}`),
  );
  return { ok: leaks.length === 0 && missing.length === 0, leaks, missing, diag: JSON.stringify({ a, b }) };
}

/**
 * `who` receives media from exactly `allowed` (all of them, audio and video) and from
 * nobody else, at the RTP level: waits (bounded) for the server's renegotiation to
 * settle, then asserts it over one more full window.
 */
async function receivesOnlyFrom(who, allowed, everyone) {
  const names = (list) => list.map((o) => o.role).join(', ') || 'nobody';
  const roleOf = (id) => everyone.find((o) => o.id === id)?.role ?? id;
  const deadline = Date.now() + MEDIA_TIMEOUT_MS;
  let w;
  for (;;) {
    w = await window_(who, allowed);
    if (w.ok) break;
    if (Date.now() > deadline) {
      await shot(who, `isolation-${who.role}`);
      assert.fail(
        `${who.role} should receive only from ${names(allowed)} within ${MEDIA_TIMEOUT_MS} ms; ` +
          `leaks: ${JSON.stringify(w.leaks.map((l) => ({ ...l, owner: roleOf(l.owner) })))}, missing: ${w.missing.join('; ')}\n${w.diag}`,
      );
    }
  }
  // Settled: over one more full window nothing from anyone else may arrive (strict);
  // that the allowed ones still flow is then polled (a loaded CI box may stall a
  // stream for a few seconds, which is not what this test is about).
  w = await window_(who, allowed);
  assert.equal(
    w.leaks.length,
    0,
    `${who.role}: receives from ${JSON.stringify(w.leaks.map((l) => ({ ...l, owner: roleOf(l.owner) })))}\n${w.diag}`,
  );
  if (allowed.length > 0) await waitDecodes(who, allowed);
  // And the client's own per-participant counters agree: nothing from the others grows.
  const x = await inbound(who);
  await sleep(1500);
  const y = await inbound(who);
  for (const o of everyone.filter((p) => p !== who && !allowed.includes(p))) {
    assert.ok(of(y, o.id).audio.packetsReceived <= of(x, o.id).audio.packetsReceived, `${who.role} receives ${o.role}'s audio`);
    assert.ok(of(y, o.id).video.packetsReceived <= of(x, o.id).video.packetsReceived, `${who.role} receives ${o.role}'s video`);
  }
}

/** Waits until `who`'s room notice gives `reason` (data-reason). */
async function noticeIs(who, reason) {
  await visible(who, 'room-notice');
  await who.page
    .waitForFunction((r) => document.querySelector('[data-testid="room-notice"]')?.getAttribute('data-reason') === r, reason, {
      timeout: UI_TIMEOUT_MS,
    })
    .catch(async () => {
      throw new Error(`${who.role}: room notice not ${reason}: ${await attr(who, 'room-notice', 'data-reason')}`);
    });
}

/** The running "mm:ss" of `id` on `who`'s page advances. */
async function durationRuns(who, id) {
  const first = await text(who, id);
  assert.match(first, /\d\d:\d\d/, `${who.role}: ${id} shows a duration: ${first}`);
  await who.page.waitForFunction(
    ([sel, was]) => (document.querySelector(sel)?.textContent ?? '') !== was,
    [tid(id), first],
    { timeout: 5000 },
  );
}

test('private rooms: consultation isolates its members both ways; deliberation', { timeout: 420_000 }, async () => {
  const created = await createHearingApi(h, {
    case_number: 'HS-789/2026',
    title: 'Vụ án cố ý gây thương tích',
    participants: [
      { name: 'Nguyễn Văn A', role: 'presiding_judge', site: 'Phòng xử án 1' },
      { name: 'Trần Văn B', role: 'defendant', site: 'Trại tạm giam số 1', party: PARTY },
      { name: 'Lê Thị C', role: 'defence_counsel', site: 'Văn phòng luật sư Lê C', party: PARTY },
      { name: 'Hoàng Văn E', role: 'prosecutor', site: 'Viện kiểm sát nhân dân tỉnh' },
    ],
  });
  const byRole = {};
  for (const p of created.participants) byRole[p.role] = await openAndJoin(h, p);
  const judge = byRole.presiding_judge;
  const defendant = byRole.defendant;
  const counsel = byRole.defence_counsel;
  const prosecutor = byRole.prosecutor;
  const all = [judge, defendant, counsel, prosecutor];

  // The judge opens and starts the hearing and admits everyone waiting.
  await visible(judge, 'console');
  await click(judge, 'state-open');
  for (const p of all) await stateIs(p, 'open');
  await click(judge, 'state-start');
  for (const p of all) await stateIs(p, 'in_session');
  await visible(judge, 'admit-all');
  await click(judge, 'admit-all');
  for (const p of all) await hidden(p, 'lobby-screen');
  await everyoneDecodesEveryone(all);

  // The party reaches the client; only the defendant and their counsel may ask, each
  // for the other; nobody else has a request button.
  assert.equal((await defendant.page.evaluate(() => window.__openhearing.self())).party, PARTY);
  await visible(defendant, `request-consultation-${counsel.id}`);
  await visible(counsel, `request-consultation-${defendant.id}`);
  for (const p of [judge, prosecutor]) {
    assert.equal(await p.page.locator('[data-testid^="request-consultation-"]').count(), 0, `${p.role} has no request button`);
  }
  for (const p of [defendant, counsel, prosecutor]) {
    assert.equal(await p.page.locator(tid('start-deliberation')).count(), 0, `${p.role} cannot deliberate`);
  }
  await visible(judge, 'start-deliberation');

  // 1. The defendant asks; the judge sees the request and approves.
  await click(defendant, `request-consultation-${counsel.id}`);
  const requestId = await until(
    judge,
    'the consultation request',
    () => window.__openhearing.status()?.consultation_requests?.[0]?.id ?? false,
  );
  await visible(judge, `consultation-request-${requestId}`);
  assert.match(await text(judge, 'consultation-requests'), /Trần Văn B.*Lê Thị C/);
  await defendant.page.waitForFunction(
    (id) => document.querySelector(`[data-testid="request-consultation-${id}"]`)?.getAttribute('data-pending') === 'true',
    counsel.id,
    { timeout: UI_TIMEOUT_MS },
  );
  assert.ok(await defendant.page.locator(tid(`request-consultation-${counsel.id}`)).isDisabled(), 'a pending request cannot be repeated');
  await click(judge, `approve-consultation-${requestId}`);

  // The members see that they are in a private room; the hearing room sees them away.
  for (const m of [defendant, counsel]) {
    await visible(m, 'private-room-banner');
    assert.equal(await attr(m, 'private-room-banner', 'data-kind'), 'consultation');
    assert.match(await text(m, 'private-room-banner'), /Đang trao đổi riêng — không ai khác nghe được/);
    await visible(m, 'end-consultation');
    await hidden(m, 'deliberation-banner');
  }
  const roomId = await attr(defendant, 'private-room-banner', 'data-room');
  assert.equal(await attr(counsel, 'private-room-banner', 'data-room'), roomId);
  assert.deepEqual(
    (await judge.page.evaluate(() => window.__openhearing.status().rooms)).map((r) => [r.id, r.kind, [...r.members].sort()]),
    [[roomId, 'consultation', [defendant.id, counsel.id].sort()]],
  );
  assert.equal(await judge.page.locator(tid(`consultation-request-${requestId}`)).count(), 0, 'the request is answered');
  for (const o of [judge, prosecutor]) {
    await hidden(o, 'private-room-banner');
    for (const m of [defendant, counsel]) {
      await visible(o, `away-${m.id}`);
      assert.equal(await attr(o, `away-${m.id}`, 'data-kind'), 'consultation');
      assert.match(await text(o, `away-${m.id}`), /Đang trao đổi riêng · \d\d:\d\d/);
      assert.equal(await attr(o, `tile-${m.id}`, 'data-away'), 'consultation');
    }
  }
  await visible(judge, `room-${roomId}`);
  await visible(judge, `recall-consultation-${roomId}`);
  assert.equal(await attr(judge, `participant-${defendant.id}`, 'data-room-kind'), 'consultation');
  await durationRuns(judge, `away-${defendant.id}`);
  await durationRuns(defendant, 'private-room-duration');

  // The media: the judge and the prosecutor get nothing from either member (at the RTP
  // level), the members get each other only.
  await receivesOnlyFrom(judge, [prosecutor], all);
  await receivesOnlyFrom(prosecutor, [judge], all);
  await receivesOnlyFrom(defendant, [counsel], all);
  await receivesOnlyFrom(counsel, [defendant], all);
  await waitDecodes(defendant, [counsel]);
  await waitDecodes(counsel, [defendant]);
  await shot(judge, 'judge-consultation');
  await shot(defendant, 'defendant-consultation');

  // 2. The counsel ends it: everyone is back in the room and decodes everyone again.
  await click(counsel, 'end-consultation');
  for (const m of [defendant, counsel]) {
    await hidden(m, 'private-room-banner');
    await noticeIs(m, 'ended');
  }
  for (const o of [judge, prosecutor]) for (const m of [defendant, counsel]) await hidden(o, `away-${m.id}`);
  await everyoneDecodesEveryone(all);

  // 3. A refused request: the counsel asks, the judge refuses, both are told.
  await click(defendant, 'room-notice-dismiss');
  await hidden(defendant, 'room-notice');
  await click(counsel, `request-consultation-${defendant.id}`);
  const refusedId = await until(
    judge,
    'the second request',
    () => window.__openhearing.status()?.consultation_requests?.[0]?.id ?? false,
  );
  await click(judge, `refuse-consultation-${refusedId}`);
  for (const m of [defendant, counsel]) {
    await noticeIs(m, 'refused');
    await hidden(m, 'private-room-banner');
  }
  assert.equal((await judge.page.evaluate(() => window.__openhearing.status().rooms)).length, 0);

  // 4. A recalled consultation: approved, then the judge recalls them with a notice.
  await click(defendant, `request-consultation-${counsel.id}`);
  const againId = await until(
    judge,
    'the third request',
    () => window.__openhearing.status()?.consultation_requests?.[0]?.id ?? false,
  );
  await click(judge, `approve-consultation-${againId}`);
  for (const m of [defendant, counsel]) await visible(m, 'private-room-banner');
  const room2 = await attr(counsel, 'private-room-banner', 'data-room');
  await visible(judge, `away-${counsel.id}`);
  await click(judge, `recall-consultation-${room2}`);
  for (const m of [defendant, counsel]) {
    await hidden(m, 'private-room-banner');
    await noticeIs(m, 'recalled');
    assert.match(await text(m, 'room-notice'), /Chủ tọa đã mời bạn trở lại phòng xử án/);
  }
  await hidden(judge, `away-${counsel.id}`);
  await waitDecodes(judge, [defendant, counsel]);
  await waitDecodes(defendant, [judge, prosecutor]);

  // 5. Deliberation: the judge (the only panel member here) takes the panel out; every
  // other page shows the panel deliberating and stops receiving the judge.
  await click(judge, 'start-deliberation');
  await visible(judge, 'private-room-banner');
  assert.equal(await attr(judge, 'private-room-banner', 'data-kind'), 'deliberation');
  await visible(judge, 'end-deliberation');
  await hidden(judge, 'start-deliberation');
  await hidden(judge, 'deliberation-banner');
  for (const o of [defendant, counsel, prosecutor]) {
    await visible(o, 'deliberation-banner');
    assert.match(await text(o, 'deliberation-banner'), /Hội đồng xét xử đang nghị án/);
    await visible(o, `away-${judge.id}`);
    assert.equal(await attr(o, `away-${judge.id}`, 'data-kind'), 'deliberation');
    await hidden(o, 'private-room-banner');
  }
  await durationRuns(defendant, `away-${judge.id}`);
  await receivesOnlyFrom(defendant, [counsel, prosecutor], all);
  await receivesOnlyFrom(judge, [], all);
  await shot(defendant, 'defendant-deliberation');

  // The panel returns: the banner goes, media returns.
  await click(judge, 'end-deliberation');
  await hidden(judge, 'private-room-banner');
  await visible(judge, 'start-deliberation');
  for (const o of [defendant, counsel, prosecutor]) {
    await hidden(o, 'deliberation-banner');
    await hidden(o, `away-${judge.id}`);
  }
  await everyoneDecodesEveryone(all);
  assert.equal((await judge.page.evaluate(() => window.__openhearing.status().rooms)).length, 0);
});
