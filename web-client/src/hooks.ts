// `window.__openhearing`: the test hooks through which the browser e2e tests read the
// page (README.md, "Test hooks"): shallow copies of state.ts's data, and the inbound
// RTP counters per remote participant, attributed through the current remote
// description (what the server says it forwards). They read; they never change state.
import { roomOf } from './court';
import type { Action, HearingStatus, ParticipantInfo, RoomInfo } from './protocol';
import { selfId, state } from './state';

/** Inbound RTP counters of one remote participant, per kind (summed over receivers). */
interface InboundCounters {
  audio: { packetsReceived: number; totalSamplesReceived: number; bytesReceived: number };
  video: { packetsReceived: number; framesDecoded: number; bytesReceived: number };
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
    };
  }
}

/**
 * Inbound counters per remote participant. A receiver is attributed to the participant
 * whose id is the `a=msid` stream id of its transceiver's m-section in the current
 * remote description (what the server says it forwards on that mid).
 */
async function inboundCounters(): Promise<Record<string, InboundCounters>> {
  const pc = state.session?.pc;
  const out: Record<string, InboundCounters> = {};
  if (!pc) return out;
  const streamOfMid = new Map<string, string>();
  for (const section of (pc.remoteDescription?.sdp ?? '').split(/\r?\nm=/).slice(1)) {
    const mid = /\r?\na=mid:(\S+)/.exec(section);
    const msid = /\r?\na=msid:(\S+)/.exec(section) ?? /\r?\na=ssrc:\d+ msid:(\S+)/.exec(section);
    if (mid && msid) streamOfMid.set(mid[1], msid[1]);
  }
  for (const tr of pc.getTransceivers()) {
    const pid = tr.mid ? streamOfMid.get(tr.mid) : undefined;
    if (!pid || pid === state.session?.participantId) continue;
    const c = (out[pid] ??= {
      audio: { packetsReceived: 0, totalSamplesReceived: 0, bytesReceived: 0 },
      video: { packetsReceived: 0, framesDecoded: 0, bytesReceived: 0 },
    });
    const stats = await tr.receiver.getStats();
    stats.forEach((r: { type: string; kind?: string; [k: string]: unknown }) => {
      if (r.type !== 'inbound-rtp') return;
      const n = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : 0);
      if (r.kind === 'audio') {
        c.audio.packetsReceived += n('packetsReceived');
        c.audio.totalSamplesReceived += n('totalSamplesReceived');
        c.audio.bytesReceived += n('bytesReceived');
      } else if (r.kind === 'video') {
        c.video.packetsReceived += n('packetsReceived');
        c.video.framesDecoded += n('framesDecoded');
        c.video.bytesReceived += n('bytesReceived');
      }
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
  };
}
