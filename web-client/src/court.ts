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
  type HearingInfo,
  type HearingState,
  type HearingStatus,
  type ParticipantInfo,
  type Role,
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
} {
  const can = (a: Action) => perms.includes(a);
  const lobby = can('admit') || can('deny') || can('call_witness');
  const lifecycle = can('control_lifecycle');
  return {
    lobby,
    lifecycle,
    lock: can('lock'),
    muteAll: can('mute_others'),
    participants: lobby || lifecycle || can('mute_others') || can('remove') || can('lock') || can('spotlight'),
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
