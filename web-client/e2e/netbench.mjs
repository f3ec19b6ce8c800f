// Network benchmark (issue 13; `make netbench`, results in BENCHMARKS.md): each
// impaired-link scenario, OpenHearing beside a direct Chromium-to-Chromium call over the
// same link in the same run. The "site" (a defendant in a detention facility) is a
// Chromium in its own namespace behind a veth pair (netns.mjs), impaired on its
// receiving ends; the court side (the presiding judge, and the defence counsel in the
// OpenHearing case) is a Chromium beside the server.
//
// For each scenario and run: the two pages' getStats() over one window (WINDOW_S,
// default 20 s) after media flows and a warm-up (WARMUP_S, default 8 s): decoded fps,
// freezes (count, seconds), frame width and audio concealment, in both directions
// ("down": the site receives the judge; "up": the judge receives the site). The cut
// scenario instead measures, after 5 s of total cut, how long until the site decodes
// the judge again and until the frame width is back to what it was before the cut.
// Prints one JSON line per measurement and a table of medians (markdown).
//
// Beside each OpenHearing window, `why`: the server's legs by layer and what the
// publishers encode (not measured; to tell causes apart).
//
// Not a test: nothing is asserted. Run inside a namespace as root (bench/netbench.sh).
// Environment: RUNS (default 3), WINDOW_S, WARMUP_S, SCENARIOS (comma list of names
// below), OPENHEARING_BIN (the server binary; a release build for real numbers).
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ADMIN_KEY, ARTIFACTS, createHearing, openAndJoin, sleep, startHarness, waitDecodes } from './harness.mjs';
import { createSite } from './netns.mjs';

const RUNS = Number(process.env.RUNS || 3);
const WINDOW_S = Number(process.env.WINDOW_S || 20);
const WARMUP_S = Number(process.env.WARMUP_S || 8);
const CUT_S = 5;
/** How long the cut scenario waits for media and for full quality to come back. */
const RECOVER_S = 30;

const SCENARIOS = {
  clean: {},
  loss3: { lossPercent: 3 },
  loss10: { lossPercent: 10 },
  down600: { downlinkKbit: 600 },
  cut5: { cutAfterFlowing: true },
};
const chosen = (process.env.SCENARIOS || Object.keys(SCENARIOS).join(',')).split(',').filter((s) => SCENARIOS[s]);

const tid = (id) => `[data-testid="${id}"]`;

// --- the direct call: two plain pages, one RTCPeerConnection each, non-trickle ---

/** In the page: camera + microphone into a new RTCPeerConnection (window.__bench). */
async function directSetup(page) {
  await page.evaluate(async () => {
    const stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 25, max: 30 } },
    });
    const pc = new RTCPeerConnection();
    for (const t of stream.getTracks()) pc.addTrack(t, stream);
    // Played out as a page plays them (the hearing's tiles do the same), so audio is
    // decoded and its concealment counted.
    pc.ontrack = (ev) => {
      const el = document.createElement(ev.track.kind === 'audio' ? 'audio' : 'video');
      el.autoplay = true;
      el.muted = ev.track.kind === 'video';
      el.srcObject = new MediaStream([ev.track]);
      document.body.append(el);
      void el.play().catch(() => undefined);
    };
    window.__bench = { pc };
  });
}

/** Waits (in the page) for ICE gathering to complete; returns the local description. */
const gathered = () =>
  new Promise((resolve) => {
    const pc = window.__bench.pc;
    const done = () => resolve(pc.localDescription.toJSON());
    if (pc.iceGatheringState === 'complete') return done();
    pc.addEventListener('icegatheringstatechange', () => pc.iceGatheringState === 'complete' && done());
    setTimeout(done, 5000);
  });

async function directCall(court, site) {
  await directSetup(court);
  await directSetup(site);
  await court.evaluate(async () => window.__bench.pc.setLocalDescription(await window.__bench.pc.createOffer()));
  const offer = await court.evaluate(gathered);
  await site.evaluate(async (o) => {
    await window.__bench.pc.setRemoteDescription(o);
    await window.__bench.pc.setLocalDescription(await window.__bench.pc.createAnswer());
  }, offer);
  const answer = await site.evaluate(gathered);
  await court.evaluate((a) => window.__bench.pc.setRemoteDescription(a), answer);
}

/** What a direct-call page receives (one remote: the other page). */
function directCounters(page) {
  return page.evaluate(async () => {
    const c = {
      audio: { totalSamplesReceived: 0, concealedSamples: 0 },
      video: { framesDecoded: 0, freezeCount: 0, freezeSeconds: 0, frameWidth: 0 },
    };
    (await window.__bench.pc.getStats()).forEach((r) => {
      if (r.type !== 'inbound-rtp') return;
      if (r.kind === 'audio') {
        c.audio.totalSamplesReceived += r.totalSamplesReceived ?? 0;
        c.audio.concealedSamples += r.concealedSamples ?? 0;
      } else if (r.kind === 'video') {
        c.video.framesDecoded += r.framesDecoded ?? 0;
        c.video.freezeCount += r.freezeCount ?? 0;
        c.video.freezeSeconds += r.totalFreezesDuration ?? 0;
        c.video.frameWidth = Math.max(c.video.frameWidth, r.frameWidth ?? 0);
      }
    });
    return c;
  });
}

// --- OpenHearing: a hearing with the judge and counsel at court, the defendant at the site ---

async function hearing(h, siteBrowser, n) {
  const created = await createHearing(h, `NB-${n}/2026`, 'Đo đường truyền', [
    'Nguyễn Văn A:presiding_judge:Phòng xử án 1',
    'Trần Văn B:defendant:Trại tạm giam số 1',
    'Lê Thị C:defence_counsel:Văn phòng luật sư',
  ]);
  const p = Object.fromEntries(created.participants.map((x) => [x.role, x]));
  const judge = await openAndJoin(h, p.presiding_judge);
  const counsel = await openAndJoin(h, p.defence_counsel);
  const defendant = await openAndJoin(h, p.defendant, { browser: siteBrowser });
  await judge.page.locator(tid('state-open')).click({ timeout: 15_000 });
  await judge.page.locator(tid('admit-all')).click({ timeout: 15_000 });
  await defendant.page.locator(tid('lobby-screen')).waitFor({ state: 'hidden', timeout: 15_000 });
  await waitDecodes(defendant, [judge]);
  await waitDecodes(judge, [defendant]);
  return { judge, counsel, defendant };
}

/** What `who` receives from participant `from` (the client's test hook). */
async function hearingCounters(who, from) {
  const all = await who.page.evaluate(() => window.__openhearing.inbound());
  const c = all[from.id];
  return {
    audio: { totalSamplesReceived: c?.audio.totalSamplesReceived ?? 0, concealedSamples: c?.audio.concealedSamples ?? 0 },
    video: {
      framesDecoded: c?.video.framesDecoded ?? 0,
      freezeCount: c?.video.freezeCount ?? 0,
      freezeSeconds: c?.video.freezeSeconds ?? 0,
      frameWidth: c?.video.frameWidth ?? 0,
    },
  };
}

// --- measuring ---

function windowOf(a, b, seconds) {
  const samples = b.audio.totalSamplesReceived - a.audio.totalSamplesReceived;
  return {
    fps: (b.video.framesDecoded - a.video.framesDecoded) / seconds,
    freezes: b.video.freezeCount - a.video.freezeCount,
    frozenS: b.video.freezeSeconds - a.video.freezeSeconds,
    width: b.video.frameWidth,
    concealedPct: samples > 0 ? (100 * (b.audio.concealedSamples - a.audio.concealedSamples)) / samples : 100,
  };
}

/** One window of both directions: `down()` / `up()` sample the two pages; `why()`
 * (optional) what explains them, read at the end of the window. */
async function measure(down, up, why) {
  await sleep(WARMUP_S * 1000);
  const [d0, u0] = [await down(), await up()];
  await sleep(WINDOW_S * 1000);
  const [d1, u1] = [await down(), await up()];
  const r = { down: windowOf(d0, d1, WINDOW_S), up: windowOf(u0, u1, WINDOW_S) };
  return why ? { ...r, why: await why().catch((e) => ({ error: String(e.message).slice(0, 200) })) } : r;
}

/**
 * Not measured, only recorded beside each OpenHearing window, to tell causes apart:
 * the server's simulcast legs by chosen layer (`/metrics`) and what the judge's and
 * the defendant's browsers encode (layers, widths, and the encoder's
 * qualityLimitationReason: `bandwidth` is the publisher's uplink estimate, `cpu` the
 * machine).
 */
async function diagnostics(h, judge, defendant) {
  const r = await fetch(`${h.baseUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN_KEY}` }, signal: AbortSignal.timeout(5000) });
  const serverLayers = {};
  for (const m of (await r.text()).matchAll(/^openhearing_sfu_simulcast_legs\{layer="(\w+)"\} (\S+)$/gm)) serverLayers[m[1]] = Number(m[2]);
  const sends = async (who) =>
    (await who.page.evaluate(() => window.__openhearing.outbound()))
      .filter((l) => l.kind === 'video')
      .map((l) => `${l.rid ?? '-'}:${l.frameWidth ?? 0}px:${Math.round((l.targetBitrate ?? 0) / 1000)}k:${l.qualityLimitationReason ?? '?'}`)
      .join(' ');
  return { serverLayers, judgeSends: await sends(judge), defendantSends: await sends(defendant) };
}

/** Cut for CUT_S, restore; seconds until `down()` decodes again and until its width is back. */
async function cutAndRecover(site, down) {
  await sleep(WARMUP_S * 1000);
  const before = (await down()).video.frameWidth;
  await site.impair({ cut: true });
  await sleep(CUT_S * 1000);
  const frozen = await down();
  await site.restore();
  const t0 = Date.now();
  let mediaS = null;
  let fullS = null;
  let last = frozen;
  while (Date.now() - t0 < RECOVER_S * 1000 && fullS === null) {
    await sleep(250);
    const now = await down();
    const s = (Date.now() - t0) / 1000;
    if (mediaS === null && now.video.framesDecoded > last.video.framesDecoded) mediaS = s;
    if (mediaS !== null && now.video.frameWidth >= before) fullS = s;
    last = now;
  }
  return { mediaBackS: mediaS, fullQualityS: fullS, widthBefore: before, widthAfter: last.video.frameWidth };
}

const median = (xs) => {
  const v = xs.filter((x) => x !== null && Number.isFinite(x)).sort((a, b) => a - b);
  if (!v.length) return null;
  return v.length % 2 ? v[(v.length - 1) / 2] : (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
};

async function main() {
  mkdirSync(ARTIFACTS, { recursive: true });
  const site = await createSite('netbench');
  const h = await startHarness('netbench', { host: site.serverAddr });
  const siteBrowser = await site.launchBrowser();
  const results = [];
  let n = 0;
  try {
    for (const name of chosen) {
      const sc = SCENARIOS[name];
      for (let run = 1; run <= RUNS; run++) {
        for (const system of ['direct', 'openhearing']) {
          n += 1;
          const impairment = { ...sc };
          delete impairment.cutAfterFlowing;
          await site.impair(impairment);
          const contexts = [];
          try {
            let down;
            let up;
            let why;
            if (system === 'direct') {
              const court = await (await h.browser.newContext()).newPage();
              const sitePage = await (await siteBrowser.newContext()).newPage();
              contexts.push(court.context(), sitePage.context());
              await court.goto(`${h.baseUrl}/healthz`);
              await sitePage.goto(`${h.baseUrl}/healthz`);
              await directCall(court, sitePage);
              down = () => directCounters(sitePage);
              up = () => directCounters(court);
            } else {
              const { judge, counsel, defendant } = await hearing(h, siteBrowser, n);
              contexts.push(judge.page.context(), counsel.page.context(), defendant.page.context());
              down = () => hearingCounters(defendant, judge);
              up = () => hearingCounters(judge, defendant);
              why = () => diagnostics(h, judge, defendant);
            }
            const r = sc.cutAfterFlowing ? { cut: await cutAndRecover(site, down) } : await measure(down, up, why);
            const line = { scenario: name, run, system, ...r };
            results.push(line);
            console.log(JSON.stringify(line));
          } catch (e) {
            const line = { scenario: name, run, system, error: String(e.message).slice(0, 300) };
            results.push(line);
            console.log(JSON.stringify(line));
          } finally {
            for (const c of contexts) await c.close().catch(() => {});
            await site.restore();
          }
        }
      }
    }
  } finally {
    await h.stop();
    await site.stop();
  }

  const rows = ['| scenario | system | runs | site receives: fps / freezes / frozen s / width / audio concealed % | court receives: fps / freezes / frozen s / width / audio concealed % |', '|---|---|---|---|---|'];
  const f = (x, d = 1) => (x === null ? '–' : x.toFixed(d));
  for (const name of chosen) {
    for (const system of ['direct', 'openhearing']) {
      const rs = results.filter((r) => r.scenario === name && r.system === system && !r.error);
      if (SCENARIOS[name].cutAfterFlowing) {
        rows.push(`| ${name} | ${system} | ${rs.length} | media back after ${f(median(rs.map((r) => r.cut.mediaBackS)))} s, full width after ${f(median(rs.map((r) => r.cut.fullQualityS)))} s | |`);
        continue;
      }
      const cell = (dir) =>
        [median(rs.map((r) => r[dir].fps)), median(rs.map((r) => r[dir].freezes)), median(rs.map((r) => r[dir].frozenS)), median(rs.map((r) => r[dir].width)), median(rs.map((r) => r[dir].concealedPct))]
          .map((x, i) => f(x, i === 1 || i === 3 ? 0 : 1))
          .join(' / ');
      rows.push(`| ${name} | ${system} | ${rs.length} | ${cell('down')} | ${cell('up')} |`);
    }
  }
  const table = rows.join('\n');
  console.log(`\nMedians over ${RUNS} runs, ${WINDOW_S} s windows:\n\n${table}\n`);
  writeFileSync(join(ARTIFACTS, 'netbench.json'), JSON.stringify(results, null, 2));
  writeFileSync(join(ARTIFACTS, 'netbench.md'), table + '\n');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
