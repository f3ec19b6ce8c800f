// Browser end-to-end test of loss repair (issue 13, "Retransmission" and "Audio that
// survives loss"): the defendant's Chromium in its own site namespace (netns.mjs) at
// 10 % random loss both ways, the presiding judge outside with the server.
// Over a few windows of the hearing it checks, each as growth between two samples of
// the pages' getStats():
// * audio keeps playing both ways (samples received grow) and its concealment is
//   reported (the share is printed: what the judge's words cost on this link);
// * video keeps decoding both ways;
// * RTX is on the wire both ways: the defendant's page receives retransmissions
//   (`retransmittedPacketsReceived`: the server answered its NACKs on the leg's RTX
//   SSRC) and sends them (`retransmittedPacketsSent`: the server NACKed its uplink and
//   took the repairs, unwrapped, into the judge's stream).
// Where Chromium offers RED, the defendant's audio must reach the server as RED (the
// client's `preferRed`; the server logs it once per track). Real server binary + Chromium; run through e2e/run.sh (as root).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ARTIFACTS, createHearing, openAndJoin, startHarness, waitDecodes } from './harness.mjs';
import { createSite, selectedPair } from './netns.mjs';

const UI_TIMEOUT_MS = 15_000;
/** Consecutive growth windows that count as "keeps playing" under loss. */
const WINDOWS = 6;

let site;
let h;
let siteBrowser;
before(async () => {
  site = await createSite('loss');
  h = await startHarness('loss', { host: site.serverAddr });
  siteBrowser = await site.launchBrowser();
});
after(async () => {
  await h?.stop();
  await site?.stop();
});

/**
 * The loss-related counters of a page's connection, summed over its streams:
 * `{ in: { audio, video }, out: { audio, video } }` and the audio codecs in use.
 */
function repairStats(who) {
  return who.page.evaluate(async () => {
    const pc = window.__openhearing?.pc();
    const zero = () => ({
      packets: 0,
      lost: 0,
      samples: 0,
      concealed: 0,
      fec: 0,
      frames: 0,
      nacks: 0,
      retransmitted: 0,
      freezes: 0,
    });
    const out = { in: { audio: zero(), video: zero() }, out: { audio: zero(), video: zero() }, codecs: { in: [], out: [] } };
    if (!pc) return out;
    const stats = await pc.getStats();
    stats.forEach((r) => {
      if ((r.type !== 'inbound-rtp' && r.type !== 'outbound-rtp') || (r.kind !== 'audio' && r.kind !== 'video')) return;
      const inbound = r.type === 'inbound-rtp';
      const s = (inbound ? out.in : out.out)[r.kind];
      s.packets += (inbound ? r.packetsReceived : r.packetsSent) ?? 0;
      s.lost += r.packetsLost ?? 0;
      s.samples += r.totalSamplesReceived ?? 0;
      s.concealed += r.concealedSamples ?? 0;
      s.fec += r.fecPacketsReceived ?? 0;
      s.frames += (inbound ? r.framesDecoded : r.framesEncoded) ?? 0;
      s.nacks += r.nackCount ?? 0;
      s.retransmitted += (inbound ? r.retransmittedPacketsReceived : r.retransmittedPacketsSent) ?? 0;
      s.freezes += r.freezeCount ?? 0;
      const codec = r.codecId && stats.get(r.codecId);
      const list = inbound ? out.codecs.in : out.codecs.out;
      if (r.kind === 'audio' && codec && !list.includes(codec.mimeType)) list.push(codec.mimeType);
    });
    return out;
  });
}

/** What grew between two `repairStats` samples. */
function growth(a, b) {
  const d = (x, y) => Object.fromEntries(Object.keys(y).map((k) => [k, y[k] - x[k]]));
  return {
    in: { audio: d(a.in.audio, b.in.audio), video: d(a.in.video, b.in.video) },
    out: { audio: d(a.out.audio, b.out.audio), video: d(a.out.video, b.out.video) },
  };
}

const percent = (part, whole) => (whole > 0 ? ((100 * part) / whole).toFixed(1) : 'n/a');

test('10 % loss both ways: audio keeps playing, video keeps decoding, RTX both ways', { timeout: 240_000 }, async () => {
  await site.impair({ lossPercent: 10 });
  const pages = [];
  try {
    const created = await createHearing(h, 'HS-13-3/2026', 'Phiên tòa trực tuyến qua đường truyền kém', [
      'Nguyễn Văn A:presiding_judge:Phòng xử án 1',
      'Trần Văn B:defendant:Trại tạm giam số 1',
    ]);
    const p = Object.fromEntries(created.participants.map((x) => [x.role, x]));
    const judge = await openAndJoin(h, p.presiding_judge);
    pages.push(judge);
    const defendant = await openAndJoin(h, p.defendant, { browser: siteBrowser });
    pages.push(defendant);
    await judge.page.locator('[data-testid="state-open"]').click({ timeout: UI_TIMEOUT_MS });
    await judge.page.locator('[data-testid="admit-all"]').click({ timeout: UI_TIMEOUT_MS });
    await defendant.page.locator('[data-testid="lobby-screen"]').waitFor({ state: 'hidden', timeout: UI_TIMEOUT_MS });
    await waitDecodes(defendant, [judge]);
    await waitDecodes(judge, [defendant]);

    // The defendant's media crosses the impaired veth.
    const pair = await selectedPair(defendant.page);
    assert.equal(pair?.local.address, site.siteAddr, JSON.stringify(pair));

    const start = { judge: await repairStats(judge), defendant: await repairStats(defendant) };
    for (let i = 0; i < WINDOWS; i++) {
      await waitDecodes(defendant, [judge]);
      await waitDecodes(judge, [defendant]);
    }
    const end = { judge: await repairStats(judge), defendant: await repairStats(defendant) };
    const g = { judge: growth(start.judge, end.judge), defendant: growth(start.defendant, end.defendant) };
    const diag = JSON.stringify({ growth: g, end, dropped: await site.dropped() });

    for (const who of ['judge', 'defendant']) {
      assert.ok(g[who].in.audio.samples > 0, `${who}'s audio stopped: ${diag}`);
      assert.ok(g[who].in.video.frames > 0, `${who}'s video stopped: ${diag}`);
    }
    // Concealment is reported where the loss is (the defendant's downlink).
    assert.equal(typeof end.defendant.in.audio.concealed, 'number', diag);
    // Downstream: the defendant NACKed what its lossy downlink lost and the server
    // answered with RTX.
    assert.ok(g.defendant.in.video.nacks > 0, `the defendant's page sent no NACK at 10 % loss: ${diag}`);
    assert.ok(g.defendant.in.video.retransmitted > 0, `no RTX reached the defendant's page: ${diag}`);
    // Upstream: the server NACKed the defendant's lossy uplink, the browser answered
    // with RTX, and the judge kept decoding the defendant from the repaired stream.
    assert.ok(g.defendant.out.video.nacks > 0, `the server never NACKed the defendant's uplink: ${diag}`);
    assert.ok(g.defendant.out.video.retransmitted > 0, `the defendant's page sent no RTX: ${diag}`);

    // RED: where this Chromium offers it, the client prefers it and the server sees
    // the defendant's audio arrive as RED (its log says so once per track).
    const offersRed = await defendant.page.evaluate(() =>
      RTCRtpReceiver.getCapabilities('audio').codecs.some((c) => c.mimeType.toLowerCase() === 'audio/red'),
    );
    const redTracks = readFileSync(join(ARTIFACTS, 'server-loss.log'), 'utf8').split('\n').filter((l) => l.includes('audio arrives as RED'));
    if (offersRed) assert.ok(redTracks.some((l) => l.includes(defendant.id)), `Chromium offers RED but the defendant's audio did not arrive as RED: ${diag}`);

    const dropped = await site.dropped();
    assert.ok(dropped.site.loss > 0 && dropped.server.loss > 0, `the loss rules dropped nothing: ${JSON.stringify(dropped)}`);
    const a = (who) => g[who].in.audio;
    const v = (who) => g[who].in.video;
    console.log(
      `loss: 10 % both ways over ${pair.local.protocol}, ${WINDOWS} windows: ` +
        `defendant receives audio ${percent(a('defendant').concealed, a('defendant').samples)} % concealed ` +
        `(codecs ${end.defendant.codecs.in}), video ${v('defendant').frames} frames, ${v('defendant').retransmitted} RTX packets ` +
        `for ${v('defendant').nacks} NACKs, ${v('defendant').lost} lost, ${v('defendant').freezes} freezes; ` +
        `judge receives audio ${percent(a('judge').concealed, a('judge').samples)} % concealed ` +
        `(codecs ${end.judge.codecs.in}), video ${v('judge').frames} frames, ${v('judge').lost} lost of ${v('judge').packets + v('judge').lost}, ` +
        `${v('judge').freezes} freezes; the defendant sent ${g.defendant.out.video.retransmitted} RTX packets ` +
        `for ${g.defendant.out.video.nacks} NACKs; ${redTracks.length} audio tracks arrived as RED; dropped ${JSON.stringify(dropped)}`,
    );
  } finally {
    for (const w of pages) await w.page.context().close().catch(() => {});
    await site.restore();
  }
});
