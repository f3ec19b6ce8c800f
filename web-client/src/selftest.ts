// The pre-join network test's arithmetic (no browser): what the page's getStats()
// samples and the server's `self_test_report` say about the path through the SFU,
// and the verdict (good / weak / failing) with its advice. The test itself runs in
// selftestRun.ts; the panel is screens/selftestPanel.ts.
import type { MessageKey } from './i18n';
import type { SelfTestReport } from './protocol';

export type Verdict = 'good' | 'weak' | 'failing';

/** One getStats() sample of the test connection (video only: the test stream). */
export interface LoopSample {
  /** ms since the test started. */
  at: number;
  /** outbound-rtp packetsSent. */
  sent: number;
  /** inbound-rtp packetsReceived of the stream that came back. */
  received: number;
  /** inbound-rtp bytesReceived. */
  bytes: number;
  /** inbound-rtp packetsLost (sequence gaps of what came back). */
  lost?: number;
  /** remote-inbound-rtp packetsLost: what the server's receiver reports say it
   * missed of the page's stream; absent until a report arrived. */
  remoteLost?: number | null;
  /** The selected candidate pair's currentRoundTripTime, in ms. */
  rttMs: number | null;
  /** Taken after the page stopped sending (just before the report, so that its
   * counters and the server's count the same packets). */
  stopped?: boolean;
  /** The browser's own bandwidth estimate towards the server (the candidate pair's
   * availableOutgoingBitrate), kbit/s. */
  estimateKbps?: number | null;
}

export interface Measurement {
  connected: boolean;
  /** Round-trip time to the server (median of the samples), ms. */
  rttMs: number | null;
  /** Share of the page's packets that did not reach the server (0..1). */
  upLoss: number | null;
  /** Share of the server's packets that did not come back (0..1). */
  downLoss: number | null;
  /** Bitrate that came back over the last seconds of the test, kbit/s. */
  kbps: number;
  /** The browser's bandwidth estimate towards the server at the end, kbit/s. A
   * camera filming a still room sends less than the link carries: the estimate
   * tells the link apart from the picture. */
  estimateKbps: number | null;
}

/**
 * Where good ends and weak begins, and weak ends and failing begins. A hearing
 * needs a picture both ways: the web client's smallest simulcast layer is 150 kbit/s,
 * its middle one 500 kbit/s (media.ts); interactive talk suffers from some 300 ms of
 * round trip on; Opus with FEC and RED hides a few per cent of loss, video far less.
 */
export const LIMITS = {
  weak: { rttMs: 300, loss: 0.03, kbps: 300 },
  failing: { rttMs: 1000, loss: 0.15, kbps: 120 },
} as const;

/** The window the achieved bitrate is taken over (the encoder ramps up first). */
export const BITRATE_WINDOW_MS = 3000;

function median(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const clamp01 = (x: number) => Math.min(1, Math.max(0, x));

/**
 * What the samples (oldest first) and the server's report add up to. Loss compares
 * the last sample's counters with the report's (the page stops sending shortly before
 * the report, so both count the same packets); the bitrate is what came back over
 * the last [`BITRATE_WINDOW_MS`] before the page stopped.
 */
export function measure(report: SelfTestReport, samples: LoopSample[]): Measurement {
  const last = samples[samples.length - 1];
  const flowing = samples.filter((s) => !s.stopped);
  const lastFlowing = flowing[flowing.length - 1];
  const video = report.tracks.find((t) => t.kind === 'video');
  const rttMs = median(samples.map((s) => s.rttMs).filter((r): r is number => r !== null));
  let upLoss: number | null = null;
  let downLoss: number | null = null;
  // Upstream: the server's receiver reports (sequence gaps) when there are any, else
  // the report's count against what the page sent. Downstream: the page's own
  // sequence gaps, else the count against what the server forwarded. Counts alone
  // read a little high: the first packets of a stream reach the server before its
  // counters start.
  if (last && typeof last.remoteLost === 'number' && last.sent > 0) {
    upLoss = clamp01(last.remoteLost / last.sent);
  } else if (last && video && last.sent > 0) {
    upLoss = clamp01(1 - video.received_packets / last.sent);
  }
  if (last && typeof last.lost === 'number' && last.received + last.lost > 0) {
    downLoss = clamp01(last.lost / (last.received + last.lost));
  } else if (last && video && video.forwarded_packets > 0) {
    downLoss = clamp01(1 - last.received / video.forwarded_packets);
  }
  let kbps = 0;
  if (lastFlowing) {
    const end = lastFlowing;
    const from = flowing.find((s) => s.at >= end.at - BITRATE_WINDOW_MS && s.at < end.at);
    if (from && end.at > from.at) kbps = ((end.bytes - from.bytes) * 8) / (end.at - from.at);
  }
  return {
    connected: report.connected && (video?.forwarded_packets ?? 0) > 0 && (last?.received ?? 0) > 0,
    rttMs: rttMs === null ? null : Math.round(rttMs),
    upLoss,
    downLoss,
    kbps: Math.max(0, Math.round(kbps)),
    estimateKbps: lastFlowing?.estimateKbps == null ? null : Math.round(lastFlowing.estimateKbps),
  };
}

export interface Judgement {
  verdict: Verdict;
  /** What the participant is told: the verdict's advice, then each reason. */
  advice: MessageKey;
  reasons: MessageKey[];
}

/** The verdict on a measurement, with its advice and the reasons for it. */
export function judge(m: Measurement): Judgement {
  if (!m.connected) {
    return { verdict: 'failing', advice: 'selftest.advice.noConnection', reasons: [] };
  }
  const loss = Math.max(m.upLoss ?? 0, m.downLoss ?? 0);
  const reasons: MessageKey[] = [];
  let verdict: Verdict = 'good';
  const grade = (bad: boolean, worse: boolean, key: MessageKey) => {
    if (!bad) return;
    reasons.push(key);
    if (worse) verdict = 'failing';
    else if (verdict === 'good') verdict = 'weak';
  };
  grade(m.rttMs !== null && m.rttMs > LIMITS.weak.rttMs, m.rttMs !== null && m.rttMs > LIMITS.failing.rttMs, 'selftest.reason.rtt');
  grade(loss > LIMITS.weak.loss, loss > LIMITS.failing.loss, 'selftest.reason.loss');
  // The link's speed: what came back, or the browser's estimate when that is more
  // (a picture with little motion sends little).
  const speed = Math.max(m.kbps, m.estimateKbps ?? 0);
  grade(speed < LIMITS.weak.kbps, speed < LIMITS.failing.kbps, 'selftest.reason.bitrate');
  const advice: MessageKey =
    verdict === 'good' ? 'selftest.advice.good' : verdict === 'weak' ? 'selftest.advice.weak' : 'selftest.advice.failing';
  return { verdict, advice, reasons };
}

/** A share as a percentage with one decimal ("1.5 %"), or a dash. */
export function percent(x: number | null): string {
  return x === null ? '—' : `${(Math.round(x * 1000) / 10).toFixed(1)} %`;
}
