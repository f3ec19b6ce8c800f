// Media health as the page shows it, pure (no DOM; unit-tested): the server's
// `media_health` cells laid out as a matrix, the text of an integrity alert and the
// pre-filled reason of its one-click suspension, and whether this participant's own
// reception of the presiding judge failed (from the server's cells of what it
// receives, or from this page's own counters when the server cannot reach it).
// healthView.ts draws it.
import { t, type Lang } from './i18n.js';
import type { HealthCell, HealthGrade, IntegrityAlert, ParticipantInfo } from './protocol';
import type { Expected, InboundCounters } from './reception';

/** One alert per (publisher, subscriber, kind). */
export function alertKey(a: Pick<IntegrityAlert, 'publisher' | 'subscriber' | 'kind'>): string {
  return `${a.publisher}-${a.subscriber}-${a.kind}`;
}

/** Keeps the raised alerts: a `raised` one is added, a `cleared` one removed. */
export function applyAlert(alerts: Map<string, IntegrityAlert>, a: IntegrityAlert): void {
  if (a.state === 'raised') alerts.set(alertKey(a), a);
  else alerts.delete(alertKey(a));
}

/** How a participant is named to the bench: their site when they have one (a
 * detention facility), else their name. */
export function placeName(p: ParticipantInfo | undefined, fallback: string): string {
  if (!p) return fallback;
  return p.site.trim() ? p.site : p.name;
}

/** "Mất kết nối với Trại tạm giam số 1: chủ tọa không nghe được …". */
export function alertText(a: IntegrityAlert, people: ParticipantInfo[], lang?: Lang): string {
  const party = people.find((p) => p.id === a.participant_id);
  const name = placeName(party, a.participant_id);
  if (a.state === 'cleared') return t('health.alertCleared', { name }, lang);
  const what = t(a.kind === 'video' ? 'health.see' : 'health.hear', {}, lang);
  // The party is the subscriber: they do not get the judge's media.
  const key = a.subscriber === a.participant_id ? 'health.alertJudgeLost' : 'health.alertPartyLost';
  return t(key, { name, what }, lang);
}

/** The reason the one-click suspension fills in. */
export function suspendReason(a: IntegrityAlert, people: ParticipantInfo[], lang?: Lang): string {
  const party = people.find((p) => p.id === a.participant_id);
  return t('health.suspendReason', { name: placeName(party, a.participant_id) }, lang);
}

/** The matrix: publishers as rows, subscribers as columns, in the order given. */
export interface MatrixLayout {
  publishers: string[];
  subscribers: string[];
  cell(publisher: string, subscriber: string): HealthCell | null;
}

export function matrixLayout(cells: HealthCell[], order: string[]): MatrixLayout {
  const rank = (id: string) => {
    const i = order.indexOf(id);
    return i < 0 ? order.length : i;
  };
  const uniq = (ids: string[]) => [...new Set(ids)].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  const byPair = new Map(cells.map((c) => [`${c.publisher}/${c.subscriber}`, c]));
  return {
    publishers: uniq(cells.map((c) => c.publisher)),
    subscribers: uniq(cells.map((c) => c.subscriber)),
    cell: (p, s) => byPair.get(`${p}/${s}`) ?? null,
  };
}

/** What of the presiding judge this participant does not get. */
export interface OwnReception {
  cannotHear: boolean;
  cannotSee: boolean;
}

/** From the server's cells: the judge → this participant cell is lost. */
export function ownReception(cells: HealthCell[], selfId: string | null, judgeId: string | null): OwnReception {
  const c = cells.find((x) => x.publisher === judgeId && x.subscriber === selfId);
  return { cannotHear: c?.audio === 'lost', cannotSee: c?.video === 'lost' };
}

/** From this page's own counters between two samples: an expected kind of which
 * not one packet arrived. */
export function localLoss(prev: InboundCounters, cur: InboundCounters, expected: Expected): OwnReception {
  return {
    cannotHear: expected.audio && cur.audio.packetsReceived <= prev.audio.packetsReceived,
    cannotSee: expected.video && cur.video.packetsReceived <= prev.video.packetsReceived,
  };
}

/** The grade a cell shows for a kind (`none`: nothing expected). */
export function cellGrade(c: HealthCell | null, kind: 'audio' | 'video'): HealthGrade | 'none' {
  return c?.[kind] ?? 'none';
}
