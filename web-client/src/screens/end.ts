// The screens after a hearing connection: "you left" (rejoin), a fatal error (rejoin
// only when replaced by another tab), and the final screen (hearing closed, admission
// refused, removed, link revoked: no rejoin). main.ts closes the session and the
// hearing view before it shows one of these; rejoining is main.ts's (`onJoin`).
import { h } from '../dom';
import { errorText, t, type MessageKey } from '../i18n';
import type { ErrorCode } from '../protocol';
import type { ServerError } from '../session';
import { releaseMedia, state } from '../state';
import { bind, header, joinButton, mount, newScreen, relabel, tr } from '../ui';

export function renderEnd(onJoin: () => void): void {
  newScreen();
  const btn = joinButton('rejoin', 'left.rejoin', onJoin);
  mount(
    header(false).el,
    h(
      'main',
      { class: 'card narrow' },
      tr(h('h1'), 'left.heading'),
      tr(h('p'), 'left.body'),
      btn,
    ),
  );
  relabel();
}

export function renderFailed(err: ServerError, onJoin: () => void): void {
  newScreen();
  const msg = h('p', { class: 'error', testid: 'error-message', attrs: { role: 'alert' } });
  bind(() => (msg.textContent = errorText(err.code, err.message)));
  const children: HTMLElement[] = [tr(h('h1'), 'error.heading'), msg];
  if (err.code === 'replaced') {
    children.push(joinButton('rejoin', 'left.rejoin', onJoin));
  } else {
    releaseMedia();
  }
  mount(header(false).el, h('main', { class: 'card narrow' }, ...children));
  relabel();
}

/** The end of this participant's hearing: closed, refused, removed or link revoked. No rejoin. */
export function renderFinal(err: ServerError): void {
  releaseMedia();
  newScreen();
  const code = err.code as ErrorCode;
  const closed = code === 'hearing_closed';
  const hs = state.hearingStatus;
  const reason = closed ? (hs?.state === 'closed' ? hs.reason ?? '' : '') : '';
  const msg = h('p', { testid: 'error-message' });
  const reasonEl = h('p', { testid: 'final-reason' });
  const heading = h('h1');
  bind(() => {
    heading.textContent = t(`final.${code}` as MessageKey);
    msg.textContent = errorText(code, err.message);
    reasonEl.textContent = reason ? t('final.reason', { reason }) : '';
    reasonEl.hidden = !reason;
  });
  mount(
    header(false).el,
    h(
      'main',
      { class: 'card narrow final', testid: 'final-screen', attrs: { 'data-code': code, role: 'alert' } },
      heading,
      msg,
      reasonEl,
      tr(h('p', { class: 'muted' }), 'final.body'),
    ),
  );
  relabel();
}
