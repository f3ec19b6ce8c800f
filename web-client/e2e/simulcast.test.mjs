// Browser end-to-end test of simulcast and per-subscriber layer selection (issue 13):
// the judge publishes the camera as three simulcast layers; with no cap the defendant
// decodes the judge at the top layer's resolution, and on a server that caps every
// subscriber at 300 kbit/s (`media.max_subscriber_kbps`) at a lower layer while video
// and audio keep flowing. Asserts layers and growth, never timings.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, MEDIA_TIMEOUT_MS, createHearing, openAndJoin, sleep, startHarness } from './harness.mjs';

const UI_TIMEOUT_MS = 15_000;
const tid = (id) => `[data-testid="${id}"]`;

let h = null;
after(async () => {
  await h?.stop();
});

const inbound = (who) => who.page.evaluate(() => window.__openhearing.inbound());
const outbound = (who) => who.page.evaluate(() => window.__openhearing.outbound());
const zero = { audio: { totalSamplesReceived: 0 }, video: { framesDecoded: 0, frameWidth: 0 } };

/**
 * The judge's video layers that encode now (their frame count grew since `before`, a
 * previous result's `all`), and the widest one's width.
 */
async function sentLayers(judge, before = []) {
  const all = (await outbound(judge)).filter((l) => l.kind === 'video');
  const grew = (l) => l.framesEncoded > (before.find((b) => b.rid === l.rid)?.framesEncoded ?? 0);
  const layers = all.filter(grew);
  return { all, layers, top: Math.max(0, ...layers.map((l) => l.frameWidth)) };
}

/** Starts a hearing with a judge and an admitted defendant on a server with `media`. */
async function courtroom(tag, media) {
  await h?.stop(); // an earlier test's server, if that test failed
  h = null;
  h = await startHarness(tag, { media });
  const created = await createHearing(h, `SC-${tag}/2026`, 'Phiên tòa thử simulcast', [
    'Nguyễn Văn A:presiding_judge:Phòng xử án 1',
    'Trần Văn B:defendant:Trại tạm giam số 1',
    'Lê Thị C:defence_counsel:Văn phòng luật sư',
  ]);
  const byRole = {};
  for (const p of created.participants) byRole[p.role] = p;
  const judge = await openAndJoin(h, byRole.presiding_judge);
  const defendant = await openAndJoin(h, byRole.defendant);
  // Media flows once the hearing is open and both are in the room.
  await judge.page.locator(tid('state-open')).click({ timeout: UI_TIMEOUT_MS });
  for (const p of [judge, defendant]) {
    await p.page.waitForFunction(
      () => document.querySelector('[data-testid="hearing-state"]')?.getAttribute('data-state') === 'open',
      null,
      { timeout: UI_TIMEOUT_MS },
    );
  }
  await judge.page.locator(tid(`admit-${defendant.id}`)).click({ timeout: UI_TIMEOUT_MS });
  await defendant.page.locator(tid('lobby-screen')).waitFor({ state: 'hidden', timeout: UI_TIMEOUT_MS });
  /** The counsel joins later and is admitted: every page's connection is renegotiated. */
  const counsel = async () => {
    const c = await openAndJoin(h, byRole.defence_counsel);
    await judge.page.locator(tid(`admit-${c.id}`)).click({ timeout: UI_TIMEOUT_MS });
    await c.page.locator(tid('lobby-screen')).waitFor({ state: 'hidden', timeout: UI_TIMEOUT_MS });
    return c;
  };
  return { judge, defendant, counsel };
}

/**
 * Polls until `ok(judgeVideo, top)` holds for the defendant's view of the judge while
 * the judge's video frames and audio samples grew since the previous sample.
 */
async function waitForLayer(judge, defendant, what, ok) {
  const deadline = Date.now() + MEDIA_TIMEOUT_MS;
  let prev = (await inbound(defendant))[judge.id] ?? zero;
  let sent = await sentLayers(judge);
  let seen = null;
  for (;;) {
    await sleep(1000);
    const now = (await inbound(defendant))[judge.id] ?? zero;
    sent = await sentLayers(judge, sent.all);
    seen = { sent, prev, now };
    const growing =
      now.video.framesDecoded > prev.video.framesDecoded && now.audio.totalSamplesReceived > prev.audio.totalSamplesReceived;
    if (growing && sent.layers.length >= 2 && ok(now.video.frameWidth, sent.top)) return seen;
    if (Date.now() > deadline) {
      await defendant.page.screenshot({ path: join(ARTIFACTS, `simulcast-timeout-${what}.png`) }).catch(() => {});
      assert.fail(`the defendant does not decode the judge at ${what} within ${MEDIA_TIMEOUT_MS} ms:\n${JSON.stringify(seen, null, 2)}`);
    }
    prev = now;
  }
}

test('no cap: the defendant decodes the judge at the top layer', {
  timeout: 180_000,
}, async () => {
  const { judge, defendant, counsel } = await courtroom('simulcast-free', '');
  const atTop = (width, top) => width > 0 && width === top;
  const seen = await waitForLayer(judge, defendant, 'the top layer', atTop);
  const rids = seen.sent.layers.map((l) => l.rid).sort();
  assert.ok(rids.every((r) => ['f', 'h', 'q'].includes(r)), `the judge publishes simulcast layers q/h/f: ${rids}`);
  // A participant joining renegotiates the judge's connection (it now receives the
  // counsel): the judge's layers must survive it (rid_ack.rs), for the defendant and
  // for the newcomer, who can only get the top layer if the server still has it.
  const c = await counsel();
  await waitForLayer(judge, c, 'the top layer (newcomer)', atTop);
  await waitForLayer(judge, defendant, 'the top layer (after a renegotiation)', atTop);
  await h.stop();
  h = null;
});

// `todo`: Chromium's fake camera is so cheap to encode that the full layer at the base
// frame rate can fit 300 kbit/s, which the allocator may rightly pick.
test('300 kbit/s cap: the defendant decodes the judge at a lower layer, video and audio flowing', {
  timeout: 180_000,
  todo: 'fake-camera layers are so cheap that the full layer can fit 300 kbit/s, which the allocator may rightly pick',
}, async () => {
  const { judge, defendant } = await courtroom('simulcast-capped', 'max_subscriber_kbps = 300');
  const half = (top) => Math.floor(top / 2);
  const first = await waitForLayer(judge, defendant, 'a lower layer', (width, top) => width > 0 && top > 0 && width <= half(top));
  // And it stays there: two more samples, each still low and still growing.
  let prev = first.now;
  let sent = first.sent;
  for (let i = 0; i < 2; i++) {
    await sleep(1500);
    const now = (await inbound(defendant))[judge.id] ?? zero;
    sent = await sentLayers(judge, sent.all);
    const top = sent.top;
    const diag = JSON.stringify({ top, prev, now });
    assert.ok(now.video.frameWidth > 0 && now.video.frameWidth <= half(top), `the judge's video left the lower layer: ${diag}`);
    assert.ok(now.video.framesDecoded > prev.video.framesDecoded, `the judge's frames stopped growing: ${diag}`);
    assert.ok(now.audio.totalSamplesReceived > prev.audio.totalSamplesReceived, `the judge's audio stopped: ${diag}`);
    prev = now;
  }
});

// A cap that leaves too little after the audio for any layer: the server pauses the
// judge's video for the defendant and says so (`video_paused`); the defendant's tile of
// the judge shows "Mạng yếu — tạm dừng hình ảnh" instead of a frozen frame, and audio
// keeps playing.
test('a cap below the smallest layer: the video is paused, the tile says so, audio keeps playing', { timeout: 180_000 }, async () => {
  const { judge, defendant } = await courtroom('simulcast-paused', 'max_subscriber_kbps = 90');
  const badge = defendant.page.locator(tid(`paused-${judge.id}`));
  await badge.waitFor({ state: 'visible', timeout: MEDIA_TIMEOUT_MS });
  assert.equal(await badge.textContent(), 'Mạng yếu — tạm dừng hình ảnh');
  assert.equal(await defendant.page.locator(tid(`tile-${judge.id}`)).getAttribute('data-video-paused'), 'true');
  let prev = (await inbound(defendant))[judge.id] ?? zero;
  for (let i = 0; i < 2; i++) {
    await sleep(1500);
    const now = (await inbound(defendant))[judge.id] ?? zero;
    const diag = JSON.stringify({ prev, now });
    assert.ok(now.audio.totalSamplesReceived > prev.audio.totalSamplesReceived, `the judge's audio stopped while the video is paused: ${diag}`);
    prev = now;
  }
  await h.stop();
  h = null;
});

/** The judge's recorded video segments (`<recordings>/<hearing>/<participant>/…video…webm`). */
function recordedVideo(participantId) {
  const root = join(h.tmp, 'data', 'recordings');
  const out = [];
  for (const hearing of existsSync(root) ? readdirSync(root) : []) {
    const dir = join(root, hearing, participantId);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) continue;
    for (const f of readdirSync(dir).sort()) if (f.includes('video') && f.endsWith('.webm')) out.push(join(dir, f));
  }
  return out;
}

function probe(file) {
  try {
    const out = execFileSync('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'stream=codec_name,width', '-of', 'json', file], { timeout: 10_000 });
    return JSON.parse(out.toString()).streams?.[0] ?? null;
  } catch {
    return null; // still being written
  }
}

// The archive keeps the best layer that arrives, as the publisher sent it: VP8 at the
// width of the judge's widest encoded layer, not transcoded, not the subscriber's choice.
test('a simulcast publisher is recorded at its top layer, without transcoding', { timeout: 180_000 }, async () => {
  const { judge, defendant } = await courtroom('simulcast-rec', 'max_subscriber_kbps = 300');
  await judge.page.locator(tid('state-start')).click({ timeout: UI_TIMEOUT_MS });
  await waitForLayer(judge, defendant, 'any layer', (width) => width > 0);
  const deadline = Date.now() + MEDIA_TIMEOUT_MS + 30_000;
  let seen = [];
  for (;;) {
    await sleep(2000);
    const top = (await sentLayers(judge)).top;
    seen = recordedVideo(judge.id).map((f) => ({ file: f.split('/').pop(), top, stream: probe(f) }));
    // A closed segment of the top layer: the recorder got what the judge sends best,
    // while the capped defendant gets less.
    if (top > 0 && seen.some((s) => s.stream?.codec_name === 'vp8' && s.stream.width === top)) break;
    if (Date.now() > deadline) assert.fail(`no recorded segment of the judge at the top layer: ${JSON.stringify(seen)}`);
  }
  await h.stop();
  h = null;
});
