// `window.__openhearing`: the test hooks through which the browser e2e tests read the
// page (README.md, "Test hooks"): shallow copies of state.ts's data, and the inbound
// RTP counters per remote participant, attributed through the current remote
// description (what the server says it forwards). They read; they never change state.
import { roomOf } from './court';
import type { Action, HearingStatus, ParticipantInfo, RoomInfo } from './protocol';
import { sampleInbound, type InboundCounters } from './reception';
import { selfId, state } from './state';

/** One encoding this page sends (a simulcast layer, or the only one). */
interface OutboundLayer {
  kind: string;
  rid: string | null;
  frameWidth: number;
  framesEncoded: number;
  keyFramesEncoded: number;
  /** Keyframe requests (PLI) the page received for this encoding. */
  pliCount: number;
  /** Why the browser sends less than asked (`bandwidth`, `cpu`, `none`), if it says. */
  qualityLimitationReason: string | null;
  /** The encoder's target bitrate (bits/s; 0 when not sending this encoding). */
  targetBitrate: number;
}

declare global {
  interface Window {
    __openhearing: {
      pc: () => RTCPeerConnection | null;
      participantId: () => string | null;
      joinedAt: () => number | null;
      firstRemoteFrameAt: () => number | null;
      status: () => HearingStatus | null;
      self: () => ParticipantInfo | null;
      participants: () => ParticipantInfo[];
      permissions: () => Action[];
      room: () => RoomInfo | null;
      inbound: () => Promise<Record<string, InboundCounters>>;
      outbound: () => Promise<OutboundLayer[]>;
      /** RTCPeerConnections the current session created (1 while the seat is kept). */
      pcsCreated: () => number;
      /** ICE restarts done on the current connection. */
      iceRestarts: () => number;
      /** WebSocket resumes of the current session (no new join). */
      resumes: () => number;
    };
  }
}

/** Inbound counters per remote participant (see reception.ts). */
async function inboundCounters(): Promise<Record<string, InboundCounters>> {
  const pc = state.session?.pc;
  return pc ? sampleInbound(pc, state.session?.participantId ?? null) : {};
}

/** The encodings this page sends now, from its senders' `outbound-rtp` stats. */
async function outboundLayers(): Promise<OutboundLayer[]> {
  const pc = state.session?.pc;
  const out: OutboundLayer[] = [];
  if (!pc) return out;
  for (const sender of pc.getSenders()) {
    if (!sender.track) continue;
    const stats = await sender.getStats();
    stats.forEach((r: { type: string; kind?: string; [k: string]: unknown }) => {
      if (r.type !== 'outbound-rtp') return;
      const n = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : 0);
      out.push({
        kind: r.kind ?? '',
        rid: typeof r.rid === 'string' ? r.rid : null,
        frameWidth: n('frameWidth'),
        framesEncoded: n('framesEncoded'),
        keyFramesEncoded: n('keyFramesEncoded'),
        pliCount: n('pliCount'),
        qualityLimitationReason: typeof r.qualityLimitationReason === 'string' ? r.qualityLimitationReason : null,
        targetBitrate: n('targetBitrate'),
      });
    });
  }
  return out;
}

export function installHooks(): void {
  window.__openhearing = {
    pc: () => state.session?.pc ?? null,
    participantId: () => state.session?.participantId ?? null,
    joinedAt: () => state.joinedAt,
    firstRemoteFrameAt: () => state.firstRemoteFrameAt,
    status: () => (state.hearingStatus ? { ...state.hearingStatus } : null),
    self: () => (state.self ? { ...state.self } : null),
    participants: () => state.others.map((p) => ({ ...p })),
    permissions: () => [...state.permissions],
    room: () => {
      const r = roomOf(state.hearingStatus, selfId());
      return r ? { ...r, members: [...r.members] } : null;
    },
    inbound: inboundCounters,
    outbound: outboundLayers,
    pcsCreated: () => state.session?.pcsCreated ?? 0,
    iceRestarts: () => state.session?.iceRestarts ?? 0,
    resumes: () => state.session?.resumes ?? 0,
  };
}
