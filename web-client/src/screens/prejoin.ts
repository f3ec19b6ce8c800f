// Before joining: the link-problem screen (missing, malformed, expired link) and the
// pre-join screen (who the token says you are, camera preview, microphone level,
// device pickers, the Join button). The devices picked are kept in localStorage for
// the next hearing on this PC. Joining itself is main.ts's (`onJoin`).
import { h } from '../dom';
import { getLang, roleName, t, type MessageKey } from '../i18n';
import type { TokenPayload } from '../jwt';
import { INSECURE_CONTEXT, LevelMeter, listDevices, type DeviceChoice } from '../media';
import { acquireLocalMedia, isObserver, releaseMedia, state, stopMeter, streamEnded } from '../state';
import { bind, header, joinButton, mount, newScreen, relabel, tr } from '../ui';
import { selfTestPanel } from './selftestPanel';

export function renderLinkProblem(key: MessageKey): void {
  newScreen();
  const msg = h('p', { class: 'error', testid: 'error-message', attrs: { role: 'alert' } });
  tr(msg, key);
  mount(
    header(false).el,
    h('main', { class: 'card narrow' }, tr(h('h1'), 'error.heading'), msg),
  );
  relabel();
}

export function renderPrejoin(payload: TokenPayload, onJoin: () => void): void {
  newScreen();
  const field = (labelKey: MessageKey, testid: string, value: () => string) => {
    const v = h('dd', { testid });
    bind(() => (v.textContent = value()));
    return [tr(h('dt'), labelKey), v];
  };
  const hearingDd = h('dd', { testid: 'prejoin-hearing' });
  bind(() => {
    hearingDd.replaceChildren(
      h('strong', { text: payload.case_number }),
      document.createTextNode(payload.title ? ` — ${payload.title}` : ''),
    );
  });
  const info = h(
    'dl',
    { class: 'info' },
    tr(h('dt'), 'prejoin.case'),
    hearingDd,
    ...field('prejoin.name', 'prejoin-name', () => payload.name),
    ...field('prejoin.role', 'prejoin-role', () => roleName(payload.role)),
    ...field('prejoin.site', 'prejoin-site', () => payload.site),
  );
  const expires = h('p', { class: 'muted' });
  bind(() => {
    expires.textContent = t('prejoin.expiresAt', {
      time: new Date(payload.exp * 1000).toLocaleString(getLang() === 'vi' ? 'vi-VN' : 'en-GB'),
    });
  });

  const joinBtn = joinButton('join', 'prejoin.join', onJoin);

  const mediaCol = h('section', { class: 'media-col' });
  if (isObserver()) {
    mediaCol.append(tr(h('p', { class: 'note' }), 'prejoin.observerNote'));
  } else {
    const preview = h('video', {
      class: 'preview',
      testid: 'preview',
      attrs: { autoplay: '', playsinline: '', muted: '' },
    });
    preview.muted = true;
    const bar = h('div', { class: 'meter-bar' });
    const meterEl = h('div', {
      class: 'meter',
      testid: 'mic-level',
      attrs: { role: 'meter', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0' },
    }, bar);
    bind(() => meterEl.setAttribute('aria-label', t('prejoin.micLevel')));
    const camSel = h('select', { testid: 'camera-select' });
    const micSel = h('select', { testid: 'mic-select' });
    const problem = h('p', { class: 'error', attrs: { role: 'alert' } });
    bind(() => {
      const mediaError = state.mediaError;
      problem.textContent = !mediaError
        ? ''
        : mediaError === INSECURE_CONTEXT
          ? t('prejoin.insecure')
          : t('prejoin.mediaDenied', { detail: mediaError });
      problem.hidden = !mediaError;
    });

    const attach = () => {
      preview.srcObject = state.localStream;
      stopMeter();
      meterEl.setAttribute('aria-valuenow', '0');
      bar.style.width = '0%';
      if (state.localStream) {
        state.meter = new LevelMeter(state.localStream, (level) => {
          const pct = Math.round(level * 100);
          bar.style.width = `${pct}%`;
          meterEl.setAttribute('aria-valuenow', String(pct));
        });
      }
    };
    const fill = async () => {
      const { cameras, mics } = await listDevices();
      const cur = (kind: 'audio' | 'video') =>
        (kind === 'audio' ? state.localStream?.getAudioTracks() : state.localStream?.getVideoTracks())?.[0]?.getSettings()
          .deviceId;
      const put = (sel: HTMLSelectElement, list: MediaDeviceInfo[], selected: string | undefined) => {
        bind(() => {
          sel.replaceChildren(
            ...list.map((d, i) =>
              h('option', {
                text: d.label || (d.deviceId === 'default' ? t('prejoin.defaultDevice') : t('prejoin.device', { n: i + 1 })),
                attrs: { value: d.deviceId },
              }),
            ),
          );
          if (selected) sel.value = selected;
          sel.disabled = list.length === 0;
        });
      };
      put(camSel, cameras, cur('video'));
      put(micSel, mics, cur('audio'));
    };
    const reacquire = async () => {
      state.choice = { ...state.choice, cameraId: camSel.value || undefined, micId: micSel.value || undefined };
      saveChoice(state.choice);
      releaseMedia();
      joinBtn.disabled = true;
      await acquireLocalMedia();
      joinBtn.disabled = false;
      attach();
      relabel();
    };
    camSel.addEventListener('change', () => void reacquire());
    micSel.addEventListener('change', () => void reacquire());

    mediaCol.append(
      preview,
      meterEl,
      h('label', { class: 'picker' }, tr(h('span'), 'prejoin.camera'), camSel),
      h('label', { class: 'picker' }, tr(h('span'), 'prejoin.mic'), micSel),
      problem,
    );

    void (async () => {
      if (streamEnded()) {
        joinBtn.disabled = true;
        state.choice = await loadChoice();
        await acquireLocalMedia();
        joinBtn.disabled = false;
      }
      attach();
      await fill();
      relabel();
    })();
  }

  mount(
    header(false).el,
    h(
      'main',
      { class: 'card prejoin' },
      tr(h('h1'), 'prejoin.heading'),
      h('div', { class: 'prejoin-grid' }, mediaCol, h('section', { class: 'info-col' }, info, expires,
        tr(h('p', { class: 'rules' }), 'prejoin.rules'), joinBtn)),
      selfTestPanel(saveChoice),
    ),
  );
  relabel();
}

// ---------------------------------------------------------------- device choice

const CHOICE_KEY = 'openhearing.devices';

function saveChoice(c: DeviceChoice): void {
  try {
    localStorage.setItem(CHOICE_KEY, JSON.stringify(c));
  } catch {
    /* not persisted */
  }
}

/** The devices picked last time on this PC; dropped if they are gone. */
async function loadChoice(): Promise<DeviceChoice> {
  try {
    const saved = JSON.parse(localStorage.getItem(CHOICE_KEY) ?? '{}') as DeviceChoice;
    const { cameras, mics, speakers } = await listDevices();
    // Before permission, deviceIds may be empty: keep the saved ids then.
    const known = (id: string | undefined, list: MediaDeviceInfo[]) =>
      id && (list.every((d) => !d.deviceId) || list.some((d) => d.deviceId === id)) ? id : undefined;
    return {
      cameraId: known(saved.cameraId, cameras),
      micId: known(saved.micId, mics),
      speakerId: known(saved.speakerId, speakers),
    };
  } catch {
    return {};
  }
}
