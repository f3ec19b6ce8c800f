// Media health on the page (health.ts decides, this draws): the console's matrix of
// who sees and hears whom (`health-matrix`, one cell per pair with `data-audio` /
// `data-video`), the integrity alerts in the state banner with their one-click
// suspension, and the notice a participant gets when they do not get the presiding
// judge's sound or picture.
import { h } from './dom';
import { alertText, cellGrade, matrixLayout, ownReception, placeName, suspendReason } from './health';
import { t } from './i18n';
import type { CourtCommand, HealthGrade, IntegrityAlert, Role } from './protocol';
import { everyone, selfId, state } from './state';

const GRADE_TEXT: Record<HealthGrade | 'none', 'health.ok' | 'health.degraded' | 'health.lost' | 'health.none'> = {
  ok: 'health.ok',
  degraded: 'health.degraded',
  lost: 'health.lost',
  none: 'health.none',
};

/** The matrix: a row per publisher, a column per subscriber. */
export function healthMatrix(): HTMLElement {
  const people = everyone();
  const name = (id: string) => placeName(people.find((p) => p.id === id), id.slice(0, 8));
  const m = matrixLayout(
    state.health,
    people.map((p) => p.id),
  );
  const table = h('table', { class: 'health-matrix', testid: 'health-matrix' });
  table.append(
    h('caption', { text: t('health.heading') }),
    h(
      'tr',
      {},
      h('th', { text: t('health.publisher'), attrs: { scope: 'col' } }),
      ...m.subscribers.map((s) => h('th', { text: name(s), attrs: { scope: 'col' } })),
    ),
  );
  for (const p of m.publishers) {
    const row = h('tr', {}, h('th', { text: name(p), attrs: { scope: 'row' } }));
    for (const s of m.subscribers) {
      const c = m.cell(p, s);
      const audio = cellGrade(c, 'audio');
      const video = cellGrade(c, 'video');
      const td = h('td', {
        class: 'health-cell',
        testid: `health-${p}-${s}`,
        text: c ? `${t('health.audio')} ${t(GRADE_TEXT[audio])} · ${t('health.video')} ${t(GRADE_TEXT[video])}` : '',
      });
      td.dataset.audio = audio;
      td.dataset.video = video;
      row.append(td);
    }
    table.append(row);
  }
  return table;
}

/** The raised alerts, one notice per party (and the last recovery), each with a
 * one-click suspension for whoever may suspend. */
export function integrityNotices(command: (msg: CourtCommand) => void): Node[] {
  const people = everyone();
  const maySuspend = state.permissions.includes('control_lifecycle') && state.hearingStatus?.state === 'in_session';
  const out: Node[] = [];
  // One notice per party, naming everything lost between them and the judge.
  const byParty = new Map<string, IntegrityAlert[]>();
  for (const a of state.integrityAlerts.values()) {
    byParty.set(a.participant_id, [...(byParty.get(a.participant_id) ?? []), a]);
  }
  for (const [party, list] of byParty) {
    const a = list[0];
    const text = list.map((x) => alertText(x, people)).join('; ');
    const notice = h('span', { class: 'recording-alert', testid: 'integrity-alert', text });
    notice.dataset.participant = party;
    notice.dataset.kind = [...new Set(list.map((x) => x.kind))].sort().join(' ');
    notice.dataset.state = 'raised';
    if (maySuspend) {
      const reason = suspendReason(a, people);
      const b = h('button', {
        class: 'btn danger',
        testid: `integrity-suspend-${a.participant_id}`,
        attrs: { type: 'button', title: reason },
        on: { click: () => command({ type: 'set_state', state: 'suspended', reason }) },
      });
      b.textContent = t('health.suspend');
      notice.append(' ', b);
    }
    out.push(notice);
  }
  const cleared = state.integrityCleared;
  if (out.length === 0 && cleared) {
    const notice = h('span', { class: 'state-detail', testid: 'integrity-alert', text: alertText(cleared, people) });
    notice.dataset.participant = cleared.participant_id;
    notice.dataset.state = 'cleared';
    out.push(notice);
  }
  return out;
}

/** "Bạn không nghe được chủ tọa" when this participant does not get the presiding
 * judge's sound (or picture), by the server's word or this page's own counters. */
export function receptionNotice(): Node | null {
  const judge = everyone().find((p) => p.role === ('presiding_judge' satisfies Role) && p.id !== selfId());
  if (!judge || state.me.role === 'presiding_judge') return null;
  const server = ownReception(state.health, selfId(), judge.id);
  const hear = server.cannotHear || state.localJudgeLoss.cannotHear;
  const see = server.cannotSee || state.localJudgeLoss.cannotSee;
  if (!hear && !see) return null;
  const text = [hear ? t('health.youCannotHear') : null, see ? t('health.youCannotSee') : null]
    .filter((x) => x !== null)
    .join('. ');
  const el = h('span', { class: 'recording-alert', testid: 'reception-notice', text });
  el.dataset.audio = String(!hear);
  el.dataset.video = String(!see);
  return el;
}
