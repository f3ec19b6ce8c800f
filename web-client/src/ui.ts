// The screens' shared plumbing: the `#app` root, the language binders (every text is
// set by a function that runs again when the language changes, until the next screen),
// the top bar with the language switch, and the big join button. No screen logic: the
// screens in screens/ build on these, main.ts decides which one is shown.
import { h } from './dom';
import { getLang, LANGS, setLang, t, type Lang, type MessageKey } from './i18n';
import { state } from './state';

const app = document.getElementById('app')!;
let binders: (() => void)[] = [];

/** Runs `fn` now and again whenever the language changes (until the screen changes). */
export function bind(fn: () => void): void {
  binders.push(fn);
  fn();
}

/** Sets `el`'s text to the message `key`, in the current language from now on. */
export function tr<E extends HTMLElement>(el: E, key: MessageKey, params?: () => Record<string, string | number>): E {
  bind(() => {
    el.textContent = t(key, params?.());
  });
  return el;
}

/** Re-runs every binder of the screen (after a language switch or new data). */
export function relabel(): void {
  document.documentElement.lang = getLang();
  document.title = t('app.title');
  for (const fn of binders) fn();
}

/** Empties `#app` and drops the previous screen's binders. */
export function newScreen(): void {
  binders = [];
  app.replaceChildren();
}

/** Puts the new screen's parts into `#app`. */
export function mount(...parts: Node[]): void {
  app.append(...parts);
}

function langSwitch(): HTMLElement {
  const group = h('div', { class: 'lang', attrs: { role: 'group' } });
  bind(() => group.setAttribute('aria-label', t('lang.label')));
  for (const lang of LANGS) {
    const btn = h('button', {
      class: 'lang-btn',
      testid: `lang-${lang}`,
      attrs: { type: 'button', lang },
      on: { click: () => switchLang(lang) },
    });
    bind(() => {
      btn.textContent = t(`lang.${lang}` as MessageKey);
      btn.setAttribute('aria-pressed', String(getLang() === lang));
    });
    group.append(btn);
  }
  return group;
}

function switchLang(lang: Lang): void {
  setLang(lang);
  relabel();
}

/** The top bar: brand, case number and title, (connection status), language switch. */
export function header(withStatus: boolean): { el: HTMLElement; status: HTMLElement | null } {
  const caseEl = h('span', { class: 'case-number' });
  const titleEl = h('span', { class: 'case-title' });
  bind(() => {
    caseEl.textContent = state.hearing.case_number;
    titleEl.textContent = state.hearing.title;
  });
  const status = withStatus
    ? h('span', { class: 'status', testid: 'connection-status', attrs: { role: 'status', 'aria-live': 'polite' } })
    : null;
  const el = h(
    'header',
    { class: 'topbar' },
    h('span', { class: 'brand', text: t('app.brand') }),
    h('div', { class: 'hearing-info' }, caseEl, titleEl),
    status,
    langSwitch(),
  );
  return { el, status };
}

/** The big button that (re)joins the hearing: on the pre-join, left and replaced screens. */
export function joinButton(testid: 'join' | 'rejoin', key: MessageKey, onJoin: () => void): HTMLButtonElement {
  const btn = h('button', {
    class: 'btn primary big',
    testid,
    attrs: { type: 'button' },
    on: { click: () => onJoin() },
  });
  return tr(btn, key);
}
