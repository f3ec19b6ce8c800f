// What the client knows, in one typed object: the join link, the local media, the
// connection and the court as the server last described it. Every screen reads it and
// the session wiring in main.ts writes it; the few transitions that touch several
// fields at once (a new connection, releasing the camera) are functions here so that
// they stay one step. The DOM handles of a screen are not here: they belong to the
// screen that built them (screens/hearing.ts keeps its view, ui.ts the binders).
import { acquireMedia, stopStream, type DeviceChoice, type LevelMeter } from './media';
import type { OwnReception } from './health';
import type {
  Action,
  DeviceEvent,
  HealthCell,
  HearingStatus,
  IntegrityAlert,
  ParticipantInfo,
  Role,
  RoomKind,
} from './protocol';
import type { HearingSession, ServerError, SessionStatus } from './session';

export interface ClientState {
  // ---- the join link
  token: string;
  /** This tab's own id (`join.tab`), from `sessionStorage`. */
  tab: string | undefined;
  hearingId: string;
  /** Case number and title: from the token, then from `welcome`. */
  hearing: { case_number: string; title: string; scheduled_at?: string };
  /** This participant's name, role and site: from the token, then from the server. */
  me: { name: string; role: Role | string; site: string };

  // ---- local media
  localStream: MediaStream | null;
  /** The pre-join microphone meter (stopped on join). */
  meter: LevelMeter | null;
  /** The camera and microphone picked on this PC. */
  choice: DeviceChoice;
  /** Why the camera/microphone could not be used, if so. */
  mediaError: string | null;
  /** This participant may publish (from `welcome`; assumed for non-observers before it). */
  canPublish: boolean;

  // ---- the connection
  session: HearingSession | null;
  /** performance.now() when the WebSocket opened. */
  joinedAt: number | null;
  /** performance.now() of the first remote video frame. */
  firstRemoteFrameAt: number | null;
  lastStatus: { status: SessionStatus; attempt?: number };
  /** The remote tracks by participant id (a track may come before its participant). */
  remoteTracks: Map<string, { audio: MediaStreamTrack | null; video: MediaStreamTrack | null }>;
  /** Remote screen shares by participant id (a second video track). */
  remoteScreens: Map<string, MediaStreamTrack>;
  /** Participants whose video the server paused for this page's bandwidth (`video_paused`). */
  videoPaused: Set<string>;
  /** The error shown in the hearing's banner. */
  bannerError: ServerError | null;
  /** The connection is lost (reconnecting or given up): the banner offers a reconnect. */
  bannerLost: boolean;

  // ---- the court
  /** The hearing's live state (from `welcome` / `hearing_status`). */
  hearingStatus: HearingStatus | null;
  /** What this participant's role may do (from `welcome`). */
  permissions: Action[];
  /** This participant as the server sees them (admission, court mute, ...). */
  self: ParticipantInfo | null;
  /** Everyone else (present or not, lobby included). */
  others: ParticipantInfo[];
  /** An unmute request from the court is waiting for the user's answer. */
  unmuteAsked: boolean;
  /** The user accepted the court's unmute request: re-enable the mic once the server unmutes. */
  unmuteAccepted: boolean;
  /** The latest recording problem the server reported (shown to the presiding judge). */
  recordingAlert: string | null;
  /** This device waits for the court: its link is in use on another device. */
  deviceWaiting: boolean;
  /** For the court: the latest second-device event per participant id. */
  secondDevices: Map<string, { event: DeviceEvent; userAgent: string | null; at: string }>;
  /** The last private-room notice for this participant (room ended, request refused). */
  roomNotice: { reason: string; kind: RoomKind | null } | null;
  /** The server's media-health cells (the bench: all of them; others: what they receive). */
  health: HealthCell[];
  /** For the presiding judge and the clerk: raised integrity alerts (health.ts `alertKey`). */
  integrityAlerts: Map<string, IntegrityAlert>;
  /** The last alert that cleared, said until the next alert changes. */
  integrityCleared: IntegrityAlert | null;
  /** What of the presiding judge this page's own counters say it does not get. */
  localJudgeLoss: OwnReception;
}

export const state: ClientState = {
  token: '',
  tab: undefined,
  hearingId: '',
  hearing: { case_number: '', title: '' },
  me: { name: '', role: 'observer', site: '' },
  localStream: null,
  meter: null,
  choice: {},
  mediaError: null,
  canPublish: false,
  session: null,
  joinedAt: null,
  firstRemoteFrameAt: null,
  lastStatus: { status: 'connecting' },
  remoteTracks: new Map(),
  remoteScreens: new Map(),
  videoPaused: new Set(),
  bannerError: null,
  bannerLost: false,
  hearingStatus: null,
  permissions: [],
  self: null,
  others: [],
  unmuteAsked: false,
  unmuteAccepted: false,
  recordingAlert: null,
  deviceWaiting: false,
  secondDevices: new Map(),
  roomNotice: null,
  health: [],
  integrityAlerts: new Map(),
  integrityCleared: null,
  localJudgeLoss: { cannotHear: false, cannotSee: false },
};

export function isObserver(): boolean {
  return state.me.role === 'observer';
}

export function courtMuted(): boolean {
  return !!state.self?.muted;
}

export function inLobby(): boolean {
  return state.self?.admission === 'lobby';
}

/** This participant's id: as the server last described them, else from `welcome`. */
export function selfId(): string | null {
  return state.self?.id ?? state.session?.participantId ?? null;
}

/** This participant (once known) and everyone else. */
export function everyone(): ParticipantInfo[] {
  return state.self ? [state.self, ...state.others] : [...state.others];
}

/** Forgets what belonged to the previous connection (before a new session starts). */
export function resetConnection(): void {
  state.remoteTracks.clear();
  state.remoteScreens.clear();
  state.videoPaused.clear();
  state.joinedAt = null;
  state.firstRemoteFrameAt = null;
  state.bannerError = null;
  state.bannerLost = false;
  state.deviceWaiting = false;
  state.lastStatus = { status: 'connecting' };
  state.unmuteAsked = false;
  state.unmuteAccepted = false;
  state.roomNotice = null;
  state.health = [];
  state.integrityAlerts.clear();
  state.integrityCleared = null;
  state.localJudgeLoss = { cannotHear: false, cannotSee: false };
}

/** Closes the session without telling the server and forgets it. */
export function disposeSession(): void {
  state.session?.dispose();
  state.session = null;
}

/** No usable local stream: none yet, or every track of it ended. */
export function streamEnded(): boolean {
  return !state.localStream || state.localStream.getTracks().every((tk) => tk.readyState === 'ended');
}

/** Opens the camera and microphone of `state.choice` (or records why not). */
export async function acquireLocalMedia(): Promise<void> {
  const r = await acquireMedia(state.choice);
  state.localStream = r.stream;
  state.mediaError = r.error;
}

/** Stops the camera and microphone. */
export function releaseMedia(): void {
  stopStream(state.localStream);
  state.localStream = null;
}

export function stopMeter(): void {
  state.meter?.stop();
  state.meter = null;
}
