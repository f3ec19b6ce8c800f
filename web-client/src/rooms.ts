// The private rooms' UI (consultation of a defendant with their counsel, the panel's
// deliberation): on the hearing screen the members' banner, everyone else's
// deliberation banner, the last room notice and the request buttons in the footer; in
// the court console the requests to answer, the rooms in use and the deliberation
// buttons. What to show comes from court.ts (pure); this file only turns it into DOM.
// The server alone enforces the isolation. Commands go out through the `send` the
// hearing screen passes in, so that a refusal lands in its error banner.
import {
  consultationPartners,
  consultationRequestEntries,
  deliberationWaiting,
  elapsedMs,
  formatDuration,
  pendingConsultation,
  privateRoomBanner,
  roomControls,
  roomNotice,
  roomOf,
  roomsOf,
  waitingSince,
} from './court';
import { h } from './dom';
import { getLang, roleName, t, type MessageKey } from './i18n';
import type { CourtCommand, ParticipantInfo } from './protocol';
import { everyone, selfId, state } from './state';
import { tr } from './ui';

export type Send = (msg: CourtCommand) => void;

// ---------------------------------------------------------------- hearing screen

/** The hearing screen's private-room parts (placed by screens/hearing.ts). */
export interface RoomsView {
  privateBanner: HTMLElement;
  deliberationBanner: HTMLElement;
  notice: HTMLElement;
  /** Footer: the defendant's / counsel's request buttons. */
  consultControls: HTMLElement;
  /** What `consultControls` shows, to rebuild it only when that changes. */
  consultSignature: string;
  send: Send;
}

export function makeRoomsView(send: Send): RoomsView {
  const privateBanner = h('div', {
    class: 'private-banner',
    testid: 'private-room-banner',
    attrs: { role: 'status', 'aria-live': 'assertive' },
  });
  privateBanner.hidden = true;
  const deliberationBanner = h('div', {
    class: 'deliberation-banner',
    testid: 'deliberation-banner',
    attrs: { role: 'status', 'aria-live': 'polite' },
  });
  deliberationBanner.hidden = true;
  const notice = h('div', { class: 'room-notice', testid: 'room-notice', attrs: { role: 'status' } });
  notice.hidden = true;
  const consultControls = h('div', { class: 'consult-controls', testid: 'consultation-controls' });
  return { privateBanner, deliberationBanner, notice, consultControls, consultSignature: '', send };
}

/** Members' banner, the deliberation banner, the notice and the request buttons. */
export function updateRooms(rv: RoomsView): void {
  const me = selfId();
  const people = everyone();
  const hs = state.hearingStatus;
  const now = Date.now();

  // Members of a private room: nobody else can hear them, and they hear nobody else.
  const pb = privateRoomBanner(hs, people, me, now);
  const el = rv.privateBanner;
  el.hidden = !pb;
  if (pb) {
    el.dataset.kind = pb.kind;
    el.dataset.room = pb.roomId;
    const room = roomOf(hs, me)!;
    const sig = JSON.stringify([getLang(), pb.kind, pb.roomId, pb.with]);
    if (el.dataset.sig !== sig) {
      el.dataset.sig = sig;
      const children: Node[] = [
        h(
          'div',
          { class: 'private-main' },
          h('strong', { class: 'private-title', text: pb.title }),
          h('span', { class: 'duration', testid: 'private-room-duration', text: pb.duration, attrs: { 'data-duration-since': room.since } }),
        ),
        h('p', { class: 'private-with', text: t('room.with', { names: pb.with }) }),
        h('p', { class: 'private-note', text: t('room.privateNote') }),
      ];
      if (pb.kind === 'consultation') {
        children.push(
          h('button', {
            class: 'btn primary',
            testid: 'end-consultation',
            attrs: { type: 'button' },
            text: t('room.end'),
            on: { click: () => rv.send({ type: 'end_consultation', room_id: room.id }) },
          }),
        );
      }
      el.replaceChildren(...children);
    }
  } else {
    delete el.dataset.kind;
    delete el.dataset.room;
    delete el.dataset.sig;
    el.replaceChildren();
  }

  // Everyone outside the panel: "the trial panel is deliberating".
  const dw = deliberationWaiting(hs, me, now);
  const db = rv.deliberationBanner;
  db.hidden = !dw;
  if (dw) {
    const since = roomsOf(hs).find((r) => r.id === dw.roomId)!.since;
    const sig = JSON.stringify([getLang(), dw.roomId]);
    if (db.dataset.sig !== sig) {
      db.dataset.sig = sig;
      db.dataset.room = dw.roomId;
      db.replaceChildren(
        h('strong', { class: 'deliberation-title', text: dw.text }),
        h('span', { class: 'duration', text: dw.duration, attrs: { 'data-duration-since': since } }),
        h('span', { class: 'state-detail', text: t('room.panelDeliberatingNote') }),
      );
    }
  } else {
    delete db.dataset.sig;
    delete db.dataset.room;
    db.replaceChildren();
  }

  // The notice of the last room that ended for us (or a refused request).
  const n = rv.notice;
  const ns = state.roomNotice;
  n.hidden = !ns;
  if (ns) {
    n.dataset.reason = ns.reason;
    n.replaceChildren(
      h('p', { text: ns.reason === 'refused' ? roomNotice({ refused: true }) : roomNotice({ reason: ns.reason, kind: ns.kind ?? 'consultation' }) }),
      h('button', {
        class: 'btn small',
        testid: 'room-notice-dismiss',
        attrs: { type: 'button' },
        text: t('room.notice.dismiss'),
        on: {
          click: () => {
            state.roomNotice = null;
            updateRooms(rv);
          },
        },
      }),
    );
  } else {
    delete n.dataset.reason;
    n.replaceChildren();
  }

  // A defendant / their counsel: ask for a consultation with the partner.
  const partners = consultationPartners(state.permissions, state.self, state.others, hs);
  const entries = partners.map((p) => ({ p, pending: me ? pendingConsultation(hs, me, p.id) : null }));
  const sig = JSON.stringify([getLang(), entries.map((e) => [e.p.id, e.p.name, e.pending?.id ?? null])]);
  if (sig !== rv.consultSignature) {
    rv.consultSignature = sig;
    rv.consultControls.replaceChildren(
      ...entries.map(({ p, pending }) => {
        const btn = h('button', {
          class: 'btn control consult',
          testid: `request-consultation-${p.id}`,
          attrs: { type: 'button', 'data-pending': String(!!pending) },
          text: pending ? t('room.requestPending', { name: p.name }) : t('room.request', { name: p.name }),
          on: {
            click: () => {
              state.roomNotice = null;
              rv.send({ type: 'request_consultation', participant_id: p.id });
              updateRooms(rv);
            },
          },
        });
        if (pending) {
          btn.disabled = true;
          btn.dataset.request = pending.id;
        }
        return btn;
      }),
    );
  }
  rv.consultControls.hidden = entries.length === 0;
}

/** Running durations ("mm:ss") of rooms, every second. */
export function tickDurations(): void {
  const now = Date.now();
  document.querySelectorAll<HTMLElement>('[data-duration-since]').forEach((el) => {
    el.textContent = formatDuration(elapsedMs(el.dataset.durationSince, now));
  });
}

// ---------------------------------------------------------------- court console

/** The console's private-rooms section (with `approve_consultation` or `deliberate`). */
export interface RoomsConsole {
  section: HTMLElement;
  requestsTitle: HTMLElement | null;
  requestsList: HTMLElement | null;
  roomsTitle: HTMLElement;
  roomsList: HTMLElement;
  startDeliberation: HTMLButtonElement | null;
  endDeliberation: HTMLButtonElement | null;
  send: Send;
}

export function makeRoomsConsole(send: Send): RoomsConsole {
  const section = h('section', { class: 'console-section rooms', testid: 'private-rooms-section' });
  let startDeliberation: HTMLButtonElement | null = null;
  let endDeliberation: HTMLButtonElement | null = null;
  if (state.permissions.includes('deliberate')) {
    startDeliberation = h('button', {
      class: 'btn small primary',
      testid: 'start-deliberation',
      attrs: { type: 'button' },
      on: { click: () => send({ type: 'start_deliberation' }) },
    });
    tr(startDeliberation, 'room.startDeliberation');
    endDeliberation = h('button', {
      class: 'btn small primary',
      testid: 'end-deliberation',
      attrs: { type: 'button' },
      on: { click: () => send({ type: 'end_deliberation' }) },
    });
    tr(endDeliberation, 'room.endDeliberation');
    section.append(h('div', { class: 'button-row' }, startDeliberation, endDeliberation));
  }
  let requestsTitle: HTMLElement | null = null;
  let requestsList: HTMLElement | null = null;
  if (state.permissions.includes('approve_consultation')) {
    requestsTitle = h('h3');
    requestsList = h('ul', { class: 'plist', testid: 'consultation-requests' });
    section.append(requestsTitle, requestsList);
  }
  const roomsTitle = h('h3');
  const roomsList = h('ul', { class: 'plist', testid: 'private-rooms' });
  section.append(roomsTitle, roomsList);
  return { section, requestsTitle, requestsList, roomsTitle, roomsList, startDeliberation, endDeliberation, send };
}

/** The console's private-room part: requests to answer, rooms in use, deliberation. */
export function renderRoomsConsole(rc: RoomsConsole, people: ParticipantInfo[]): void {
  const st = state.hearingStatus;
  const ctl = roomControls(state.permissions, st);
  if (rc.startDeliberation) rc.startDeliberation.hidden = !ctl.startDeliberation;
  if (rc.endDeliberation) rc.endDeliberation.hidden = !ctl.endDeliberation;
  if (rc.requestsList && rc.requestsTitle) {
    const entries = consultationRequestEntries(st, people);
    rc.requestsTitle.textContent = t('room.requests', { n: entries.length });
    rc.requestsList.replaceChildren(
      ...(entries.length === 0
        ? [h('li', { class: 'muted', text: t('room.requestsEmpty') })]
        : entries.map((e) =>
            h(
              'li',
              { class: 'prow', testid: `consultation-request-${e.request.id}`, attrs: { 'data-from': e.request.from, 'data-with': e.request.with } },
              h(
                'div',
                { class: 'pinfo' },
                h('div', { text: e.text }),
                h('div', { class: 'muted small', text: [e.party, waitingSince(e.request.since, Date.now())].filter(Boolean).join(' · ') }),
              ),
              h(
                'div',
                { class: 'pctl' },
                h('button', {
                  class: 'btn small primary',
                  testid: `approve-consultation-${e.request.id}`,
                  attrs: { type: 'button' },
                  text: t('room.approve'),
                  on: { click: () => rc.send({ type: 'answer_consultation', request_id: e.request.id, approve: true }) },
                }),
                h('button', {
                  class: 'btn small danger',
                  testid: `refuse-consultation-${e.request.id}`,
                  attrs: { type: 'button' },
                  text: t('room.refuse'),
                  on: { click: () => rc.send({ type: 'answer_consultation', request_id: e.request.id, approve: false }) },
                }),
              ),
            ),
          )),
    );
  }
  const rooms = roomsOf(st);
  rc.roomsTitle.textContent = t('room.rooms', { n: rooms.length });
  rc.roomsTitle.hidden = rooms.length === 0;
  const name = (id: string) => {
    const p = people.find((x) => x.id === id);
    return p ? `${p.name} (${roleName(p.role)})` : id;
  };
  rc.roomsList.replaceChildren(
    ...rooms.map((r) =>
      h(
        'li',
        { class: 'prow', testid: `room-${r.id}`, attrs: { 'data-kind': r.kind } },
        h(
          'div',
          { class: 'pinfo' },
          h(
            'div',
            {},
            h('strong', { text: `${t(`room.kind.${r.kind}` as MessageKey)} · ` }),
            h('span', { class: 'duration', text: formatDuration(elapsedMs(r.since, Date.now())), attrs: { 'data-duration-since': r.since } }),
          ),
          h('div', { class: 'muted small', text: r.members.map(name).join(', ') }),
        ),
        r.kind === 'consultation' && ctl.recall
          ? h(
              'div',
              { class: 'pctl' },
              h('button', {
                class: 'btn small',
                testid: `recall-consultation-${r.id}`,
                attrs: { type: 'button' },
                text: t('room.recall'),
                on: { click: () => rc.send({ type: 'end_consultation', room_id: r.id }) },
              }),
            )
          : null,
      ),
    ),
  );
}
