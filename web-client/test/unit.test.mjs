// Unit tests of pure logic (no browser): JWT/link parsing and i18n completeness.
// `npm run test:unit` compiles src/{jwt,i18n,protocol,court,media}.ts to build-unit/ first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { base64UrlDecode, checkToken, decodeTokenPayload, parseJoinLink, signalingUrl } from '../build-unit/jwt.js';
import { MESSAGES, LANGS, errorText, roleName, t } from '../build-unit/i18n.js';
import { ALL_ERROR_CODES, ALL_ROLES } from '../build-unit/protocol.js';
import { cameraEncodings, screenShareInit, SCREEN_MAX_FRAMERATE } from '../build-unit/media.js';
import { isScreenTrack, msidByMid } from '../build-unit/reception.js';

import { HEARING_ID as HID, b64, samplePayload, unsignedJwt } from '../scripts/token-fixture.mjs';

const payload = samplePayload();
const jwt = (p = payload) => unsignedJwt(p);

test('base64url decoding handles UTF-8 and missing padding', () => {
  assert.equal(base64UrlDecode(Buffer.from('Phiên tòa ấ').toString('base64url')), 'Phiên tòa ấ');
  assert.throws(() => base64UrlDecode('ab+c'));
  assert.throws(() => base64UrlDecode('a'));
});

test('token payload is decoded, Vietnamese intact', () => {
  const p = decodeTokenPayload(jwt());
  assert.deepEqual(p, payload);
});

test('malformed tokens are rejected', () => {
  for (const bad of ['', 'abc', 'a.b', 'a.b.c.d', `${b64({ alg: 'HS256' })}..sig`, `x.${b64(payload)}.sig`, `${b64({})}.bm90IGpzb24.sig`]) {
    assert.equal(decodeTokenPayload(bad), null, bad);
  }
  const { name, ...noName } = payload;
  assert.equal(decodeTokenPayload(jwt(noName)), null);
  assert.equal(decodeTokenPayload(jwt({ ...payload, exp: 'soon' })), null);
});

test('checkToken: missing, malformed, expired, wrong hearing, ok', () => {
  assert.deepEqual(checkToken(null, 1500), { ok: false, problem: 'missing' });
  assert.equal(checkToken('x.y', 1500).problem, 'malformed');
  assert.equal(checkToken(jwt(), 2000).problem, 'expired');
  assert.equal(checkToken(jwt(), 1500, 'other').problem, 'wrong_hearing');
  const ok = checkToken(jwt(), 1500, HID);
  assert.equal(ok.ok, true);
  assert.equal(ok.payload.name, 'Trần Văn B');
});

test('join link parsing', () => {
  assert.deepEqual(parseJoinLink(`/join/${HID}`, `#token=${jwt()}`), { hearingId: HID, token: jwt() });
  assert.deepEqual(parseJoinLink(`/join/${HID}/`, ''), { hearingId: HID, token: null });
  assert.deepEqual(parseJoinLink('/', '#token=abc'), { hearingId: null, token: 'abc' });
  assert.equal(parseJoinLink(`/join/${HID}`, '#token=').token, null);
});

test('signaling URL follows the page scheme', () => {
  assert.equal(signalingUrl('https:', 'court.example:8443', HID), `wss://court.example:8443/ws/hearings/${HID}`);
  assert.equal(signalingUrl('http:', '127.0.0.1:9000', HID), `ws://127.0.0.1:9000/ws/hearings/${HID}`);
});

test('i18n: every key exists, non-empty, in both languages with the same placeholders', () => {
  const keys = Object.keys(MESSAGES.vi);
  assert.ok(keys.length > 50);
  for (const lang of LANGS) {
    assert.deepEqual(Object.keys(MESSAGES[lang]).sort(), [...keys].sort(), lang);
    for (const k of keys) assert.ok(MESSAGES[lang][k].trim().length > 0, `${lang}:${k}`);
  }
  const ph = (s) => (s.match(/\{\w+\}/g) ?? []).sort().join(',');
  for (const k of keys) assert.equal(ph(MESSAGES.vi[k]), ph(MESSAGES.en[k]), k);
});

test('i18n: every role and error code has a text', () => {
  for (const lang of LANGS) {
    for (const r of ALL_ROLES) assert.ok(`role.${r}` in MESSAGES[lang], `${lang} role ${r}`);
    for (const c of ALL_ERROR_CODES) assert.ok(`error.${c}` in MESSAGES[lang], `${lang} error ${c}`);
  }
  assert.equal(roleName('presiding_judge', 'vi'), 'Chủ tọa phiên tòa');
  assert.equal(roleName('defence_counsel', 'en'), 'Defence counsel');
  assert.equal(roleName('king', 'vi'), 'king');
});

test('error text: known codes localized, unknown codes fall back to the server message', () => {
  assert.match(errorText('token_expired', 'exp', 'vi'), /hết hạn/);
  assert.match(errorText('replaced', '', 'en'), /another device/);
  assert.equal(errorText('brand_new_code', 'Something odd', 'en'), 'An error occurred: Something odd');
  assert.match(errorText('internal', 'db locked', 'en'), /db locked/);
  assert.equal(t('hearing.participants', { n: 3 }, 'vi'), 'Người tham gia: 3');
});

test('the camera is published as q/h/f simulcast layers, lowest resolution first', () => {
  const plain = cameraEncodings(false);
  assert.deepEqual(plain.map((e) => e.rid), ['q', 'h', 'f']);
  assert.deepEqual(plain.map((e) => e.scaleResolutionDownBy), [4, 2, 1]);
  const rates = plain.map((e) => e.maxBitrate);
  assert.ok(rates[0] < rates[1] && rates[1] < rates[2], `bitrates grow with resolution: ${rates}`);
  assert.ok(plain.every((e) => !('scalabilityMode' in e)));
  assert.ok(cameraEncodings(true).every((e) => e.scalabilityMode === 'L1T3'));
});

test('a screen share is one full-resolution, low-frame-rate encoding, L1T3 only where offered', () => {
  const vp8 = (modes) => ({ mimeType: 'video/VP8', clockRate: 90000, ...(modes ? { scalabilityModes: modes } : {}) });
  const stream = { id: 'local-screen' };
  const withL1T3 = screenShareInit({ codecs: [vp8(['L1T1', 'L1T2', 'L1T3'])], headerExtensions: [] }, stream);
  assert.equal(withL1T3.direction, 'sendonly');
  assert.deepEqual(withL1T3.streams, [stream]);
  assert.equal(withL1T3.sendEncodings.length, 1, 'one encoding, no simulcast');
  const [e] = withL1T3.sendEncodings;
  assert.equal(e.rid, undefined);
  assert.equal(e.scaleResolutionDownBy, 1, 'never scaled down');
  assert.equal(e.maxFramerate, 5);
  assert.equal(SCREEN_MAX_FRAMERATE, 5);
  assert.ok(e.maxBitrate >= 1_000_000 && e.maxBitrate <= 2_000_000, `about 1.5 Mbit/s: ${e.maxBitrate}`);
  assert.equal(e.scalabilityMode, 'L1T3');
  // A browser that lists no L1T3 for VP8 (or nothing at all) gets no scalability mode.
  for (const caps of [{ codecs: [vp8(['L1T1']), { mimeType: 'video/H264', clockRate: 90000, scalabilityModes: ['L1T3'] }], headerExtensions: [] }, { codecs: [vp8(null)], headerExtensions: [] }, null]) {
    const init = screenShareInit(caps, stream);
    assert.equal(init.sendEncodings.length, 1);
    assert.ok(!('scalabilityMode' in init.sendEncodings[0]), JSON.stringify(caps));
    assert.equal(init.sendEncodings[0].maxFramerate, 5);
    assert.equal(init.sendEncodings[0].scaleResolutionDownBy, 1);
  }
  assert.deepEqual(screenShareInit(null, undefined).streams, []);
});

test('the server offer names each mid: the publisher, and camera or screen', () => {
  const pid = '7b0c0d6e-0000-4000-8000-000000000001';
  const sdp = [
    'v=0', 'o=- 1 2 IN IP4 127.0.0.1', 's=-', 't=0 0',
    'm=audio 9 UDP/TLS/RTP/SAVPF 111', 'a=mid:0', `a=msid:${pid} audio-${pid}`,
    'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:1', `a=msid:${pid} video-${pid}`,
    'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:2', 'a=ssrc:5 cname:x', `a=ssrc:5 msid:${pid} screen-${pid}`,
    'm=video 9 UDP/TLS/RTP/SAVPF 96', 'a=mid:3', 'a=recvonly', '',
  ].join('\r\n');
  const m = msidByMid(sdp);
  assert.deepEqual(m.get('0'), { stream: pid, track: `audio-${pid}` });
  assert.equal(m.get('1').stream, pid);
  assert.ok(!isScreenTrack(m.get('1').track));
  assert.deepEqual(m.get('2'), { stream: pid, track: `screen-${pid}` });
  assert.ok(isScreenTrack(m.get('2').track));
  assert.equal(m.get('3'), undefined, 'nothing forwarded there');
  assert.ok(!isScreenTrack(null) && !isScreenTrack(undefined));
});

test('the join token leaves the address bar but survives a reload in the same tab', async () => {
  const { takeToken } = await import('../build-unit/jwt.js');
  const mem = new Map();
  const store = { getItem: (k) => mem.get(k) ?? null, setItem: (k, v) => mem.set(k, v) };
  const id = '67e55044-10b1-426f-9247-bb680e5fe0c8';
  assert.equal(takeToken({ hearingId: id, token: 'a.b.c' }, store), 'a.b.c');
  // Reloaded without the fragment: the tab's remembered token.
  assert.equal(takeToken({ hearingId: id, token: null }, store), 'a.b.c');
  // Another hearing's page gets nothing of it.
  assert.equal(takeToken({ hearingId: 'other', token: null }, store), null);
  // A refusing storage (private mode) still lets this load join.
  const refusing = { getItem: () => { throw new Error('denied'); }, setItem: () => { throw new Error('denied'); } };
  assert.equal(takeToken({ hearingId: id, token: 'x.y.z' }, refusing), 'x.y.z');
  assert.equal(takeToken({ hearingId: id, token: null }, refusing), null);
});

test('link quality is graded from one window of inbound counters', async () => {
  const { emptyCounters, grade } = await import('../build-unit/reception.js');
  const both = { audio: true, video: true };
  const at = (audioPackets, videoPackets, lost, frames, frozen = 0, concealed = 0) => {
    const c = emptyCounters();
    c.audio.packetsReceived = audioPackets;
    c.audio.totalSamplesReceived = audioPackets * 960;
    c.audio.concealedSamples = concealed;
    c.video.packetsReceived = videoPackets;
    c.video.packetsLost = lost;
    c.video.framesDecoded = frames;
    c.video.freezeSeconds = frozen;
    return c;
  };
  const start = at(1000, 5000, 10, 600);
  // 2 s: 100 audio and 400 video packets, 40 frames: 20 fps, clean.
  assert.equal(grade(start, at(1100, 5400, 10, 640), 2, both).quality, 'good');
  // 5 % of packets lost: unsteady.
  const fair = grade(start, at(1100, 5400, 36, 640), 2, both);
  assert.equal(fair.quality, 'fair');
  assert.equal(Math.round(fair.lossPercent), 5);
  // 3 fps: weak, whatever the loss.
  assert.equal(grade(start, at(1100, 5400, 10, 606), 2, both).quality, 'poor');
  // A second frozen: weak.
  assert.equal(grade(start, at(1100, 5400, 10, 640, 1.2), 2, both).quality, 'poor');
  // Nothing arrived although the camera is on: none; a camera that is off is not counted.
  assert.equal(grade(start, at(1100, 5000, 10, 600), 2, both).quality, 'none');
  assert.equal(grade(start, at(1100, 5000, 10, 600), 2, { audio: true, video: false }).quality, 'good');
  // Counters that went backwards (a new receiver) never give negative figures.
  const reset = grade(start, at(50, 100, 0, 5), 2, both);
  assert.equal(reset.lossPercent, 0);
  assert.equal(reset.quality, 'none');
});

test('every link-quality text exists in both languages', () => {
  for (const lang of LANGS) {
    for (const key of ['link.good', 'link.fair', 'link.poor', 'link.none', 'link.detail', 'link.fps']) {
      assert.ok(MESSAGES[lang][key], `${lang}: ${key}`);
    }
  }
});

// ---------------------------------------------------------------- pre-join self-test

import { judge, LIMITS, measure, percent } from '../build-unit/selftest.js';

const report = (received, forwarded, connected = true) => ({
  duration_ms: 8000,
  connected,
  connect_ms: 300,
  tracks: [{ kind: 'video', received_packets: received, forwarded_packets: forwarded, dropped_packets: 0 }],
});
/** Samples every 500 ms over 8 s at `kbps`, `sent`/`received` packets at the end. */
const samples = (kbps, sent, received, rttMs = 20) =>
  Array.from({ length: 17 }, (_, i) => ({
    at: i * 500,
    sent: Math.round((sent * i) / 16),
    received: Math.round((received * i) / 16),
    bytes: (kbps * 1000 * (i * 500)) / 8000,
    rttMs,
  }));

test('self-test: the loss of each half of the loop and the bitrate of the last seconds', () => {
  const m = measure(report(970, 960), samples(1200, 1000, 912));
  assert.equal(m.connected, true);
  assert.equal(m.rttMs, 20);
  assert.ok(Math.abs(m.upLoss - 0.03) < 1e-9, String(m.upLoss));
  assert.ok(Math.abs(m.downLoss - 0.05) < 1e-9, String(m.downLoss));
  assert.equal(m.kbps, 1200);
  assert.equal(percent(m.downLoss), '5.0 %');
  assert.equal(percent(null), '—');
  // Samples after the page stopped sending count for loss, not for the bitrate.
  const flowing = samples(1200, 1000, 900);
  const end = flowing[flowing.length - 1];
  const stopped = [...flowing, { ...end, at: end.at + 500, received: 912, bytes: end.bytes + 10, stopped: true }];
  const s = measure(report(970, 960), stopped);
  assert.equal(s.kbps, 1200);
  assert.ok(Math.abs(s.downLoss - 0.05) < 1e-9, String(s.downLoss));
  // Sequence gaps, where the browser has them, win over the counts.
  const gaps = [...flowing.slice(0, -1), { ...end, sent: 1000, received: 990, lost: 10, remoteLost: 20 }];
  const g = measure(report(900, 800), gaps);
  assert.ok(Math.abs(g.upLoss - 0.02) < 1e-9, String(g.upLoss));
  assert.ok(Math.abs(g.downLoss - 0.01) < 1e-9, String(g.downLoss));
});

test('self-test verdicts: good, weak and failing, with the reasons', () => {
  const good = judge({ connected: true, rttMs: 40, upLoss: 0, downLoss: 0.01, kbps: 1500, estimateKbps: null });
  // Little came back but the link carries more (a still picture): not weak for that.
  assert.equal(judge({ connected: true, rttMs: 40, upLoss: 0, downLoss: 0, kbps: 200, estimateKbps: 2000 }).verdict, 'good');
  assert.deepEqual(good, { verdict: 'good', advice: 'selftest.advice.good', reasons: [] });
  const weak = judge({ connected: true, rttMs: 40, upLoss: 0.05, downLoss: 0, kbps: 1500 });
  assert.equal(weak.verdict, 'weak');
  assert.equal(weak.advice, 'selftest.advice.weak');
  assert.deepEqual(weak.reasons, ['selftest.reason.loss']);
  assert.equal(judge({ connected: true, rttMs: LIMITS.weak.rttMs + 1, upLoss: 0, downLoss: 0, kbps: 900 }).verdict, 'weak');
  const failing = judge({ connected: true, rttMs: 1200, upLoss: 0, downLoss: 0, kbps: LIMITS.weak.kbps - 1 });
  assert.equal(failing.verdict, 'failing');
  assert.deepEqual(failing.reasons, ['selftest.reason.rtt', 'selftest.reason.bitrate']);
  assert.equal(judge({ connected: true, rttMs: 40, upLoss: 0, downLoss: 0, kbps: 50 }).verdict, 'failing');
  // Nothing came back: failing, whatever else was measured.
  const none = judge(measure(report(0, 0, false), []));
  assert.deepEqual(none, { verdict: 'failing', advice: 'selftest.advice.noConnection', reasons: [] });
  const connectedButNothingBack = measure(report(500, 0), samples(0, 600, 0));
  assert.equal(connectedButNothingBack.connected, false);
});

test('self-test advice exists in both languages', () => {
  for (const lang of LANGS) {
    for (const k of ['selftest.advice.good', 'selftest.advice.weak', 'selftest.advice.failing', 'selftest.advice.noConnection', 'selftest.verdict.good', 'selftest.verdict.weak', 'selftest.verdict.failing']) {
      assert.ok(MESSAGES[lang][k], `${lang} ${k}`);
    }
  }
  assert.equal(MESSAGES.vi['selftest.advice.weak'], 'Mạng yếu: hãy dùng dây mạng hoặc tắt camera.');
});
