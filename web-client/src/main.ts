// OpenHearing browser client: pre-join screen, hearing screen, left/lost screens.
import './style.css';
import { h, icon } from './dom';
import { errorText, getLang, initLang, LANGS, roleName, setLang, t, type Lang, type MessageKey } from './i18n';
import { checkToken, parseJoinLink, signalingUrl, type TokenPayload } from './jwt';
import { acquireMedia, INSECURE_CONTEXT, LevelMeter, listDevices, stopStream, type DeviceChoice } from './media';
import { ALL_ROLES, type HearingInfo, type ParticipantInfo, type Role } from './protocol';
import { HearingSession, type ServerError, type SessionStatus } from './session';

// ---------------------------------------------------------------- state

const app = document.getElementById('app')!;
let binders: (() => void)[] = [];
let localStream: MediaStream | null = null;
let meter: LevelMeter | null = null;
let choice: DeviceChoice = {};
let mediaError: string | null = null;
let session: HearingSession | null = null;
let joinedAt: number | null = null;
let firstRemoteFrameAt: number | null = null;
let hearing: { case_number: string; title: string } = { case_number: '', title: '' };
let me: { name: string; role: Role | string; site: string } = { name: '', role: 'observer', site: '' };
let canPublish = false;
let token = '';
let hearingId = '';

declare global {
  interface Window {
    __openhearing: {
      pc: () => RTCPeerConnection | null;
      participantId: () => string | null;
      joinedAt: () => number | null;
      firstRemoteFrameAt: () => number | null;
    };
  }
}

window.__openhearing = {
  pc: () => session?.pc ?? null,
  participantId: () => session?.participantId ?? null,
  joinedAt: () => joinedAt,
  firstRemoteFrameAt: () => firstRemoteFrameAt,
};

// ---------------------------------------------------------------- i18n plumbing

/** Runs `fn` now and again whenever the language changes (until the screen changes). */
function bind(fn: () => void): void {
  binders.push(fn);
  fn();
}

function tr<E extends HTMLElement>(el: E, key: MessageKey, params?: () => Record<string, string | number>): E {
  bind(() => {
    el.textContent = t(key, params?.());
  });
  return el;
}

function relabel(): void {
  document.documentElement.lang = getLang();
  document.title = t('app.title');
  for (const fn of binders) fn();
}

function newScreen(): void {
  binders = [];
  app.replaceChildren();
}

function isObserver(): boolean {
  return me.role === 'observer';
}

// ---------------------------------------------------------------- header

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

function header(withStatus: boolean): { el: HTMLElement; status: HTMLElement | null } {
  const caseEl = h('span', { class: 'case-number' });
  const titleEl = h('span', { class: 'case-title' });
  bind(() => {
    caseEl.textContent = hearing.case_number;
    titleEl.textContent = hearing.title;
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

// ---------------------------------------------------------------- screens: link error

function renderLinkProblem(key: MessageKey): void {
  newScreen();
  const msg = h('p', { class: 'error', testid: 'error-message', attrs: { role: 'alert' } });
  tr(msg, key);
  app.append(
    header(false).el,
    h('main', { class: 'card narrow' }, tr(h('h1'), 'error.heading'), msg),
  );
  relabel();
}

// ---------------------------------------------------------------- screen: pre-join

function renderPrejoin(payload: TokenPayload): void {
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

  const joinBtn = joinButton('join', 'prejoin.join');

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
      problem.textContent = !mediaError
        ? ''
        : mediaError === INSECURE_CONTEXT
          ? t('prejoin.insecure')
          : t('prejoin.mediaDenied', { detail: mediaError });
      problem.hidden = !mediaError;
    });

    const attach = () => {
      preview.srcObject = localStream;
      meter?.stop();
      meter = null;
      meterEl.setAttribute('aria-valuenow', '0');
      bar.style.width = '0%';
      if (localStream) {
        meter = new LevelMeter(localStream, (level) => {
          const pct = Math.round(level * 100);
          bar.style.width = `${pct}%`;
          meterEl.setAttribute('aria-valuenow', String(pct));
        });
      }
    };
    const fill = async () => {
      const { cameras, mics } = await listDevices();
      const cur = (kind: 'audio' | 'video') =>
        (kind === 'audio' ? localStream?.getAudioTracks() : localStream?.getVideoTracks())?.[0]?.getSettings()
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
      choice = { cameraId: camSel.value || undefined, micId: micSel.value || undefined };
      saveChoice(choice);
      stopStream(localStream);
      localStream = null;
      joinBtn.disabled = true;
      const r = await acquireMedia(choice);
      localStream = r.stream;
      mediaError = r.error;
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
      if (!localStream || localStream.getTracks().every((tk) => tk.readyState === 'ended')) {
        joinBtn.disabled = true;
        choice = await loadChoice();
        const r = await acquireMedia(choice);
        localStream = r.stream;
        mediaError = r.error;
        joinBtn.disabled = false;
      }
      attach();
      await fill();
      relabel();
    })();
  }

  app.append(
    header(false).el,
    h(
      'main',
      { class: 'card prejoin' },
      tr(h('h1'), 'prejoin.heading'),
      h('div', { class: 'prejoin-grid' }, mediaCol, h('section', { class: 'info-col' }, info, expires,
        tr(h('p', { class: 'rules' }), 'prejoin.rules'), joinBtn)),
    ),
  );
  relabel();
}

// ---------------------------------------------------------------- screen: hearing

interface TileView {
  root: HTMLElement;
  video: HTMLVideoElement;
  audio: HTMLAudioElement | null;
  info: ParticipantInfo;
  update(p: ParticipantInfo): void;
  setTrack(kind: 'audio' | 'video', track: MediaStreamTrack | null): void;
}

interface HearingView {
  grid: HTMLElement;
  tiles: Map<string, TileView>;
  self: TileView;
  status: HTMLElement;
  banner: HTMLElement;
  count: HTMLElement;
  micBtn: HTMLButtonElement;
  camBtn: HTMLButtonElement;
}

let view: HearingView | null = null;
const remoteTracks = new Map<string, { audio: MediaStreamTrack | null; video: MediaStreamTrack | null }>();
let lastStatus: { status: SessionStatus; attempt?: number } = { status: 'connecting' };

function roleOrder(r: string): number {
  const i = ALL_ROLES.indexOf(r as Role);
  return i < 0 ? 99 : i;
}

function makeTile(p: ParticipantInfo, self: boolean): TileView {
  const idPart = self ? 'self' : p.id;
  const video = h('video', {
    class: 'tile-video',
    attrs: { autoplay: '', playsinline: '', muted: '' },
  });
  video.muted = true;
  if (!self) video.dataset.testid = `video-${p.id}`;
  const audio = self ? null : h('audio', { testid: `audio-${p.id}`, attrs: { autoplay: '' } });
  const initials = h('div', { class: 'placeholder', attrs: { 'aria-hidden': 'true' } });
  const name = h('div', { class: 'tile-name' });
  const meta = h('div', { class: 'tile-meta' });
  const micIcon = h('span', { class: 'state' });
  const camIcon = h('span', { class: 'state' });
  const badge = h('div', { class: 'badge' });
  const root = h(
    'article',
    { class: 'tile' + (self ? ' self' : ''), testid: `tile-${idPart}` },
    h('div', { class: 'tile-media' }, initials, video, badge, audio),
    h('div', { class: 'tile-caption' }, h('div', { class: 'tile-text' }, name, meta), h('div', { class: 'states' }, micIcon, camIcon)),
  );
  let hasVideo = false;
  const tile: TileView = {
    root,
    video,
    audio,
    info: p,
    update(np: ParticipantInfo) {
      tile.info = np;
      // Vietnamese names put the family name first and the given name last.
      const words = np.name.split(/\s+/).filter(Boolean);
      initials.textContent = (words.length > 1 ? [words[0], words[words.length - 1]] : words)
        .map((w) => w[0]?.toUpperCase() ?? '')
        .join('');
      name.textContent = self ? `${np.name} (${t('hearing.you')})` : np.name;
      meta.textContent = [roleName(np.role), np.site].filter(Boolean).join(' · ');
      const watchOnly = self ? !canPublish : np.role === 'observer';
      micIcon.replaceChildren(icon(np.audio ? 'mic' : 'micOff'));
      micIcon.className = 'state ' + (np.audio ? 'on' : 'off');
      micIcon.title = t(np.audio ? 'hearing.micOn' : 'hearing.micOff');
      micIcon.setAttribute('aria-label', micIcon.title);
      camIcon.replaceChildren(icon(np.video ? 'cam' : 'camOff'));
      camIcon.className = 'state ' + (np.video ? 'on' : 'off');
      camIcon.title = t(np.video ? 'hearing.camOn' : 'hearing.camOff');
      camIcon.setAttribute('aria-label', camIcon.title);
      root.classList.toggle('absent', !np.present);
      root.dataset.present = String(np.present);
      badge.textContent = !np.present ? t('hearing.notConnected') : watchOnly ? t('hearing.watchOnly') : '';
      badge.hidden = badge.textContent === '';
      root.classList.toggle('no-video', !hasVideo || !np.video);
    },
    setTrack(kind, track) {
      const el = kind === 'video' ? video : audio;
      if (!el) return;
      const cur = (el.srcObject as MediaStream | null)?.getTracks()[0] ?? null;
      if (cur === track) return;
      el.srcObject = track ? new MediaStream([track]) : null;
      if (kind === 'video') {
        hasVideo = !!track;
        root.classList.toggle('no-video', !hasVideo || !tile.info.video);
        if (track && !self) watchFirstFrame(video);
      }
      if (track) void el.play().catch(() => undefined);
    },
  };
  tile.update(p);
  return tile;
}

function watchFirstFrame(video: HTMLVideoElement): void {
  if (firstRemoteFrameAt !== null) return;
  const mark = () => {
    if (firstRemoteFrameAt === null && video.videoWidth > 0) firstRemoteFrameAt = performance.now();
  };
  video.addEventListener('loadeddata', mark, { once: true });
  if ('requestVideoFrameCallback' in video) {
    video.requestVideoFrameCallback(() => {
      if (firstRemoteFrameAt === null) firstRemoteFrameAt = performance.now();
    });
  }
}

function selfInfo(): ParticipantInfo {
  const a = !!localStream?.getAudioTracks().some((tk) => tk.enabled && tk.readyState === 'live') && canPublish;
  const v = !!localStream?.getVideoTracks().some((tk) => tk.enabled && tk.readyState === 'live') && canPublish;
  return {
    id: session?.participantId ?? 'self',
    name: me.name,
    role: me.role as Role,
    site: me.site,
    present: true,
    audio: a,
    video: v,
  };
}

function renderHearing(): void {
  newScreen();
  const hd = header(true);
  const grid = h('section', { class: 'grid', attrs: { 'aria-live': 'off' } });
  const self = makeTile(selfInfo(), true);
  self.setTrack('video', localStream?.getVideoTracks()[0] ?? null);
  grid.append(self.root);
  const banner = h('div', { class: 'banner', attrs: { role: 'alert' } });
  banner.hidden = true;
  const count = h('p', { class: 'count muted' });

  const micBtn = h('button', {
    class: 'btn control',
    testid: 'toggle-mic',
    attrs: { type: 'button' },
    on: { click: () => toggle('audio') },
  });
  const camBtn = h('button', {
    class: 'btn control',
    testid: 'toggle-camera',
    attrs: { type: 'button' },
    on: { click: () => toggle('video') },
  });
  const leaveBtn = h('button', {
    class: 'btn control danger',
    testid: 'leave',
    attrs: { type: 'button' },
    on: { click: () => leaveHearing() },
  });
  const leaveLabel = tr(h('span'), 'controls.leave');
  leaveBtn.append(icon('leave'), leaveLabel);

  view = { grid, tiles: new Map(), self, status: hd.status!, banner, count, micBtn, camBtn };
  bind(() => {
    if (!view) return;
    updateControls();
    updateStatus();
    view.self.update(selfInfo());
    for (const tile of view.tiles.values()) tile.update(tile.info);
    updateCount();
  });

  app.append(
    hd.el,
    h('main', { class: 'hearing' }, banner, grid, count),
    h('footer', { class: 'controls' }, micBtn, camBtn, leaveBtn),
  );
  relabel();
}

function updateCount(): void {
  if (!view) return;
  const present = [...view.tiles.values()].filter((tl) => tl.info.present).length;
  view.count.textContent = present === 0 ? t('hearing.noOthers') : t('hearing.participants', { n: present + 1 });
}

function updateControls(): void {
  if (!view) return;
  const set = (btn: HTMLButtonElement, kind: 'audio' | 'video') => {
    const tracks = kind === 'audio' ? localStream?.getAudioTracks() : localStream?.getVideoTracks();
    const usable = canPublish && !!tracks?.length;
    const on = usable && tracks!.every((tk) => tk.enabled);
    btn.disabled = !usable;
    btn.setAttribute('aria-pressed', String(!on));
    btn.classList.toggle('off', !on);
    const key: MessageKey =
      kind === 'audio' ? (on ? 'controls.micMute' : 'controls.micUnmute') : on ? 'controls.camOff' : 'controls.camOn';
    const iconName = kind === 'audio' ? (on ? 'mic' : 'micOff') : on ? 'cam' : 'camOff';
    btn.replaceChildren(icon(iconName), h('span', { text: t(key) }));
  };
  set(view.micBtn, 'audio');
  set(view.camBtn, 'video');
}

function toggle(kind: 'audio' | 'video'): void {
  const tracks = kind === 'audio' ? localStream?.getAudioTracks() : localStream?.getVideoTracks();
  if (!tracks?.length || !canPublish) return;
  const enable = !tracks.every((tk) => tk.enabled);
  for (const tk of tracks) tk.enabled = enable;
  session?.sendMediaState();
  updateControls();
  view?.self.update(selfInfo());
}

const STATUS_KEYS: Record<SessionStatus, MessageKey> = {
  connecting: 'status.connecting',
  media: 'status.media',
  connected: 'status.connected',
  reconnecting: 'status.reconnecting',
  lost: 'status.lost',
  failed: 'status.lost',
  left: 'status.left',
};

function updateStatus(): void {
  if (!view) return;
  view.status.textContent = t(STATUS_KEYS[lastStatus.status], { n: lastStatus.attempt ?? 1 });
  view.status.dataset.state = lastStatus.status;
}

let bannerError: ServerError | null = null;
let bannerLost = false;

function showBanner(): void {
  if (!view) return;
  const b = view.banner;
  b.replaceChildren();
  if (bannerLost) {
    const btn = h('button', {
      class: 'btn primary',
      testid: 'rejoin',
      attrs: { type: 'button' },
      on: { click: () => session?.reconnect() },
    });
    btn.textContent = t('lost.reconnect');
    b.append(
      h('strong', { text: t('lost.heading') }),
      h('p', { testid: 'error-message', text: bannerError ? errorText(bannerError.code, bannerError.message) : t('lost.body') }),
      btn,
    );
  } else if (bannerError) {
    b.append(h('p', { testid: 'error-message', text: errorText(bannerError.code, bannerError.message) }));
  }
  b.hidden = !bannerLost && !bannerError;
}

function syncParticipants(list: ParticipantInfo[]): void {
  if (!view) return;
  const seen = new Set<string>();
  for (const p of list) {
    seen.add(p.id);
    const tile = view.tiles.get(p.id);
    if (tile) tile.update(p);
    else {
      const tile = makeTile(p, false);
      view.tiles.set(p.id, tile);
      const tracks = remoteTracks.get(p.id);
      if (tracks?.video) tile.setTrack('video', tracks.video);
      if (tracks?.audio) tile.setTrack('audio', tracks.audio);
    }
  }
  for (const [id, tile] of view.tiles) {
    if (!seen.has(id)) {
      tile.root.remove();
      view.tiles.delete(id);
    }
  }
  // Order: self first, then by role (court order), then name. Move nodes only if needed.
  const ordered = [...view.tiles.values()].sort(
    (a, b) => roleOrder(a.info.role) - roleOrder(b.info.role) || a.info.name.localeCompare(b.info.name, 'vi'),
  );
  const want = [view.self.root, ...ordered.map((tl) => tl.root)];
  want.forEach((el, i) => {
    if (view!.grid.children[i] !== el) view!.grid.insertBefore(el, view!.grid.children[i] ?? null);
  });
  view.grid.dataset.count = String(want.length);
  updateCount();
}

function startSession(): void {
  session?.dispose();
  remoteTracks.clear();
  joinedAt = null;
  firstRemoteFrameAt = null;
  bannerError = null;
  bannerLost = false;
  lastStatus = { status: 'connecting' };
  renderHearing();
  const s = new HearingSession({
    url: signalingUrl(location.protocol, location.host, hearingId),
    token,
    localStream,
    events: {
      opened(at) {
        joinedAt = at;
        firstRemoteFrameAt = null;
      },
      status(status, detail) {
        if (session !== s) return;
        lastStatus = { status, attempt: detail.attempt };
        if (status === 'failed') {
          renderFailed(detail.error!);
          return;
        }
        if (status === 'lost' || status === 'reconnecting') {
          bannerLost = true;
          if (detail.error) bannerError = detail.error;
        } else if (status === 'connected' || status === 'media') {
          if (bannerLost) bannerError = null;
          bannerLost = false;
        }
        updateStatus();
        showBanner();
      },
      welcome(you, h2: HearingInfo, publish) {
        hearing = { case_number: h2.case_number, title: h2.title };
        me = { name: you.name, role: you.role, site: you.site };
        canPublish = publish;
        relabel();
      },
      participants(list) {
        syncParticipants(list);
      },
      remoteTrack(pid, kind, track) {
        // A track may arrive before its participant is in the list: keep it for the tile.
        const cur = remoteTracks.get(pid) ?? { audio: null, video: null };
        cur[kind] = track;
        remoteTracks.set(pid, cur);
        view?.tiles.get(pid)?.setTrack(kind, track);
      },
      participantLeft(pid) {
        remoteTracks.delete(pid);
        view?.tiles.get(pid)?.setTrack('audio', null);
        view?.tiles.get(pid)?.setTrack('video', null);
      },
      error(err) {
        bannerError = err;
        showBanner();
      },
    },
  });
  session = s;
  s.start();
}

async function joinHearing(): Promise<void> {
  if (!isObserver() && (!localStream || localStream.getTracks().every((tk) => tk.readyState === 'ended'))) {
    const r = await acquireMedia(choice);
    localStream = r.stream;
    mediaError = r.error;
  }
  meter?.stop();
  meter = null;
  // Until the server says otherwise, assume a non-observer may publish.
  canPublish = !isObserver();
  startSession();
}

function leaveHearing(): void {
  session?.leave();
  session = null;
  stopStream(localStream);
  localStream = null;
  view = null;
  renderEnd();
}

// ---------------------------------------------------------------- screens: left / failed

/** The big button that (re)joins the hearing: on the pre-join, left and replaced screens. */
function joinButton(testid: 'join' | 'rejoin', key: MessageKey): HTMLButtonElement {
  const btn = h('button', {
    class: 'btn primary big',
    testid,
    attrs: { type: 'button' },
    on: { click: () => void joinHearing() },
  });
  return tr(btn, key);
}

function renderEnd(): void {
  newScreen();
  const btn = joinButton('rejoin', 'left.rejoin');
  app.append(
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

function renderFailed(err: ServerError): void {
  session?.dispose();
  session = null;
  view = null;
  newScreen();
  const msg = h('p', { class: 'error', testid: 'error-message', attrs: { role: 'alert' } });
  bind(() => (msg.textContent = errorText(err.code, err.message)));
  const children: HTMLElement[] = [tr(h('h1'), 'error.heading'), msg];
  if (err.code === 'replaced') {
    children.push(joinButton('rejoin', 'left.rejoin'));
  } else {
    stopStream(localStream);
    localStream = null;
  }
  app.append(header(false).el, h('main', { class: 'card narrow' }, ...children));
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
    const { cameras, mics } = await listDevices();
    // Before permission, deviceIds may be empty: keep the saved ids then.
    const known = (id: string | undefined, list: MediaDeviceInfo[]) =>
      id && (list.every((d) => !d.deviceId) || list.some((d) => d.deviceId === id)) ? id : undefined;
    return { cameraId: known(saved.cameraId, cameras), micId: known(saved.micId, mics) };
  } catch {
    return {};
  }
}

// ---------------------------------------------------------------- boot

function boot(): void {
  initLang();
  const link = parseJoinLink(location.pathname, location.hash);
  if (!link.hearingId) {
    renderLinkProblem(link.token ? 'link.noHearing' : 'link.missing');
    return;
  }
  const check = checkToken(link.token, Date.now() / 1000, link.hearingId);
  if (check.payload) {
    hearing = { case_number: check.payload.case_number, title: check.payload.title };
  }
  if (!check.ok) {
    renderLinkProblem(`link.${check.problem}` as MessageKey);
    return;
  }
  token = check.token;
  hearingId = link.hearingId;
  me = { name: check.payload.name, role: check.payload.role, site: check.payload.site };
  // Keep the token out of the address bar's history/screenshots? It must stay in the
  // hash so that a reload still works; the hash is never sent to the server.
  renderPrejoin(check.payload);
}

window.addEventListener('pagehide', () => {
  session?.dispose();
  stopStream(localStream);
});

boot();
