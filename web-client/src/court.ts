// Court-workflow logic without DOM: grouping participants by site, which console
// controls a participant's permissions allow, the hearing-state banner text.
// Pure functions, unit-tested in node (test/unit.test.mjs).
import { roleName, t, type Lang, type MessageKey, getLang } from './i18n.js';
import {
  ALL_ROLES,
  ALL_SITE_KINDS,
  canMoveTo,
  mediaFlows,
  type Action,
  type ConsultationRequest,
  type HearingInfo,
  type HearingState,
  type HearingStatus,
  type ParticipantInfo,
  type Role,
  type RoomInfo,
  type RoomKind,
  type SiteKind,
} from './protocol.js';

/** Position of a role in court order (unknown roles last). */
export function roleRank(role: Role | string): number {
  const i = (ALL_ROLES as readonly string[]).indexOf(role);
  return i < 0 ? ALL_ROLES.length : i;
}

function siteKindRank(kind: SiteKind | string): number {
  const i = (ALL_SITE_KINDS as readonly string[]).indexOf(kind);
  return i < 0 ? ALL_SITE_KINDS.length : i;
}

export function byCourtOrder(a: ParticipantInfo, b: ParticipantInfo): number {
  return roleRank(a.role) - roleRank(b.role) || a.name.localeCompare(b.name, 'vi') || a.id.localeCompare(b.id);
}

export interface SiteGroup {
  site: string;
  kind: SiteKind;
  members: ParticipantInfo[];
}

/**
 * Participants grouped by site (điểm cầu): the courtroom first, then by kind of site,
 * then by the highest-ranking role present, then by name. Members in court order.
 */
export function groupBySite(list: readonly ParticipantInfo[]): SiteGroup[] {
  const groups = new Map<string, SiteGroup>();
  for (const p of list) {
    const key = p.site;
    let g = groups.get(key);
    if (!g) {
      g = { site: p.site, kind: p.site_kind, members: [] };
      groups.set(key, g);
    } else if (siteKindRank(p.site_kind) < siteKindRank(g.kind)) {
      g.kind = p.site_kind;
    }
    g.members.push(p);
  }
  const out = [...groups.values()];
  for (const g of out) g.members.sort(byCourtOrder);
  const top = (g: SiteGroup) => Math.min(...g.members.map((m) => roleRank(m.role)));
  out.sort(
    (a, b) => siteKindRank(a.kind) - siteKindRank(b.kind) || top(a) - top(b) || a.site.localeCompare(b.site, 'vi'),
  );
  return out;
}

/** Roles that wait to be called in (default `[workflow] call_in_roles`). */
export const CALL_IN_ROLES: readonly Role[] = ['witness', 'expert'];

/** Participants waiting in the lobby now, longest-waiting first. */
export function lobbyWaiting(list: readonly ParticipantInfo[]): ParticipantInfo[] {
  return list
    .filter((p) => p.present && p.admission === 'lobby')
    .sort((a, b) => (a.lobby_since ?? '').localeCompare(b.lobby_since ?? '') || byCourtOrder(a, b));
}

/** A control on one participant, named as its data-testid prefix (`mute-<id>`, ...). */
export type ParticipantControl = 'admit' | 'deny' | 'call-in' | 'dismiss' | 'mute' | 'request-unmute' | 'spotlight' | 'remove';

/**
 * The controls `perms` allow on `target`. Lobby controls (admit, call-in, deny) are
 * for someone waiting in the lobby; the others for someone in the room. The server
 * checks every request anyway; this only hides what would be refused.
 */
export function participantControls(
  perms: readonly Action[],
  target: ParticipantInfo,
  selfId: string | null,
): ParticipantControl[] {
  const can = (a: Action) => perms.includes(a);
  const out: ParticipantControl[] = [];
  if (target.admission === 'removed') return out;
  if (target.id === selfId) {
    if (target.admission === 'admitted' && can('spotlight')) out.push('spotlight');
    return out;
  }
  const callIn = CALL_IN_ROLES.includes(target.role);
  if (target.admission === 'lobby') {
    if (callIn ? can('call_witness') : can('admit')) out.push(callIn ? 'call-in' : 'admit');
    if (can('deny')) out.push('deny');
  } else {
    if (can('mute_others') && target.role !== 'observer') out.push(target.muted ? 'request-unmute' : 'mute');
    if (can('spotlight')) out.push('spotlight');
    if (callIn && can('call_witness')) out.push('dismiss');
  }
  if (can('remove')) out.push('remove');
  return out;
}

/** A lifecycle button, named as its data-testid suffix (`state-<control>`). */
export type LifecycleControl = 'open' | 'start' | 'suspend' | 'resume' | 'adjourn' | 'close';

export const LIFECYCLE_CONTROLS: readonly LifecycleControl[] = ['open', 'start', 'suspend', 'resume', 'adjourn', 'close'];

const LIFECYCLE_TARGET: Record<LifecycleControl, HearingState> = {
  open: 'open',
  start: 'in_session',
  suspend: 'suspended',
  resume: 'in_session',
  adjourn: 'adjourned',
  close: 'closed',
};

export function lifecycleTarget(c: LifecycleControl): HearingState {
  return LIFECYCLE_TARGET[c];
}

/** The lifecycle buttons to show in `state` (none without `control_lifecycle`). */
export function lifecycleControls(perms: readonly Action[], state: HearingState): LifecycleControl[] {
  if (!perms.includes('control_lifecycle')) return [];
  return LIFECYCLE_CONTROLS.filter((c) => {
    const to = LIFECYCLE_TARGET[c];
    if (!canMoveTo(state, to)) return false;
    // in_session is reached by "start" from open and by "resume" from suspended.
    if (c === 'start') return state === 'open';
    if (c === 'resume') return state === 'suspended';
    return true;
  });
}

/** What a lifecycle move needs from the user besides a click. */
export function lifecycleNeeds(c: LifecycleControl): { reason: boolean; date: boolean; confirm: boolean } {
  return { reason: c === 'suspend' || c === 'adjourn', date: c === 'adjourn', confirm: c === 'close' };
}

/** Which console sections a participant with `perms` sees. */
export function consoleSections(perms: readonly Action[]): {
  lobby: boolean;
  participants: boolean;
  lifecycle: boolean;
  lock: boolean;
  muteAll: boolean;
  rooms: boolean;
} {
  const can = (a: Action) => perms.includes(a);
  const lobby = can('admit') || can('deny') || can('call_witness');
  const lifecycle = can('control_lifecycle');
  const rooms = can('approve_consultation') || can('deliberate');
  return {
    lobby,
    lifecycle,
    lock: can('lock'),
    muteAll: can('mute_others'),
    rooms,
    participants: lobby || lifecycle || rooms || can('mute_others') || can('remove') || can('lock') || can('spotlight'),
  };
}

/** `iso` as a local date and time in `lang`; the raw text when it is not a date. */
export function formatDateTime(iso: string, lang: Lang = getLang()): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  return d.toLocaleString(lang === 'vi' ? 'vi-VN' : 'en-GB', {
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
  });
}

/** "09:05 (12 min)" for a lobby entry waiting since `iso`. */
export function waitingSince(iso: string | undefined, nowMs: number, lang: Lang = getLang()): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const time = d.toLocaleTimeString(lang === 'vi' ? 'vi-VN' : 'en-GB', { hour: '2-digit', minute: '2-digit' });
  const minutes = Math.max(0, Math.floor((nowMs - d.getTime()) / 60000));
  return t('lobby.since', { time, n: minutes }, lang);
}

export interface StateBanner {
  state: HearingState;
  /** "Phiên tòa tạm ngừng" */
  title: string;
  /** The court's reason, verbatim (empty when none). */
  reason: string;
  /** Further facts: the new date, the scheduled time, that media waits, the lock. */
  details: string[];
  /** Who has the floor, "Name (role)", or null. */
  floor: string | null;
  /** The whole banner as one line: "Phiên tòa tạm ngừng: <reason>". */
  text: string;
}

/** The hearing-state banner everyone sees (lobby included). */
export function stateBanner(
  status: HearingStatus,
  hearing: Pick<HearingInfo, 'scheduled_at'>,
  people: readonly ParticipantInfo[],
  lang: Lang = getLang(),
): StateBanner {
  const title = t(`state.${status.state}` as MessageKey, {}, lang);
  const reason = (status.reason ?? '').trim();
  const details: string[] = [];
  if (status.state === 'adjourned' && status.adjourned_to) {
    details.push(t('state.adjournedTo', { date: formatDateTime(status.adjourned_to, lang) }, lang));
  }
  if (status.state === 'scheduled' && hearing.scheduled_at) {
    details.push(t('state.scheduledAt', { date: formatDateTime(hearing.scheduled_at, lang) }, lang));
  }
  if (status.state === 'scheduled' || status.state === 'adjourned') details.push(t('state.waitMedia', {}, lang));
  if (status.locked && status.state !== 'closed') details.push(t('state.locked', {}, lang));
  let floor: string | null = null;
  if (status.spotlight && mediaFlows(status.state)) {
    const p = people.find((x) => x.id === status.spotlight);
    floor = p ? `${p.name} (${roleName(p.role, lang)})` : null;
  }
  const text = reason ? `${title}: ${reason}` : title;
  return { state: status.state, title, reason, details, floor, text };
}

// ---------------------------------------------------------------- private rooms

/** The private rooms in `status` (none when the server sent none). */
export function roomsOf(status: Pick<HearingStatus, 'rooms'> | null | undefined): RoomInfo[] {
  return status?.rooms ?? [];
}

/** The private room `pid` is in, or null for the hearing room. */
export function roomOf(status: Pick<HearingStatus, 'rooms'> | null | undefined, pid: string | null | undefined): RoomInfo | null {
  if (!pid) return null;
  return roomsOf(status).find((r) => r.members.includes(pid)) ?? null;
}

/** Milliseconds since `iso` (0 when in the future or not a date). */
export function elapsedMs(iso: string | undefined, nowMs: number): number {
  const at = iso ? Date.parse(iso) : NaN;
  return Number.isNaN(at) ? 0 : Math.max(0, nowMs - at);
}

/** "mm:ss", or "h:mm:ss" from an hour on. */
export function formatDuration(ms: number): string {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const two = (n: number) => String(n).padStart(2, '0');
  return h > 0 ? `${h}:${two(m)}:${two(s)}` : `${two(m)}:${two(s)}`;
}

/** A consultation request waiting between `a` and `b` (either asked), if any. */
export function pendingConsultation(
  status: Pick<HearingStatus, 'consultation_requests'> | null | undefined,
  a: string,
  b: string,
): ConsultationRequest | null {
  return (
    (status?.consultation_requests ?? []).find((r) => (r.from === a && r.with === b) || (r.from === b && r.with === a)) ??
    null
  );
}

/**
 * Whom `self` may ask for a private consultation: only a defendant with a defence
 * counsel of the same (set) party, or the other way round; both admitted and in the
 * hearing room (no private room), the partner connected. Needs `request_consultation`.
 * The server checks the same rules; this only hides requests it would refuse.
 */
export function consultationPartners(
  perms: readonly Action[],
  self: ParticipantInfo | null,
  others: readonly ParticipantInfo[],
  status: Pick<HearingStatus, 'rooms'> | null | undefined,
): ParticipantInfo[] {
  if (!self || !perms.includes('request_consultation')) return [];
  const partnerRole: Role | null =
    self.role === 'defendant' ? 'defence_counsel' : self.role === 'defence_counsel' ? 'defendant' : null;
  if (!partnerRole || !self.party || self.admission !== 'admitted' || roomOf(status, self.id)) return [];
  return others
    .filter(
      (p) =>
        p.id !== self.id &&
        p.role === partnerRole &&
        p.party === self.party &&
        p.admission === 'admitted' &&
        p.present &&
        !roomOf(status, p.id),
    )
    .sort(byCourtOrder);
}

/** Someone the viewer cannot hear or see because one of them is in a private room. */
export interface Away {
  participant: ParticipantInfo;
  room: RoomInfo;
  kind: RoomKind;
  /** Time in the room so far. */
  ms: number;
  /** `ms` as "mm:ss". */
  duration: string;
}

/**
 * Participants who are in a private room the viewer `selfId` is not in, in court
 * order, with how long they have been away. (Seen from the hearing room: who is in
 * consultation or deliberating; seen from a private room: those in other rooms.)
 */
export function awayList(
  status: Pick<HearingStatus, 'rooms'> | null | undefined,
  people: readonly ParticipantInfo[],
  selfId: string | null,
  nowMs: number,
): Away[] {
  const out: Away[] = [];
  for (const p of people) {
    if (p.id === selfId) continue;
    const room = roomOf(status, p.id);
    if (!room || (selfId && room.members.includes(selfId))) continue;
    const ms = elapsedMs(room.since, nowMs);
    out.push({ participant: p, room, kind: room.kind, ms, duration: formatDuration(ms) });
  }
  return out.sort((a, b) => byCourtOrder(a.participant, b.participant));
}

/** Whether the viewer can hear and see `pid` as far as private rooms go: both in the
 * hearing room or both in the same private room. */
export function sameRoom(status: Pick<HearingStatus, 'rooms'> | null | undefined, selfId: string | null, pid: string): boolean {
  return (roomOf(status, selfId)?.id ?? null) === (roomOf(status, pid)?.id ?? null);
}

/** The banner a member of a private room sees. */
export interface PrivateRoomBanner {
  kind: RoomKind;
  roomId: string;
  /** "Đang trao đổi riêng — không ai khác nghe được" */
  title: string;
  /** The other members, "Name (role)", comma-separated. */
  with: string;
  duration: string;
}

export function privateRoomBanner(
  status: Pick<HearingStatus, 'rooms'> | null | undefined,
  people: readonly ParticipantInfo[],
  selfId: string | null,
  nowMs: number,
  lang: Lang = getLang(),
): PrivateRoomBanner | null {
  const room = roomOf(status, selfId);
  if (!room) return null;
  const names = room.members
    .filter((id) => id !== selfId)
    .map((id) => people.find((p) => p.id === id))
    .filter((p): p is ParticipantInfo => !!p)
    .sort(byCourtOrder)
    .map((p) => `${p.name} (${roleName(p.role, lang)})`)
    .join(', ');
  return {
    kind: room.kind,
    roomId: room.id,
    title: t(room.kind === 'consultation' ? 'room.consultationBanner' : 'room.deliberationBanner', {}, lang),
    with: names,
    duration: formatDuration(elapsedMs(room.since, nowMs)),
  };
}

/** The panel's deliberation, as someone outside it sees it (null when none, or when
 * `selfId` is in it). */
export function deliberationWaiting(
  status: Pick<HearingStatus, 'rooms'> | null | undefined,
  selfId: string | null,
  nowMs: number,
  lang: Lang = getLang(),
): { roomId: string; text: string; duration: string } | null {
  const room = roomsOf(status).find((r) => r.kind === 'deliberation');
  if (!room || (selfId && room.members.includes(selfId))) return null;
  const duration = formatDuration(elapsedMs(room.since, nowMs));
  return { roomId: room.id, text: t('room.panelDeliberating', {}, lang), duration };
}

/** The console's private-room controls `perms` allow now. */
export function roomControls(
  perms: readonly Action[],
  status: Pick<HearingStatus, 'rooms' | 'state'> | null | undefined,
): { requests: boolean; recall: boolean; startDeliberation: boolean; endDeliberation: boolean } {
  const approve = perms.includes('approve_consultation');
  const deliberate = perms.includes('deliberate');
  const deliberating = roomsOf(status).some((r) => r.kind === 'deliberation');
  const open = !!status && status.state !== 'closed';
  return {
    requests: approve,
    recall: approve,
    startDeliberation: deliberate && open && !deliberating,
    endDeliberation: deliberate && deliberating,
  };
}

/** A consultation request as the judge's list shows it. */
export interface RequestEntry {
  request: ConsultationRequest;
  /** "Trần Văn B (Bị cáo) đề nghị trao đổi riêng với Lê Thị C (Người bào chữa)" */
  text: string;
  party: string;
}

/** Waiting consultation requests, oldest first. */
export function consultationRequestEntries(
  status: Pick<HearingStatus, 'consultation_requests'> | null | undefined,
  people: readonly ParticipantInfo[],
  lang: Lang = getLang(),
): RequestEntry[] {
  const label = (id: string) => {
    const p = people.find((x) => x.id === id);
    return p ? `${p.name} (${roleName(p.role, lang)})` : id;
  };
  return [...(status?.consultation_requests ?? [])]
    .sort((a, b) => a.since.localeCompare(b.since) || a.id.localeCompare(b.id))
    .map((request) => ({
      request,
      text: t('room.requestEntry', { from: label(request.from), with: label(request.with) }, lang),
      party: people.find((x) => x.id === request.from)?.party ?? '',
    }));
}

/** The notice a participant gets when a private room they were in ended, or their
 * consultation request was refused. */
export function roomNotice(
  event: { reason: string; kind: RoomKind } | { refused: true },
  lang: Lang = getLang(),
): string {
  if ('refused' in event) return t('room.notice.refused', {}, lang);
  const { reason, kind } = event;
  if (reason === 'hearing_closed') return t('state.closed', {}, lang);
  if (kind === 'deliberation') return t('room.notice.deliberationEnded', {}, lang);
  switch (reason) {
    case 'recalled':
      return t('room.notice.recalled', {}, lang);
    case 'dissolved':
      return t('room.notice.dissolved', {}, lang);
    default:
      return t('room.notice.ended', {}, lang);
  }
}
