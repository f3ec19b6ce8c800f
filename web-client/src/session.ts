// One connection to a hearing: signaling WebSocket + a single RTCPeerConnection.
// Owns no DOM; reports everything through `SessionEvents`.
import {
  NON_RETRYABLE_CODES,
  PROTOCOL_VERSION,
  type Action,
  type ClientMessage,
  type CourtCommand,
  type DeviceEvent,
  type ErrorCode,
  type HealthCell,
  type HearingInfo,
  type IntegrityAlert,
  type HearingStatus,
  type ParticipantInfo,
  type RemoteReception,
  type RoomEndReason,
  type RoomKind,
  type ServerMessage,
} from './protocol';
import { addScreenTrack, addVideoTrack, preferRed } from './media';
import { isScreenTrack, msidByMid, type InboundCounters } from './reception';
import { IceRecovery } from './recovery';

export type SessionStatus =
  | 'connecting' // WebSocket opening / waiting for welcome
  | 'media' // welcome received, media path not yet connected
  | 'connected'
  | 'reconnecting'
  | 'lost' // gave up reconnecting; user must press reconnect
  | 'failed' // fatal, non-retryable server error
  | 'left';

export interface ServerError {
  code: ErrorCode | string;
  message: string;
  fatal: boolean;
}

export interface SessionEvents {
  status(status: SessionStatus, detail: { attempt?: number; error?: ServerError }): void;
  welcome(w: {
    you: ParticipantInfo;
    hearing: HearingInfo;
    status: HearingStatus;
    permissions: Action[];
    canPublish: boolean;
  }): void;
  /** Everyone but this participant (present or not, lobby included). */
  participants(list: ParticipantInfo[]): void;
  /** This participant as the server now sees them (admitted, muted by the court, ...). */
  self(you: ParticipantInfo): void;
  /** The hearing's state, lock or spotlight changed. */
  hearingStatus(status: HearingStatus): void;
  /** The court asks this participant to unmute (they decide). */
  unmuteRequested(by: string): void;
  /** A recording problem the presiding judge must know about. */
  recordingAlert(message: string): void;
  /** The server paused (or resumed) a participant's video for this page's bandwidth. */
  videoPaused(participantId: string, paused: boolean): void;
  /** Who sees and hears whom (the bench: everyone; others: what they receive). */
  mediaHealth(cells: HealthCell[]): void;
  /** For the presiding judge and the clerk: a party and the judge lost each other. */
  integrityAlert(alert: IntegrityAlert): void;
  /** This device opened a link in use elsewhere and waits for the court (no welcome yet). */
  deviceWaiting(): void;
  /** For the court: a participant's link was used on a second device. */
  secondDevice(notice: { participantId: string; event: DeviceEvent; userAgent: string | null; at: string }): void;
  /** A consultation request this participant is part of was approved or refused. */
  consultationAnswered(requestId: string, approved: boolean): void;
  /** The private room this participant was in ended; they are back in the hearing room. */
  roomEnded(ev: { roomId: string; kind: RoomKind; reason: RoomEndReason; by: string | null }): void;
  /** The participant's current remote track of `kind` (null = none / removed);
   * `screen` is their screen share (a second video track). */
  remoteTrack(participantId: string, kind: RemoteKind, track: MediaStreamTrack | null): void;
  /** This page's own screen share started (true) or stopped (false). */
  screenShare?(sharing: boolean): void;
  participantLeft(participantId: string, reason: string): void;
  /** A non-fatal server error to show the user. */
  error(err: ServerError): void;
  /** The WebSocket opened (performance.now()). */
  opened(at: number): void;
}

/** What a remote track carries. */
export type RemoteKind = 'audio' | 'video' | 'screen';

export interface SessionOptions {
  url: string;
  token: string;
  /** This tab's own id (`join.tab`): its reconnects take the seat back at once. */
  tab?: string;
  localStream: MediaStream | null;
  events: SessionEvents;
  pingIntervalMs?: number;
  maxAutoReconnects?: number;
}

const BACKOFF_MS = [1000, 2000, 4000, 8000, 15000];
/** Delays of the `resume` attempts after a socket broke (bounded also by the window). */
const RESUME_BACKOFF_MS = [0, 500, 1000, 2000, 3000, 4000, 4000, 4000, 4000, 4000, 4000, 4000, 4000];
/** A resume socket not open by then is given up and tried afresh (its SYN may be lost). */
const RESUME_CONNECT_MS = 3000;

export class HearingSession {
  pc: RTCPeerConnection | null = null;
  participantId: string | null = null;
  status: SessionStatus = 'connecting';

  private ws: WebSocket | null = null;
  private participants = new Map<string, ParticipantInfo>();
  /** receiver track id → [participant id, kind] currently shown. */
  private trackOwner = new Map<string, { pid: string; kind: RemoteKind; track: MediaStreamTrack }>();
  /** This page's screen share, while it is sent on the current connection. */
  private screen: { track: MediaStreamTrack; sender: RTCRtpSender } | null = null;
  /** An offer of ours (a screen share added or removed) is due when negotiation allows. */
  private offerWanted = false;
  private pendingCandidates: RTCIceCandidateInit[] = [];
  /** Messages of the current socket, handled in order (SDP operations are asynchronous). */
  private chain: Promise<void> = Promise.resolve();
  /** Bumped per socket: work queued for an older socket is dropped. */
  private generation = 0;
  private pingTimer: ReturnType<typeof setInterval> | null = null;
  private reconnectTimer: ReturnType<typeof setTimeout> | null = null;
  private pingId = 0;
  private attempt = 0;
  private fatal: ServerError | null = null;
  /** `retry_after_ms` of the last `join_rate_limited`. */
  private retryAfterMs: number | null = null;
  private closedByUs = false;
  private welcomed = false;
  private canPublish = false;
  private hearingState: HearingStatus['state'] | null = null;
  /** ICE restarts of the current connection through outages (recovery.ts). */
  private recovery: IceRecovery | null = null;
  /** An ICE-restart offer is due as soon as negotiation allows (a server offer first). */
  private restartWanted = false;
  /** RTCPeerConnections this session created (test hook: a kept seat keeps one). */
  pcsCreated = 0;
  /** `welcome.resume`: how to take this session back over a new socket. */
  private resumeTicket: { token: string; window_ms: number } | null = null;
  /** Messages received after `welcome` (not counting `resumed`): what `resume` reports. */
  private received = 0;
  /** The current socket's messages count towards `received` (after welcome/resumed). */
  private counting = false;
  /** When the socket of a resumable session broke (null: it did not). */
  private socketLostAt: number | null = null;
  private resumeAttempt = 0;
  /** Sessions resumed on a new socket (test hook). */
  resumes = 0;
  /** When the current socket last brought a message (performance.now()). */
  private lastHeardAt = 0;
  private stallTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private opts: SessionOptions) {}

  start(): void {
    this.closedByUs = false;
    this.fatal = null;
    this.welcomed = false;
    this.resumeTicket = null;
    this.socketLostAt = null;
    this.resumeAttempt = 0;
    this.setStatus(this.attempt > 0 ? 'reconnecting' : 'connecting');
    this.open('join');
  }

  /** Opens a socket that joins, or resumes this session (keeping its connection). */
  private open(mode: 'join' | 'resume'): void {
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.opts.url);
    } catch (e) {
      this.onSocketClosed();
      return;
    }
    this.ws = ws;
    // A new socket starts a new queue: an SDP operation of the old peer connection may
    // never settle (operations on a closed RTCPeerConnection are abandoned, not rejected).
    const gen = ++this.generation;
    this.chain = Promise.resolve();
    this.counting = false;
    if (mode === 'resume') {
      setTimeout(() => {
        if (this.ws !== ws || ws.readyState !== WebSocket.CONNECTING) return;
        ws.onclose = ws.onmessage = ws.onopen = ws.onerror = null;
        ws.close();
        this.onSocketClosed();
      }, RESUME_CONNECT_MS);
    }
    ws.onopen = () => {
      if (mode === 'join') {
        this.opts.events.opened(performance.now());
        this.send({
          type: 'join',
          v: PROTOCOL_VERSION,
          token: this.opts.token,
          ...(this.opts.tab ? { tab: this.opts.tab } : {}),
          resumable: true,
        });
      } else {
        this.send({ type: 'resume', v: PROTOCOL_VERSION, resume: this.resumeTicket?.token ?? '', received: this.received });
      }
      this.pingTimer = setInterval(
        () => this.send({ type: 'ping', id: ++this.pingId }),
        this.opts.pingIntervalMs ?? 20000,
      );
    };
    ws.onmessage = (ev) => {
      this.lastHeardAt = performance.now();
      if (typeof ev.data !== 'string') return;
      let msg: ServerMessage;
      try {
        msg = JSON.parse(ev.data) as ServerMessage;
      } catch {
        return;
      }
      // Counted on arrival, in the server's order (PROTOCOL.md, *Resuming a session*).
      if (msg.type === 'welcome') {
        this.received = 0;
        this.counting = true;
      } else if (msg.type === 'resumed') {
        this.counting = true;
      } else if (this.counting) {
        this.received++;
      }
      // Handle in order; SDP operations are asynchronous.
      this.chain = this.chain
        .then(() => (gen === this.generation ? this.handle(msg) : undefined))
        .catch((e) => console.warn('[openhearing] handling', msg.type, e));
    };
    ws.onclose = () => {
      // Handle the close after the messages that arrived before it (the fatal error the
      // server sends before closing may still wait behind an SDP operation), but do not
      // wait for a queue that is stuck.
      let done = false;
      const closed = () => {
        if (done) return;
        done = true;
        if (this.ws === ws) this.onSocketClosed();
      };
      void this.chain.then(closed, closed);
      setTimeout(closed, 2000);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
  }

  /** Sends `media_state` with the local tracks' enabled flags. */
  sendMediaState(): void {
    const s = this.opts.localStream;
    const audio = !!s?.getAudioTracks().some((t) => t.enabled && t.readyState === 'live');
    const video = !!s?.getVideoTracks().some((t) => t.enabled && t.readyState === 'live');
    this.send({ type: 'media_state', audio: this.canPublish && audio, video: this.canPublish && video });
  }

  /** Sends `media_report`: what this page receives of each remote participant
   * (cumulative counters from reception.ts's `sampleInbound`), every ~2 s. */
  sendMediaReport(counters: Record<string, InboundCounters>): void {
    if (!this.welcomed) return;
    const remotes: RemoteReception[] = Object.entries(counters).map(([id, c]) => ({
      participant_id: id,
      audio: {
        packets_received: c.audio.packetsReceived,
        samples_received: c.audio.totalSamplesReceived,
        concealed_samples: c.audio.concealedSamples,
      },
      video: {
        packets_received: c.video.packetsReceived,
        frames_decoded: c.video.framesDecoded,
        freeze_ms: Math.round(c.video.freezeSeconds * 1000),
      },
    }));
    this.send({ type: 'media_report', remotes });
  }

  /** Sends a court-workflow command; false when there is no open connection. */
  command(msg: CourtCommand): boolean {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.welcomed) return false;
    this.send(msg);
    return true;
  }

  /** Leaves on purpose: tells the server, closes everything. Local tracks are the caller's. */
  leave(): void {
    this.send({ type: 'leave' });
    this.teardown();
    this.setStatus('left');
  }

  /** Manual reconnect (from the "connection lost" screen). */
  reconnect(): void {
    this.teardown();
    this.attempt = 0;
    this.start();
  }

  /** Closes without telling the server (page unload, replaced by a new session). */
  dispose(): void {
    this.teardown();
  }

  private send(msg: ClientMessage): void {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
  }

  private setStatus(status: SessionStatus, detail: { attempt?: number; error?: ServerError } = {}): void {
    this.status = status;
    this.opts.events.status(status, detail);
  }

  private teardown(): void {
    this.closedByUs = true;
    if (this.stallTimer) clearTimeout(this.stallTimer);
    this.stallTimer = null;
    this.generation++; // queued messages of this socket are dropped
    if (this.pingTimer) clearInterval(this.pingTimer);
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.pingTimer = null;
    this.reconnectTimer = null;
    const ws = this.ws;
    this.ws = null;
    if (ws) {
      ws.onclose = ws.onmessage = ws.onopen = ws.onerror = null;
      try {
        ws.close(1000);
      } catch {
        /* already closed */
      }
    }
    this.closePc();
  }

  private closePc(): void {
    this.recovery?.stop();
    this.recovery = null;
    this.restartWanted = false;
    this.offerWanted = false;
    // A share does not survive its connection: re-sent on a new one together with the
    // camera, the server could take either for the camera (it calls the second video
    // track to arrive the screen). The participant shares again.
    this.endScreenShare();
    if (this.pc) {
      this.pc.onicecandidate = this.pc.ontrack = this.pc.onconnectionstatechange = null;
      this.pc.close();
    }
    this.pc = null;
    for (const { pid, kind } of this.trackOwner.values()) this.opts.events.remoteTrack(pid, kind, null);
    this.trackOwner.clear();
    this.pendingCandidates = [];
  }

  private onSocketClosed(): void {
    if (this.pingTimer) clearInterval(this.pingTimer);
    this.pingTimer = null;
    this.ws = null;
    if (this.closedByUs) return;
    if (this.resumable()) {
      // Keep the connection and the seat: a new socket takes the session back.
      const delay = RESUME_BACKOFF_MS[this.resumeAttempt++];
      this.setStatus('reconnecting', { attempt: this.resumeAttempt });
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        this.open('resume');
      }, delay);
      return;
    }
    this.closePc();
    let fatal = this.fatal;
    // The server no longer keeps the session: join again at once.
    if (fatal?.code === 'resume_failed') {
      this.fatal = null;
      this.start();
      return;
    }
    // The server announces `closed` and then closes the socket with `hearing_closed`;
    // should that error be lost, the closed state alone ends the session for good.
    if (!fatal && this.hearingState === 'closed') {
      fatal = { code: 'hearing_closed', message: '', fatal: true };
    }
    if (fatal && NON_RETRYABLE_CODES.includes(fatal.code as ErrorCode)) {
      this.setStatus('failed', { error: fatal });
      return;
    }
    const max = this.opts.maxAutoReconnects ?? BACKOFF_MS.length;
    // Too many joins: wait as long as the server says (at least), then try once more.
    if (fatal?.code === 'join_rate_limited' && this.attempt < max) {
      const delay = Math.max(this.retryAfterMs ?? 0, BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)]);
      this.retryAfterMs = null;
      this.attempt++;
      this.setStatus('reconnecting', { attempt: this.attempt, error: fatal });
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        this.start();
      }, delay);
      return;
    }
    // A socket that never got a welcome and closed without a reason is retried too:
    // the server may be restarting.
    if (fatal?.code !== 'rate_limited' && this.attempt < max) {
      const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
      this.attempt++;
      this.setStatus('reconnecting', { attempt: this.attempt, error: fatal ?? undefined });
      this.reconnectTimer = setTimeout(() => {
        this.reconnectTimer = null;
        this.start();
      }, delay);
      return;
    }
    this.setStatus('lost', { error: fatal ?? undefined });
  }

  /** Whether a broken socket is resumed (rather than a new join), within bounds. */
  private resumable(): boolean {
    const ticket = this.resumeTicket;
    if (!ticket || !this.welcomed || !this.pc || this.fatal || this.hearingState === 'closed') return false;
    const now = performance.now();
    this.socketLostAt ??= now;
    // Bounded in count (about 40 s in all). Past the server's window (`window_ms` after
    // it saw the socket break) the resume is refused and the client joins at once.
    return this.resumeAttempt < RESUME_BACKOFF_MS.length && now - this.socketLostAt < Math.max(ticket.window_ms, 40_000);
  }

  /** The session was taken back on this socket; the replayed messages follow. */
  private async onResumed(): Promise<void> {
    this.resumes++;
    this.socketLostAt = null;
    this.resumeAttempt = 0;
    this.attempt = 0;
    const pc = this.pc;
    if (!pc) return;
    this.setStatus(pc.connectionState === 'connected' ? 'connected' : 'media');
    // Our offer may have been lost with the old socket: start that negotiation over.
    let rolledBack = false;
    if (pc.signalingState === 'have-local-offer') {
      await pc.setLocalDescription({ type: 'rollback' });
      rolledBack = true;
    }
    // Candidates sent meanwhile may be lost too: a connection that is not up restarts
    // ICE now rather than at its next retry.
    if (pc.connectionState !== 'connected') this.restartIce(pc);
    // A lost offer of ours (a screen share added or removed) is made again.
    else if (rolledBack) this.renegotiate(pc);
    if (this.canPublish) this.sendMediaState();
  }

  private async handle(msg: ServerMessage): Promise<void> {
    switch (msg.type) {
      case 'welcome':
        await this.onWelcome(msg);
        break;
      case 'resumed':
        await this.onResumed();
        break;
      case 'participant_joined':
      case 'participant_updated':
        if (msg.participant.id === this.participantId) {
          this.opts.events.self(msg.participant);
          break;
        }
        this.participants.set(msg.participant.id, msg.participant);
        this.emitParticipants();
        break;
      case 'hearing_status':
        this.hearingState = msg.status.state;
        this.opts.events.hearingStatus(msg.status);
        break;
      case 'unmute_requested':
        this.opts.events.unmuteRequested(msg.by);
        break;
      case 'recording_alert':
        this.opts.events.recordingAlert(msg.message);
        break;
      case 'video_paused':
        this.opts.events.videoPaused(msg.participant_id, msg.paused);
        break;
      case 'media_health':
        this.opts.events.mediaHealth(msg.cells);
        break;
      case 'integrity_alert': {
        const { type: _type, ...alert } = msg;
        this.opts.events.integrityAlert(alert);
        break;
      }
      case 'device_waiting':
        // Stays open and quiet until the court decides: `welcome`, or a fatal error.
        this.attempt = 0;
        this.opts.events.deviceWaiting();
        break;
      case 'second_device':
        this.opts.events.secondDevice({
          participantId: msg.participant_id,
          event: msg.event,
          userAgent: msg.user_agent ?? null,
          at: msg.at,
        });
        break;
      case 'consultation_answered':
        this.opts.events.consultationAnswered(msg.request_id, msg.approved);
        break;
      case 'room_ended':
        this.opts.events.roomEnded({ roomId: msg.room_id, kind: msg.kind, reason: msg.reason, by: msg.by ?? null });
        break;
      case 'participant_left': {
        const p = this.participants.get(msg.participant_id);
        if (p) this.participants.set(p.id, { ...p, present: false });
        for (const [id, o] of this.trackOwner) {
          if (o.pid === msg.participant_id) this.trackOwner.delete(id);
        }
        this.opts.events.remoteTrack(msg.participant_id, 'audio', null);
        this.opts.events.remoteTrack(msg.participant_id, 'video', null);
        this.opts.events.remoteTrack(msg.participant_id, 'screen', null);
        this.opts.events.participantLeft(msg.participant_id, msg.reason);
        this.emitParticipants();
        break;
      }
      case 'answer':
        if (!this.pc) return;
        await this.pc.setRemoteDescription({ type: 'answer', sdp: msg.sdp });
        await this.flushCandidates();
        if (this.offerWanted) await this.sendOffer(this.pc);
        break;
      case 'offer': {
        const pc = this.pc;
        if (!pc) return;
        // Our ICE-restart offer crossed this one and was refused (`negotiation_conflict`):
        // the server's goes first, ours is sent again right after.
        if (pc.signalingState === 'have-local-offer') {
          await pc.setLocalDescription({ type: 'rollback' });
          // A screen share's offer (not a restart) is made again after this exchange.
          if (!this.recovery?.recovering) this.offerWanted = true;
        }
        await pc.setRemoteDescription({ type: 'offer', sdp: msg.sdp });
        await this.flushCandidates();
        const answer = await pc.createAnswer();
        await pc.setLocalDescription(answer);
        this.send({ type: 'answer', sdp: pc.localDescription?.sdp ?? answer.sdp ?? '' });
        if (this.restartWanted) await this.sendRestartOffer(pc);
        else if (this.offerWanted) await this.sendOffer(pc);
        break;
      }
      case 'candidate':
        if (!this.pc) return;
        if (!this.pc.remoteDescription) this.pendingCandidates.push(msg.candidate as RTCIceCandidateInit);
        else await this.addCandidate(msg.candidate as RTCIceCandidateInit);
        break;
      case 'pong':
        break;
      case 'error': {
        const err: ServerError = { code: msg.code, message: msg.message, fatal: msg.fatal };
        if (typeof msg.retry_after_ms === 'number') this.retryAfterMs = msg.retry_after_ms;
        console.info('[openhearing] server error', msg.code, msg.fatal ? '(fatal)' : '', msg.message);
        if (msg.fatal) this.fatal = err;
        else if (msg.code === 'negotiation_conflict') {
          // Only an ICE-restart offer can conflict (the first offer never does).
          if (this.pc && this.recovery?.recovering) this.restartWanted = true;
          else if (this.pc?.signalingState === 'stable') {
            // Ours was rolled back for the server's and is not on its way again yet.
            this.offerWanted = true;
            await this.sendOffer(this.pc);
          }
        } else this.opts.events.error(err);
        break;
      }
    }
  }

  private async addCandidate(c: RTCIceCandidateInit): Promise<void> {
    try {
      await this.pc?.addIceCandidate(c);
    } catch (e) {
      console.warn('[openhearing] addIceCandidate', e);
    }
  }

  private async flushCandidates(): Promise<void> {
    const queued = this.pendingCandidates;
    this.pendingCandidates = [];
    for (const c of queued) await this.addCandidate(c);
  }

  private emitParticipants(): void {
    this.opts.events.participants([...this.participants.values()]);
  }

  private async onWelcome(w: Extract<ServerMessage, { type: 'welcome' }>): Promise<void> {
    const { you, participants: others } = w;
    const canPublish = w.can_publish;
    this.welcomed = true;
    this.attempt = 0;
    this.resumeTicket = w.resume ?? null;
    this.participantId = you.id;
    this.canPublish = canPublish;
    this.hearingState = w.status.state;
    this.participants = new Map(others.filter((p) => p.id !== you.id).map((p) => [p.id, p]));
    this.opts.events.welcome({
      you,
      hearing: w.hearing,
      status: w.status,
      permissions: Array.isArray(w.permissions) ? w.permissions : [],
      canPublish,
    });
    this.emitParticipants();
    this.setStatus('media');

    this.closePc();
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle' });
    this.pc = pc;
    this.pcsCreated++;
    const recovery = new IceRecovery({
      restart: (attempt) => {
        console.info('[openhearing] connection', pc.connectionState, '- ICE restart', attempt);
        this.restartIce(pc);
      },
      giveUp: () => {
        if (this.pc !== pc) return;
        // The same connection did not come back: start over with a fresh socket and
        // peer connection, as before ICE restarts existed.
        console.info('[openhearing] ICE restarts did not bring the connection back; rejoining');
        this.teardown();
        this.closedByUs = false;
        this.onSocketClosed();
      },
      recovered: (restarts, ms) =>
        console.info('[openhearing] connection back after', Math.round(ms), 'ms and', restarts, 'ICE restart(s)'),
    });
    this.recovery = recovery;
    pc.onicecandidate = (ev) => {
      if (ev.candidate && ev.candidate.candidate) {
        this.send({ type: 'candidate', candidate: ev.candidate.toJSON() as never });
      }
    };
    pc.onconnectionstatechange = () => {
      if (this.pc !== pc) return;
      const s = pc.connectionState;
      if (s === 'connected') this.setStatus('connected');
      // `disconnected` / `failed`: restart ICE on this connection, bounded (recovery.ts).
      recovery.onState(s);
    };
    pc.ontrack = (ev) => this.onTrack(ev);

    const local = this.opts.localStream;
    const publishable = canPublish && local ? local.getTracks().filter((t) => t.readyState === 'live') : [];
    if (publishable.length > 0 && local) {
      // Audio as one track; the camera as simulcast layers (media.ts).
      for (const track of publishable) {
        if (track.kind === 'video') addVideoTrack(pc, track, local);
        else pc.addTrack(track, local);
      }
      // Receive-only slot for a kind we do not publish keeps the offer symmetric.
      for (const kind of ['audio', 'video'] as const) {
        if (!publishable.some((t) => t.kind === kind)) pc.addTransceiver(kind, { direction: 'recvonly' });
      }
    } else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
    }
    preferRed(pc);
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.send({ type: 'offer', sdp: pc.localDescription?.sdp ?? offer.sdp ?? '' });
    if (canPublish) this.sendMediaState();
  }

  /** Queues an ICE restart of `pc` behind the messages being handled. */
  private restartIce(pc: RTCPeerConnection): void {
    if (this.pc !== pc) return;
    this.checkSocket();
    this.restartWanted = true;
    this.chain = this.chain
      .then(() => this.sendRestartOffer(pc))
      .catch((e) => console.warn('[openhearing] ICE restart', e));
  }

  /**
   * During an outage the socket may be as dead as the media path while the browser
   * still calls it open (TCP retransmits with backoff for minutes): what is sent on it
   * then arrives long after the link is back. A socket silent for 4 s is asked for a
   * `pong`; no answer within 2 s and it is dropped, so the session is resumed on a
   * fresh connection (`resume`), where the restart offer is sent again.
   */
  private checkSocket(): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN || !this.resumeTicket || this.stallTimer) return;
    if (performance.now() - this.lastHeardAt < 4000) return;
    this.send({ type: 'ping', id: ++this.pingId });
    const asked = performance.now();
    this.stallTimer = setTimeout(() => {
      this.stallTimer = null;
      if (this.ws !== ws || this.lastHeardAt >= asked) return;
      console.info('[openhearing] the signaling socket is silent; resuming on a new one');
      ws.onclose = ws.onmessage = ws.onopen = ws.onerror = null;
      try {
        // 4000: "resuming elsewhere", so that this close, should it still arrive, does
        // not end the session as a closed tab would (PROTOCOL.md).
        ws.close(4000, 'resuming');
      } catch {
        /* already closing */
      }
      this.onSocketClosed();
    }, 2000);
  }

  /** Sends the ICE-restart offer if one is due and negotiation allows it now. */
  private async sendRestartOffer(pc: RTCPeerConnection): Promise<void> {
    if (this.pc !== pc || !this.restartWanted || !this.welcomed) return;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    // An earlier restart offer still waits for its answer: that answer brings the new
    // credentials; a second offer now would race it.
    if (pc.signalingState !== 'stable') return;
    this.restartWanted = false;
    pc.restartIce();
    const offer = await pc.createOffer({ iceRestart: true });
    await pc.setLocalDescription(offer);
    this.send({ type: 'offer', sdp: pc.localDescription?.sdp ?? offer.sdp ?? '' });
  }

  /** ICE restarts done over the current connection (test hook). */
  get iceRestarts(): number {
    return this.recovery?.totalRestarts ?? 0;
  }

  private onTrack(ev: RTCTrackEvent): void {
    const stream = ev.streams[0];
    const track = ev.track;
    if (!stream) return;
    const pid = stream.id;
    if (pid === this.participantId) return;
    // The server names a screen share's track `screen-<id>` in its offer (by mid).
    const mid = ev.transceiver?.mid;
    const named = mid ? msidByMid(this.pc?.remoteDescription?.sdp ?? '').get(mid)?.track : null;
    const kind: RemoteKind = track.kind === 'audio' ? 'audio' : isScreenTrack(named) ? 'screen' : 'video';
    // A reused transceiver keeps its track: move it from its previous owner.
    const prev = this.trackOwner.get(track.id);
    if (prev && (prev.pid !== pid || prev.kind !== kind)) this.opts.events.remoteTrack(prev.pid, prev.kind, null);
    this.trackOwner.set(track.id, { pid, kind, track });
    this.opts.events.remoteTrack(pid, kind, track);

    const blank = () => {
      const o = this.trackOwner.get(track.id);
      if (o && o.pid === pid) this.opts.events.remoteTrack(pid, kind, null);
    };
    const restore = () => {
      const o = this.trackOwner.get(track.id);
      if (o && o.pid === pid) this.opts.events.remoteTrack(pid, kind, track);
    };
    track.onmute = blank;
    track.onunmute = restore;
    track.onended = blank;
    stream.onremovetrack = (e) => {
      const o = this.trackOwner.get(e.track.id);
      if (o && o.pid === pid) {
        this.trackOwner.delete(e.track.id);
        this.opts.events.remoteTrack(pid, o.kind, null);
      }
    };
  }

  /** Whether this page sends a screen share now. */
  get sharingScreen(): boolean {
    return this.screen !== null;
  }

  /**
   * Sends `track` (a screen capture, contentHint `detail`) as a second video track
   * and renegotiates; the server decides who receives it (`publish_screen`, policy).
   * The browser's own "stop sharing" ends it as `stopScreenShare` does.
   */
  startScreenShare(track: MediaStreamTrack, stream: MediaStream): boolean {
    const pc = this.pc;
    if (!pc || !this.welcomed || !this.canPublish || this.screen || track.readyState !== 'live') return false;
    const sender = addScreenTrack(pc, track, stream);
    this.screen = { track, sender };
    track.addEventListener('ended', () => {
      if (this.screen?.track === track) this.stopScreenShare();
    });
    this.opts.events.screenShare?.(true);
    this.renegotiate(pc);
    return true;
  }

  /** Stops the screen share: the track is removed and the connection renegotiated. */
  stopScreenShare(): void {
    const pc = this.pc;
    const share = this.screen;
    if (!share) return;
    if (pc && pc.signalingState !== 'closed') {
      try {
        pc.removeTrack(share.sender);
      } catch {
        /* the connection is going */
      }
      this.renegotiate(pc);
    }
    this.endScreenShare();
  }

  /** Forgets the share and stops its capture (no renegotiation). */
  private endScreenShare(): void {
    const share = this.screen;
    if (!share) return;
    this.screen = null;
    share.track.stop();
    this.opts.events.screenShare?.(false);
  }

  /** Queues an offer of ours behind the messages being handled. */
  private renegotiate(pc: RTCPeerConnection): void {
    this.offerWanted = true;
    this.chain = this.chain.then(() => this.sendOffer(pc)).catch((e) => console.warn('[openhearing] renegotiation', e));
  }

  /** Sends our offer if one is due and negotiation allows it now (else after the
   * current exchange: `answer` / `offer` handling sends it). */
  private async sendOffer(pc: RTCPeerConnection): Promise<void> {
    if (this.pc !== pc || !this.offerWanted || !this.welcomed) return;
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (pc.signalingState !== 'stable') return;
    this.offerWanted = false;
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    this.send({ type: 'offer', sdp: pc.localDescription?.sdp ?? offer.sdp ?? '' });
  }

  get hasWelcome(): boolean {
    return this.welcomed;
  }
}
