// Mirror of signaling/src/protocol.rs (the contract). JSON text frames with a
// `type` tag, snake_case. Keep in step with the Rust file.

export const PROTOCOL_VERSION = 1;

export type Role =
  | 'presiding_judge'
  | 'judge'
  | 'clerk'
  | 'prosecutor'
  | 'defendant'
  | 'defence_counsel'
  | 'witness'
  | 'interpreter'
  | 'observer';

export const ALL_ROLES: readonly Role[] = [
  'presiding_judge',
  'judge',
  'clerk',
  'prosecutor',
  'defendant',
  'defence_counsel',
  'witness',
  'interpreter',
  'observer',
];

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
}

export interface ParticipantInfo {
  id: string;
  name: string;
  role: Role;
  /** The site (điểm cầu) the participant joins from. */
  site: string;
  /** Connected to the hearing now. */
  present: boolean;
  /** Self-reported microphone state. */
  audio: boolean;
  /** Self-reported camera state. */
  video: boolean;
}

export type ClientMessage =
  | { type: 'join'; v: number; token: string }
  | { type: 'offer'; sdp: string }
  | { type: 'answer'; sdp: string }
  | { type: 'candidate'; candidate: IceCandidate }
  | { type: 'media_state'; audio: boolean; video: boolean }
  | { type: 'ping'; id: number }
  | { type: 'leave' };

/** Every error code of the protocol (`ErrorCode::ALL` in signaling/src/protocol.rs), in order;
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
  'invalid_sdp',
  'invalid_candidate',
  'no_offer_pending',
  'negotiation_conflict',
  'negotiation_timeout',
  'publish_not_allowed',
  'replaced',
  'server_shutdown',
  'internal',
] as const;

export type ErrorCode = (typeof ALL_ERROR_CODES)[number];

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
];

export type ParticipantLeftReason = 'left' | 'connection_lost' | 'replaced' | string;

export type ServerMessage =
  | {
      type: 'welcome';
      v: number;
      you: ParticipantInfo;
      hearing: HearingInfo;
      participants: ParticipantInfo[];
      max_message_bytes: number;
      can_publish: boolean;
    }
  | { type: 'participant_joined'; participant: ParticipantInfo }
  | { type: 'participant_updated'; participant: ParticipantInfo }
  | { type: 'participant_left'; participant_id: string; reason: ParticipantLeftReason }
  | { type: 'answer'; sdp: string }
  | { type: 'offer'; sdp: string }
  | { type: 'candidate'; candidate: IceCandidate }
  | { type: 'pong'; id: number }
  | { type: 'error'; code: ErrorCode | string; message: string; fatal: boolean };
