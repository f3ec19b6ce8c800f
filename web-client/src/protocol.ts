// Mirror of signaling/src/protocol/ (the contract). JSON text frames with a
// `type` tag, snake_case. Keep in step with the Rust files; tests/web_protocol_mirror.rs
// compares the lists below with the Rust ones.

export const PROTOCOL_VERSION = 1;

/** Every role, in the order a court lists them (`Role::ALL`). */
export const ALL_ROLES = [
  'presiding_judge',
  'judge',
  'assessor',
  'clerk',
  'prosecutor',
  'defendant',
  'defence_counsel',
  'victim',
  'litigant',
  'representative',
  'witness',
  'expert',
  'interpreter',
  'detention_officer',
  'observer',
] as const;

export type Role = (typeof ALL_ROLES)[number];

/** What kind of place a site (điểm cầu) is (`SiteKind::ALL`). */
export const ALL_SITE_KINDS = [
  'central',
  'detention',
  'office',
  'court',
  'remote',
] as const;

export type SiteKind = (typeof ALL_SITE_KINDS)[number];

/** What a role may do, from the server's permission table (`Action::ALL`). */
export const ALL_ACTIONS = [
  'publish_audio',
  'publish_video',
  'publish_screen',
  'subscribe',
  'admit',
  'deny',
  'mute_others',
  'remove',
  'lock',
  'control_lifecycle',
  'call_witness',
  'spotlight',
  'request_consultation',
  'approve_consultation',
  'deliberate',
] as const;

export type Action = (typeof ALL_ACTIONS)[number];

/** Where a hearing is in its lifecycle (`HearingState::ALL`). */
export const ALL_HEARING_STATES = [
  'scheduled',
  'open',
  'in_session',
  'suspended',
  'adjourned',
  'closed',
] as const;

export type HearingState = (typeof ALL_HEARING_STATES)[number];

/** `HearingState::can_move_to`. */
export function canMoveTo(from: HearingState, to: HearingState): boolean {
  switch (to) {
    case 'open':
      return from === 'scheduled' || from === 'adjourned';
    case 'in_session':
      return from === 'open' || from === 'suspended';
    case 'suspended':
      return from === 'in_session';
    case 'closed':
      return from === 'open' || from === 'in_session' || from === 'suspended';
    case 'adjourned':
      return from === 'scheduled' || from === 'open' || from === 'in_session' || from === 'suspended';
    case 'scheduled':
      return false;
  }
}

/** `HearingState::media_flows`: media is forwarded among admitted participants. */
export function mediaFlows(state: HearingState): boolean {
  return state === 'open' || state === 'in_session' || state === 'suspended';
}

export type Admission = 'lobby' | 'admitted' | 'removed';

/** The server's view of a participant's connection. */
export type Connection = 'offline' | 'connecting' | 'connected' | 'unstable';

/** Browser RTCIceCandidateInit shape (camelCase on the wire). */
export interface IceCandidate {
  candidate: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

export interface HearingInfo {
  id: string;
  case_number: string;
  title: string;
  /** When the hearing is scheduled to start (RFC 3339), if set. */
  scheduled_at?: string;
}

/** What a private room is for (`RoomKind`). */
export type RoomKind = 'consultation' | 'deliberation';

/** A private room: its members hear and see only each other (`RoomInfo`). */
export interface RoomInfo {
  id: string;
  kind: RoomKind;
  /** Who is in it (participant ids). */
  members: string[];
  /** Since when (RFC 3339). */
  since: string;
}

/** A consultation asked for, awaiting the presiding judge (`ConsultationRequest`). */
export interface ConsultationRequest {
  id: string;
  /** Who asked. */
  from: string;
  /** With whom. */
  with: string;
  /** Since when (RFC 3339). */
  since: string;
}

/** The live state of a hearing (in `welcome` and `hearing_status`). */
export interface HearingStatus {
  state: HearingState;
  /** Why (required for suspended and adjourned). */
  reason?: string;
  /** Since when (RFC 3339). */
  since: string;
  /** The new date of an adjourned hearing (RFC 3339). */
  adjourned_to?: string;
  /** No admissions while locked. */
  locked: boolean;
  /** The participant who has the floor. */
  spotlight?: string | null;
  /** Private rooms in use (consultations, the panel's deliberation). `#[serde(default)]`:
   * always sent by the server, treat a missing one as empty. */
  rooms: RoomInfo[];
  /** Consultation requests awaiting the presiding judge (`#[serde(default)]`). */
  consultation_requests: ConsultationRequest[];
  /** The hearing is being recorded (the archive is open). */
  recording?: boolean;
}

export interface ParticipantInfo {
  id: string;
  name: string;
  role: Role;
  /** The site (điểm cầu) the participant joins from. */
  site: string;
  site_kind: SiteKind;
  /** Connected to the hearing now. */
  present: boolean;
  admission: Admission;
  /** Since when they wait in the lobby (RFC 3339), when they do. */
  lobby_since?: string;
  /** Self-reported microphone state. */
  audio: boolean;
  /** Self-reported camera state. */
  video: boolean;
  /** Muted by the court: the server forwards none of their audio. */
  muted: boolean;
  connection: Connection;
  /** The party they belong to (a defendant and their counsel share one), if set. */
  party?: string;
}

/** A lifecycle move (`set_state`). */
export interface StateChange {
  state: HearingState;
  reason?: string;
  adjourned_to?: string;
}

/** What this client receives of one remote participant, cumulative (`media_report`). */
export interface RemoteReception {
  participant_id: string;
  audio?: { packets_received: number; samples_received: number; concealed_samples: number };
  video?: { packets_received: number; frames_decoded: number; freeze_ms: number };
}

export type HealthGrade = 'ok' | 'degraded' | 'lost';

/** The server's verdict on one (publisher → subscriber) pair; a kind is absent when
 * none of it is expected. */
export interface HealthCell {
  publisher: string;
  subscriber: string;
  audio?: HealthGrade;
  video?: HealthGrade;
}

/** A party and the presiding judge lost each other (`raised`) or no longer do. */
/** What the server received of one self-test track and sent back (`self_test_report`). */
export interface SelfTestTrack {
  kind: 'audio' | 'video';
  received_packets: number;
  forwarded_packets: number;
  dropped_packets: number;
}

/** The end of a pre-join self-test (PROTOCOL.md, *Self-test*). */
export interface SelfTestReport {
  duration_ms: number;
  connected: boolean;
  connect_ms?: number | null;
  tracks: SelfTestTrack[];
}

export interface IntegrityAlert {
  participant_id: string;
  publisher: string;
  subscriber: string;
  kind: 'audio' | 'video';
  state: 'raised' | 'cleared';
  since: string;
  cause: string;
}

export type ClientMessage =
  | { type: 'join'; v: number; token: string; tab?: string; resumable?: boolean }
  | { type: 'resume'; v: number; resume: string; received: number }
  | { type: 'self_test'; v: number; token: string; seconds?: number }
  | { type: 'offer'; sdp: string }
  | { type: 'answer'; sdp: string }
  | { type: 'candidate'; candidate: IceCandidate }
  | { type: 'media_state'; audio: boolean; video: boolean }
  | { type: 'media_report'; remotes: RemoteReception[] }
  | { type: 'ping'; id: number }
  | { type: 'leave' }
  | { type: 'admit'; participant_id: string }
  | { type: 'admit_all' }
  | { type: 'admit_device'; participant_id: string }
  | { type: 'refuse_device'; participant_id: string }
  | { type: 'deny'; participant_id: string; reason?: string }
  | { type: 'call_in'; participant_id: string }
  | { type: 'dismiss'; participant_id: string }
  | { type: 'mute'; participant_id: string }
  | { type: 'mute_all' }
  | { type: 'request_unmute'; participant_id: string }
  | { type: 'accept_unmute' }
  | { type: 'remove'; participant_id: string; reason?: string }
  | { type: 'lock'; locked: boolean }
  | { type: 'spotlight'; participant_id: string | null }
  | ({ type: 'set_state' } & StateChange)
  | { type: 'request_consultation'; participant_id: string }
  | { type: 'answer_consultation'; request_id: string; approve: boolean }
  | { type: 'end_consultation'; room_id: string }
  | { type: 'start_deliberation' }
  | { type: 'end_deliberation' };

/** Court-workflow commands (everything a console sends besides media signaling). */
export type CourtCommand = Extract<
  ClientMessage,
  {
    type:
      | 'admit'
      | 'admit_all'
      | 'admit_device'
      | 'refuse_device'
      | 'deny'
      | 'call_in'
      | 'dismiss'
      | 'mute'
      | 'mute_all'
      | 'request_unmute'
      | 'accept_unmute'
      | 'remove'
      | 'lock'
      | 'spotlight'
      | 'set_state'
      | 'request_consultation'
      | 'answer_consultation'
      | 'end_consultation'
      | 'start_deliberation'
      | 'end_deliberation';
  }
>;

/** Every error code of the protocol (`ErrorCode::ALL` in signaling/src/protocol/), in order;
 * tests/web_protocol_mirror.rs keeps the two in step. */
export const ALL_ERROR_CODES = [
  'unsupported_version',
  'token_missing',
  'token_malformed',
  'token_invalid',
  'token_expired',
  'token_wrong_hearing',
  'hearing_not_found',
  'participant_unknown',
  'join_timeout',
  'not_joined',
  'already_joined',
  'malformed_message',
  'unknown_message_type',
  'message_too_large',
  'binary_not_supported',
  'rate_limited',
  'join_rate_limited',
  'invalid_sdp',
  'invalid_candidate',
  'no_offer_pending',
  'negotiation_conflict',
  'negotiation_timeout',
  'publish_not_allowed',
  'replaced',
  'second_device_refused',
  'permission_denied',
  'invalid_transition',
  'reason_required',
  'hearing_locked',
  'hearing_closed',
  'admission_denied',
  'removed',
  'link_revoked',
  'link_not_yet_valid',
  'unknown_participant',
  'not_applicable',
  'server_shutdown',
  'store_unavailable',
  'internal',
  'resume_failed',
  'self_test_busy',
] as const;

export type ErrorCode = (typeof ALL_ERROR_CODES)[number];

/** Codes that end the participation for good: a final screen, never a reconnect. */
export const FINAL_CODES: readonly ErrorCode[] = ['hearing_closed', 'admission_denied', 'removed', 'link_revoked'];

/** Codes after which retrying with the same token is pointless (no auto-reconnect). */
export const NON_RETRYABLE_CODES: readonly ErrorCode[] = [
  'unsupported_version',
  'token_missing',
  'token_malformed',
  'token_invalid',
  'token_expired',
  'token_wrong_hearing',
  'hearing_not_found',
  'participant_unknown',
  'replaced',
  'second_device_refused',
  'link_not_yet_valid',
  ...FINAL_CODES,
];

/** What a second device on a participant's link did (`second_device.event`). */
export type DeviceEvent = 'waiting' | 'replaced' | 'refused' | 'withdrawn';

export type ParticipantLeftReason =
  | 'left'
  | 'connection_lost'
  | 'replaced'
  | 'denied'
  | 'removed'
  | 'hearing_closed'
  | 'link_revoked'
  | string;

/** Why a private room ended (`room_ended.reason`): `ended` by a member (or the judge
 * ending deliberation), `recalled` by the presiding judge, `dissolved` (a member left
 * the hearing room), `hearing_closed`. */
export type RoomEndReason = 'ended' | 'recalled' | 'dissolved' | 'hearing_closed' | string;

export type ServerMessage =
  | {
      type: 'welcome';
      v: number;
      you: ParticipantInfo;
      hearing: HearingInfo;
      status: HearingStatus;
      participants: ParticipantInfo[];
      max_message_bytes: number;
      /** The largest `offer`/`answer` accepted (absent from older servers). */
      max_sdp_bytes?: number;
      can_publish: boolean;
      permissions: Action[];
      /** How to take this session back over a new socket (`resume`). */
      resume?: { token: string; window_ms: number };
    }
  | { type: 'hearing_status'; status: HearingStatus }
  | { type: 'unmute_requested'; by: string }
  | { type: 'video_paused'; participant_id: string; paused: boolean }
  | { type: 'recording_alert'; message: string }
  | { type: 'media_health'; cells: HealthCell[] }
  | ({ type: 'integrity_alert' } & IntegrityAlert)
  | { type: 'device_waiting'; message: string }
  | {
      type: 'second_device';
      participant_id: string;
      event: DeviceEvent;
      user_agent?: string | null;
      at: string;
    }
  | { type: 'consultation_answered'; request_id: string; approved: boolean }
  | { type: 'room_ended'; room_id: string; kind: RoomKind; reason: RoomEndReason; by?: string | null }
  | { type: 'participant_joined'; participant: ParticipantInfo }
  | { type: 'participant_updated'; participant: ParticipantInfo }
  | { type: 'participant_left'; participant_id: string; reason: ParticipantLeftReason }
  | { type: 'answer'; sdp: string }
  | { type: 'offer'; sdp: string }
  | { type: 'candidate'; candidate: IceCandidate }
  | { type: 'pong'; id: number }
  | { type: 'resumed'; replayed: number }
  | { type: 'self_test_ready'; seconds: number }
  | ({ type: 'self_test_report' } & SelfTestReport)
  | { type: 'error'; code: ErrorCode | string; message: string; fatal: boolean; retry_after_ms?: number };
