// The court console (the judge's and clerk's side panel): lifecycle buttons with the
// reason and adjournment date, lock and mute-all, the lobby with admit / call in /
// deny, the private-rooms section (rooms.ts) and every participant grouped by site
// with their controls. Which sections and buttons exist follows the permissions
// (court.ts, pure); the server checks anyway. The console is built once per hearing
// screen and its lists are rebuilt only when what they show changed. Commands go out
// through the hearing screen's `send`; remove and close ask first in an in-page dialog.
import {
  awayList,
  CALL_IN_ROLES,
  consoleSections,
  groupBySite,
  lifecycleControls,
  lifecycleNeeds,
  lifecycleTarget,
  lobbyWaiting,
  participantControls,
  roomOf,
  waitingSince,
  type LifecycleControl,
  type ParticipantControl,
} from './court';
import { h, icon } from './dom';
import { healthMatrix } from './healthView';
import { getLang, roleName, t, type MessageKey } from './i18n';
import type { ParticipantInfo, RoomKind } from './protocol';
import { makeRoomsConsole, renderRoomsConsole, type RoomsConsole, type Send } from './rooms';
import { everyone, state } from './state';
import { bind, tr } from './ui';

export interface ConsoleView {
  root: HTMLElement;
  lifecycleButtons: Map<LifecycleControl, HTMLButtonElement>;
  reason: HTMLInputElement;
  date: HTMLInputElement;
  dateLabel: HTMLElement;
  hint: HTMLElement;
  lock: HTMLButtonElement | null;
  lobbyTitle: HTMLElement | null;
  admitAll: HTMLButtonElement | null;
  lobbyList: HTMLElement | null;
  participantList: HTMLElement;
  /** Who sees and hears whom (healthView.ts). */
  health: HTMLElement;
  rooms: RoomsConsole | null;
  /** What the lists show, to rebuild them only when that changes. */
  signature: string;
  send: Send;
  /** The hearing screen's dialog backdrop (for confirmations). */
  dialog: HTMLElement;
}

const LIFECYCLE_KEYS: Record<LifecycleControl, MessageKey> = {
  open: 'console.open',
  start: 'console.start',
  suspend: 'console.suspend',
  resume: 'console.resume',
  adjourn: 'console.adjourn',
  close: 'console.close',
};

export function makeConsole(send: Send, dialog: HTMLElement): ConsoleView {
  const sections = consoleSections(state.permissions);
  const root = h('aside', { class: 'console', testid: 'console' });
  bind(() => root.setAttribute('aria-label', t('console.heading')));
  root.append(tr(h('h2'), 'console.heading'));

  const lifecycleButtons = new Map<LifecycleControl, HTMLButtonElement>();
  const reason = h('input', {
    class: 'input',
    testid: 'state-reason-input',
    attrs: { type: 'text', maxlength: '500', autocomplete: 'off' },
  });
  bind(() => (reason.placeholder = t('console.reasonPlaceholder')));
  const date = h('input', { class: 'input', testid: 'adjourn-date-input', attrs: { type: 'datetime-local' } });
  const dateLabel = h('label', { class: 'field' }, tr(h('span'), 'console.adjournDate'), date);
  const hint = h('p', { class: 'error', attrs: { role: 'alert' } });
  hint.hidden = true;
  const cv: ConsoleView = {
    root,
    lifecycleButtons,
    reason,
    date,
    dateLabel,
    hint,
    lock: null,
    lobbyTitle: null,
    admitAll: null,
    lobbyList: null,
    participantList: h('div', { class: 'site-groups', testid: 'participant-list' }),
    health: h('div', { class: 'health' }),
    rooms: null,
    signature: '',
    send,
    dialog,
  };
  if (sections.lifecycle) {
    const lifecycle = h('section', { class: 'console-section lifecycle' });
    const row = h('div', { class: 'button-row' });
    for (const c of ['open', 'start', 'suspend', 'resume', 'adjourn', 'close'] as const) {
      const btn = h('button', {
        class: 'btn small' + (c === 'close' ? ' danger' : c === 'open' || c === 'start' || c === 'resume' ? ' primary' : ''),
        testid: `state-${c}`,
        attrs: { type: 'button' },
        on: { click: () => lifecycleClick(cv, c) },
      });
      tr(btn, LIFECYCLE_KEYS[c]);
      lifecycleButtons.set(c, btn);
      row.append(btn);
    }
    lifecycle.append(h('label', { class: 'field' }, tr(h('span'), 'console.reason'), reason), dateLabel, row, hint);
    root.append(lifecycle);
  }

  if (sections.lock || sections.muteAll) {
    const row = h('div', { class: 'button-row' });
    if (sections.lock) {
      cv.lock = h('button', {
        class: 'btn small',
        testid: 'lock-toggle',
        attrs: { type: 'button' },
        on: { click: () => send({ type: 'lock', locked: !state.hearingStatus?.locked }) },
      });
      row.append(cv.lock);
    }
    if (sections.muteAll) {
      const muteAll = h('button', {
        class: 'btn small',
        testid: 'mute-all',
        attrs: { type: 'button' },
        on: { click: () => send({ type: 'mute_all' }) },
      });
      tr(muteAll, 'console.muteAll');
      row.append(muteAll);
    }
    root.append(h('section', { class: 'console-section' }, row));
  }

  if (sections.lobby) {
    cv.lobbyTitle = h('h3');
    cv.lobbyList = h('ul', { class: 'plist', testid: 'lobby-list' });
    const lobbySection = h('section', { class: 'console-section' }, cv.lobbyTitle);
    if (state.permissions.includes('admit')) {
      cv.admitAll = h('button', {
        class: 'btn small primary',
        testid: 'admit-all',
        attrs: { type: 'button' },
        on: { click: () => send({ type: 'admit_all' }) },
      });
      tr(cv.admitAll, 'lobby.admitAll');
      lobbySection.append(cv.admitAll);
    }
    lobbySection.append(cv.lobbyList);
    root.append(lobbySection);
  }

  // Private rooms: consultation requests, rooms in use (recall), deliberation.
  if (sections.rooms) {
    cv.rooms = makeRoomsConsole(send);
    root.append(cv.rooms.section);
  }

  root.append(h('section', { class: 'console-section' }, tr(h('h3'), 'console.participants'), cv.participantList));
  root.append(h('section', { class: 'console-section' }, tr(h('h3'), 'health.heading'), cv.health));
  renderHealth(cv);
  return cv;
}

/** Redraws the media-health matrix from `state.health`. */
export function renderHealth(cv: ConsoleView): void {
  cv.health.replaceChildren(healthMatrix());
}

function lifecycleClick(cv: ConsoleView, c: LifecycleControl): void {
  const needs = lifecycleNeeds(c);
  const reason = cv.reason.value.trim();
  const showHint = (key: MessageKey) => {
    cv.hint.textContent = t(key);
    cv.hint.hidden = false;
  };
  cv.hint.hidden = true;
  if (needs.reason && !reason) return showHint('console.needReason');
  let adjourned_to: string | undefined;
  if (needs.date) {
    const d = new Date(cv.date.value);
    if (!cv.date.value || Number.isNaN(d.getTime())) return showHint('console.needDate');
    adjourned_to = d.toISOString();
  }
  const send = () => {
    cv.send({
      type: 'set_state',
      state: lifecycleTarget(c),
      ...(reason ? { reason } : {}),
      ...(adjourned_to ? { adjourned_to } : {}),
    });
    cv.reason.value = '';
    cv.date.value = '';
  };
  if (needs.confirm) askConfirm(cv.dialog, t('confirm.close'), false, send);
  else send();
}

/** An in-page confirmation (headless tests can drive it; no window.confirm). */
function askConfirm(d: HTMLElement, text: string, withReason: boolean, onYes: (reason: string) => void): void {
  const reason = h('input', { class: 'input', testid: 'confirm-reason', attrs: { type: 'text', maxlength: '500' } });
  const close = () => {
    d.hidden = true;
    d.replaceChildren();
  };
  const yes = h('button', {
    class: 'btn danger',
    testid: 'confirm-yes',
    attrs: { type: 'button' },
    text: t('confirm.yes'),
    on: {
      click: () => {
        const r = reason.value.trim();
        close();
        onYes(r);
      },
    },
  });
  const no = h('button', { class: 'btn', testid: 'confirm-no', attrs: { type: 'button' }, text: t('confirm.no'), on: { click: close } });
  d.replaceChildren(
    h(
      'div',
      { class: 'dialog', testid: 'confirm-dialog', attrs: { role: 'alertdialog', 'aria-modal': 'true' } },
      h('p', { testid: 'confirm-text', text }),
      withReason ? h('label', { class: 'field' }, h('span', { text: t('confirm.reason') }), reason) : null,
      h('div', { class: 'button-row' }, no, yes),
    ),
  );
  d.hidden = false;
  no.focus();
}

const CONTROL_KEYS: Record<ParticipantControl, MessageKey> = {
  admit: 'lobby.admit',
  deny: 'lobby.deny',
  'call-in': 'lobby.callIn',
  dismiss: 'console.dismiss',
  mute: 'console.mute',
  'request-unmute': 'console.requestUnmute',
  spotlight: 'console.spotlight',
  remove: 'console.remove',
};

function controlButton(cv: ConsoleView, c: ParticipantControl, p: ParticipantInfo): HTMLButtonElement {
  const locked = !!state.hearingStatus?.locked;
  const spotlit = state.hearingStatus?.spotlight === p.id;
  const send = cv.send;
  const run: Record<ParticipantControl, () => void> = {
    admit: () => send({ type: 'admit', participant_id: p.id }),
    deny: () => send({ type: 'deny', participant_id: p.id }),
    'call-in': () => send({ type: 'call_in', participant_id: p.id }),
    dismiss: () => send({ type: 'dismiss', participant_id: p.id }),
    mute: () => send({ type: 'mute', participant_id: p.id }),
    'request-unmute': () => send({ type: 'request_unmute', participant_id: p.id }),
    spotlight: () => send({ type: 'spotlight', participant_id: spotlit ? null : p.id }),
    remove: () =>
      askConfirm(cv.dialog, t('confirm.remove', { name: p.name }), true, (reason) =>
        send({ type: 'remove', participant_id: p.id, ...(reason ? { reason } : {}) }),
      ),
  };
  const danger = c === 'remove' || c === 'deny';
  const primary = c === 'admit' || c === 'call-in';
  const btn = h('button', {
    class: 'btn small' + (danger ? ' danger' : primary ? ' primary' : ''),
    testid: `${c}-${p.id}`,
    attrs: { type: 'button' },
    text: c === 'spotlight' && spotlit ? t('console.unspotlight') : t(CONTROL_KEYS[c]),
    on: { click: run[c] },
  });
  if (c === 'spotlight') btn.setAttribute('aria-pressed', String(spotlit));
  if ((c === 'admit' || c === 'call-in') && locked) {
    btn.disabled = true;
    btn.title = t('state.locked');
  }
  return btn;
}

function personText(p: ParticipantInfo, self: boolean): HTMLElement {
  return h(
    'div',
    { class: 'person' },
    h('strong', { text: self ? `${p.name} (${t('console.you')})` : p.name }),
    h('span', { class: 'muted', text: ` · ${roleName(p.role)}` }),
  );
}

/** Rebuilds the console's lists when what they show changed (or `force`). */
export function renderConsole(cv: ConsoleView, force = false): void {
  const st = state.hearingStatus;
  const hearingState = st?.state ?? 'scheduled';
  // Lifecycle buttons: only the moves the current state allows.
  const allowed = lifecycleControls(state.permissions, hearingState);
  for (const [c, btn] of cv.lifecycleButtons) btn.hidden = !st || !allowed.includes(c);
  cv.dateLabel.hidden = !allowed.includes('adjourn');
  if (cv.lock) {
    const locked = !!st?.locked;
    cv.lock.textContent = t(locked ? 'console.unlock' : 'console.lock');
    cv.lock.setAttribute('aria-pressed', String(locked));
  }

  const people = everyone();
  const signature = JSON.stringify([getLang(), st, people, Math.floor(Date.now() / 60000)]);
  if (!force && signature === cv.signature) return;
  cv.signature = signature;
  // As the server described us (not yet known right after `welcome`).
  const selfId = state.self?.id ?? null;

  if (cv.lobbyList && cv.lobbyTitle) {
    const waiting = lobbyWaiting(state.others);
    cv.lobbyTitle.textContent = t('lobby.title', { n: waiting.length });
    if (cv.admitAll) {
      const admittable = waiting.some((p) => !CALL_IN_ROLES.includes(p.role));
      cv.admitAll.hidden = !admittable;
      cv.admitAll.disabled = !!st?.locked;
    }
    cv.lobbyList.replaceChildren(
      ...(waiting.length === 0
        ? [h('li', { class: 'muted', text: t('lobby.empty') })]
        : waiting.map((p) =>
            h(
              'li',
              { class: 'prow', testid: `lobby-entry-${p.id}`, attrs: { 'data-role': p.role } },
              h(
                'div',
                { class: 'pinfo' },
                personText(p, false),
                h('div', { class: 'muted small', text: `${p.site} · ${waitingSince(p.lobby_since, Date.now())}` }),
              ),
              h(
                'div',
                { class: 'pctl' },
                ...participantControls(state.permissions, p, selfId)
                  .filter((c) => c === 'admit' || c === 'call-in' || c === 'deny')
                  .map((c) => controlButton(cv, c, p)),
              ),
            ),
          )),
    );
  }

  if (cv.rooms) renderRoomsConsole(cv.rooms, people);

  const away = new Map(awayList(st, people, selfId, Date.now()).map((a) => [a.participant.id, a]));
  const groups = groupBySite(people);
  cv.participantList.replaceChildren(
    ...groups.map((g, i) =>
      h(
        'section',
        { class: 'site-group', testid: `site-group-${i}`, attrs: { 'data-site': g.site, 'data-site-kind': g.kind } },
        h('h4', {}, h('span', { text: g.site }), h('span', { class: 'muted small', text: ` · ${t(`site.${g.kind}` as MessageKey)}` })),
        h(
          'ul',
          { class: 'plist' },
          ...g.members.map((p) => participantRow(cv, p, p.id === selfId, away.get(p.id)?.kind ?? null)),
        ),
      ),
    ),
  );
}

function participantRow(cv: ConsoleView, p: ParticipantInfo, self: boolean, awayKind: RoomKind | null): HTMLElement {
  const mic = h('span', { class: 'state ' + (p.muted ? 'court' : p.audio ? 'on' : 'off') }, icon(p.audio && !p.muted ? 'mic' : 'micOff'));
  mic.title = t(p.muted ? 'hearing.mutedByCourt' : p.audio ? 'hearing.micOn' : 'hearing.micOff');
  mic.setAttribute('aria-label', mic.title);
  const cam = h('span', { class: 'state ' + (p.video ? 'on' : 'off') }, icon(p.video ? 'cam' : 'camOff'));
  cam.title = t(p.video ? 'hearing.camOn' : 'hearing.camOff');
  cam.setAttribute('aria-label', cam.title);
  const conn = h('span', { class: `conn conn-${p.connection}`, text: t(`conn.${p.connection}` as MessageKey) });
  const badges: HTMLElement[] = [];
  if (p.admission === 'lobby') badges.push(h('span', { class: 'tag', text: t('console.inLobby') }));
  if (p.admission === 'removed') badges.push(h('span', { class: 'tag danger', text: t('console.removed') }));
  if (p.muted) badges.push(h('span', { class: 'tag court', text: t('console.mutedByCourt') }));
  if (state.hearingStatus?.spotlight === p.id) badges.push(h('span', { class: 'tag floor', text: t('hearing.floor') }));
  if (awayKind) badges.push(h('span', { class: 'tag away', text: t(`room.away.${awayKind}` as MessageKey) }));
  const controls = participantControls(state.permissions, p, self ? p.id : null)
    .filter((c) => c !== 'admit' && c !== 'call-in' && c !== 'deny');
  return h(
    'li',
    {
      class: 'prow' + (p.present ? '' : ' absent'),
      testid: `participant-${p.id}`,
      attrs: {
        'data-admission': p.admission,
        'data-muted': String(p.muted),
        'data-connection': p.connection,
        'data-present': String(p.present),
        'data-role': p.role,
        'data-room-kind': roomOf(state.hearingStatus, p.id)?.kind ?? 'none',
      },
    },
    h('div', { class: 'pinfo' }, personText(p, self), h('div', { class: 'pstate' }, mic, cam, conn, ...badges)),
    h('div', { class: 'pctl' }, ...controls.map((c) => controlButton(cv, c, p))),
  );
}
