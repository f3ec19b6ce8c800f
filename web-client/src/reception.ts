// What this page receives from each remote participant, from the connection's
// getStats(), and how good that is: the link-quality dot on each tile, the test
// hooks' inbound counters, and (later) the media report the server asks for. And the
// other way: how well this page's own media reaches the server (the self view's
// uplink dot), from the server's receiver reports (`remote-inbound-rtp`) and the
// encoder's own `qualityLimitationReason`.
//
// A receiver is attributed to the participant whose id is the `a=msid` stream id of
// its transceiver's m-section in the current remote description (what the server
// says it forwards on that mid). Counters are summed per participant and kind;
// quality is graded from the change between two samples (a window of ~2 s), so an
// old burst of loss does not colour the tile for the rest of the hearing.

/** Cumulative inbound counters of one remote participant. */
export interface InboundCounters {
  audio: { packetsReceived: number; packetsLost: number; totalSamplesReceived: number; concealedSamples: number; bytesReceived: number };
  video: { packetsReceived: number; packetsLost: number; framesDecoded: number; freezeSeconds: number; freezeCount: number; bytesReceived: number;
    /** The width of the frames decoded last (0 before the first). */
    frameWidth: number };
}

/** `good`: clean; `fair`: some loss or a low frame rate; `poor`: heavy loss or
 * frozen; `none`: nothing arrived in the window although something should have. */
export type Quality = 'good' | 'fair' | 'poor' | 'none';

/** One window's figures and their grade. */
export interface Grade {
  quality: Quality;
  /** Packets lost in the window, in % of those expected (audio and video together). */
  lossPercent: number;
  /** Video frames decoded per second in the window (null: no video expected). */
  fps: number | null;
  /** Audio samples concealed in the window, in % of those received (null: no audio expected). */
  concealedPercent: number | null;
}

export function emptyCounters(): InboundCounters {
  return {
    audio: { packetsReceived: 0, packetsLost: 0, totalSamplesReceived: 0, concealedSamples: 0, bytesReceived: 0 },
    video: { packetsReceived: 0, packetsLost: 0, framesDecoded: 0, freezeSeconds: 0, freezeCount: 0, bytesReceived: 0, frameWidth: 0 },
  };
}

/** What the server says it forwards on each mid of `sdp` (its offer): the `a=msid`
 * stream id (the publisher's participant id) and track id (`audio-<id>`, `video-<id>`
 * for the camera, `screen-<id>` for a screen share: src/sfu/peer.rs). */
export function msidByMid(sdp: string): Map<string, { stream: string; track: string | null }> {
  const out = new Map<string, { stream: string; track: string | null }>();
  for (const section of sdp.split(/\r?\nm=/).slice(1)) {
    const mid = /\r?\na=mid:(\S+)/.exec(section);
    const msid = /\r?\na=msid:(\S+)(?: (\S+))?/.exec(section) ?? /\r?\na=ssrc:\d+ msid:(\S+)(?: (\S+))?/.exec(section);
    if (mid && msid) out.set(mid[1], { stream: msid[1], track: msid[2] ?? null });
  }
  return out;
}

/** Whether the server's track id names a screen share (`screen-<participant id>`). */
export function isScreenTrack(trackId: string | null | undefined): boolean {
  return !!trackId && trackId.startsWith('screen-');
}

/** Inbound counters per remote participant id (own media excluded). */
export async function sampleInbound(pc: RTCPeerConnection, selfId: string | null): Promise<Record<string, InboundCounters>> {
  const out: Record<string, InboundCounters> = {};
  const streamOfMid = msidByMid(pc.remoteDescription?.sdp ?? '');
  for (const tr of pc.getTransceivers()) {
    const pid = tr.mid ? streamOfMid.get(tr.mid)?.stream : undefined;
    if (!pid || pid === selfId) continue;
    const c = (out[pid] ??= emptyCounters());
    const stats = await tr.receiver.getStats();
    stats.forEach((r: { type: string; kind?: string; [k: string]: unknown }) => {
      if (r.type !== 'inbound-rtp') return;
      const n = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : 0);
      if (r.kind === 'audio') {
        // Originals only: Chrome counts repairs (RTX) in packetsReceived too, and the
        // server compares this with the packets it forwarded (a probe or an answered NACK
        // is a second copy of one of those).
        c.audio.packetsReceived += Math.max(0, n('packetsReceived') - n('retransmittedPacketsReceived'));
        c.audio.packetsLost += Math.max(0, n('packetsLost'));
        c.audio.totalSamplesReceived += n('totalSamplesReceived');
        c.audio.concealedSamples += n('concealedSamples');
        c.audio.bytesReceived += n('bytesReceived');
      } else if (r.kind === 'video') {
        c.video.packetsReceived += Math.max(0, n('packetsReceived') - n('retransmittedPacketsReceived'));
        c.video.packetsLost += Math.max(0, n('packetsLost'));
        c.video.framesDecoded += n('framesDecoded');
        c.video.freezeSeconds += n('totalFreezesDuration');
        c.video.freezeCount += n('freezeCount');
        c.video.bytesReceived += n('bytesReceived');
        c.video.frameWidth = Math.max(c.video.frameWidth, n('frameWidth'));
      }
    });
  }
  return out;
}

/** What should be arriving from a participant: what they send and the server lets
 * through to this page. */
export interface Expected {
  audio: boolean;
  video: boolean;
}

/**
 * Grades the window between `prev` and `cur` (`seconds` apart). Thresholds: loss
 * under 2 %, ≥ 10 fps, no freeze and under 5 % concealment is good; loss under 10 %,
 * ≥ 4 fps and under 1 s frozen is fair; anything worse is poor; no packet at all of
 * an expected kind is none. Nothing expected grades good (a muted microphone is not
 * a bad link).
 */
export function grade(prev: InboundCounters, cur: InboundCounters, seconds: number, expected: Expected): Grade {
  const d = (a: number, b: number) => Math.max(0, a - b);
  const audioPackets = d(cur.audio.packetsReceived, prev.audio.packetsReceived);
  const videoPackets = d(cur.video.packetsReceived, prev.video.packetsReceived);
  const lost = d(cur.audio.packetsLost, prev.audio.packetsLost) + d(cur.video.packetsLost, prev.video.packetsLost);
  const received = (expected.audio ? audioPackets : 0) + (expected.video ? videoPackets : 0);
  const lossPercent = received + lost > 0 ? (100 * lost) / (received + lost) : 0;
  const fps = expected.video ? d(cur.video.framesDecoded, prev.video.framesDecoded) / Math.max(seconds, 0.001) : null;
  const frozen = d(cur.video.freezeSeconds, prev.video.freezeSeconds);
  const samples = d(cur.audio.totalSamplesReceived, prev.audio.totalSamplesReceived);
  const concealedPercent = expected.audio
    ? samples > 0
      ? (100 * d(cur.audio.concealedSamples, prev.audio.concealedSamples)) / samples
      : 100
    : null;
  let quality: Quality = 'good';
  if ((expected.audio && audioPackets === 0) || (expected.video && videoPackets === 0)) {
    quality = 'none';
  } else if (lossPercent >= 10 || (fps !== null && fps < 4) || frozen >= 1 || (concealedPercent ?? 0) >= 20) {
    quality = 'poor';
  } else if (lossPercent >= 2 || (fps !== null && fps < 10) || frozen > 0 || (concealedPercent ?? 0) >= 5) {
    quality = 'fair';
  }
  return { quality, lossPercent, fps, concealedPercent };
}

/** Cumulative outbound counters of this page (all its senders together). */
export interface OutboundCounters {
  packetsSent: number;
  /** Packets the server reported lost (`remote-inbound-rtp.packetsLost`). */
  packetsLost: number;
  /** The latest round-trip time the server's reports gave, in seconds (null: none yet). */
  roundTripTime: number | null;
  /** Why the encoder holds back (`bandwidth`, `cpu`, `other`, `none`), the worst of the senders. */
  limitation: string;
}

/** One window's uplink figures and their grade. */
export interface UplinkGrade {
  quality: Quality;
  lossPercent: number;
  rttMs: number | null;
  limitation: string;
}

export function emptyOutbound(): OutboundCounters {
  return { packetsSent: 0, packetsLost: 0, roundTripTime: null, limitation: 'none' };
}

const LIMITATION_RANK: Record<string, number> = { none: 0, other: 1, cpu: 2, bandwidth: 3 };

/** This page's outbound counters, summed over the senders that carry a track. */
export async function sampleOutbound(pc: RTCPeerConnection): Promise<OutboundCounters> {
  const out = emptyOutbound();
  for (const sender of pc.getSenders()) {
    if (!sender.track) continue;
    const stats = await sender.getStats();
    stats.forEach((r: { type: string; [k: string]: unknown }) => {
      const n = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : 0);
      if (r.type === 'outbound-rtp') {
        out.packetsSent += n('packetsSent');
        const why = typeof r.qualityLimitationReason === 'string' ? r.qualityLimitationReason : 'none';
        if ((LIMITATION_RANK[why] ?? 1) > (LIMITATION_RANK[out.limitation] ?? 0)) out.limitation = why;
      } else if (r.type === 'remote-inbound-rtp') {
        out.packetsLost += Math.max(0, n('packetsLost'));
        if (typeof r.roundTripTime === 'number') out.roundTripTime = Math.max(out.roundTripTime ?? 0, r.roundTripTime);
      }
    });
  }
  return out;
}

/**
 * Grades this page's uplink between two samples. Thresholds as for the downlink where
 * they compare: loss under 2 %, a round trip under 400 ms and an encoder not held
 * back by bandwidth is good; loss under 10 % and a round trip under 1 s is fair;
 * worse is poor; nothing sent although this page publishes is none.
 */
export function gradeUplink(prev: OutboundCounters, cur: OutboundCounters): UplinkGrade {
  const sent = Math.max(0, cur.packetsSent - prev.packetsSent);
  const lost = Math.max(0, cur.packetsLost - prev.packetsLost);
  const lossPercent = sent + lost > 0 ? (100 * lost) / (sent + lost) : 0;
  const rttMs = cur.roundTripTime === null ? null : cur.roundTripTime * 1000;
  let quality: Quality = 'good';
  if (sent === 0) quality = 'none';
  else if (lossPercent >= 10 || (rttMs ?? 0) >= 1000) quality = 'poor';
  else if (lossPercent >= 2 || (rttMs ?? 0) >= 400 || cur.limitation === 'bandwidth') quality = 'fair';
  return { quality, lossPercent, rttMs, limitation: cur.limitation };
}
