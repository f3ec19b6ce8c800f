// OpenHearing browser client: pre-join screen, hearing screen (lobby, room, court
// console), left/lost/final screens.
import './style.css';
import { h, icon } from './dom';
import { errorText, getLang, initLang, LANGS, roleName, setLang, t, type Lang, type MessageKey } from './i18n';
import { checkToken, parseJoinLink, signalingUrl, type TokenPayload } from './jwt';
import { acquireMedia, INSECURE_CONTEXT, LevelMeter, listDevices, stopStream, type DeviceChoice } from './media';
import {
  FINAL_CODES,
  mediaFlows,
  type Action,
  type CourtCommand,
  type ErrorCode,
  type HearingStatus,
  type ParticipantInfo,
  type Role,
  type RoomInfo,
  type RoomKind,
} from './protocol';
import {
  awayList,
  byCourtOrder,
  consoleSections,
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
  CALL_IN_ROLES,
  groupBySite,
  lifecycleControls,
  lifecycleNeeds,
  lifecycleTarget,
  lobbyWaiting,
  participantControls,
  stateBanner,
  waitingSince,
  type LifecycleControl,
  type ParticipantControl,
} from './court';
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
let hearing: { case_number: string; title: string; scheduled_at?: string } = { case_number: '', title: '' };
let me: { name: string; role: Role | string; site: string } = { name: '', role: 'observer', site: '' };
let canPublish = false;
/** The hearing's live state (from `welcome` / `hearing_status`). */
let hearingStatus: HearingStatus | null = null;
/** What this participant's role may do (from `welcome`). */
let permissions: Action[] = [];
/** This participant as the server sees them (admission, court mute, ...). */
let selfP: ParticipantInfo | null = null;
/** Everyone else (present or not, lobby included). */
let others: ParticipantInfo[] = [];
/** An unmute request from the court is waiting for the user's answer. */
let unmuteAsked = false;
/** The user accepted the court's unmute request: re-enable the mic once the server unmutes. */
let unmuteAccepted = false;
/** The last private-room notice for this participant (room ended, request refused). */
let roomNoticeState: { reason: string; kind: RoomKind | null } | null = null;
let token = '';
let hearingId = '';

/** Inbound RTP counters of one remote participant, per kind (summed over receivers). */
interface InboundCounters {
  audio: { packetsReceived: number; totalSamplesReceived: number; bytesReceived: number };
  video: { packetsReceived: number; framesDecoded: number; bytesReceived: number };
}

declare global {
  interface Window {
    __openhearing: {
      pc: () => RTCPeerConnection | null;
      participantId: () => string | null;
      joinedAt: () => number | null;
      firstRemoteFrameAt: () => number | null;
      status: () => HearingStatus | null;
      self: () => ParticipantInfo | null;
      participants: () => ParticipantInfo[];
      permissions: () => Action[];
      room: () => RoomInfo | null;
      inbound: () => Promise<Record<string, InboundCounters>>;
    };
  }
}

/**
 * Inbound counters per remote participant. A receiver is attributed to the participant
 * whose id is the `a=msid` stream id of its transceiver's m-section in the current
 * remote description (what the server says it forwards on that mid).
 */
async function inboundCounters(): Promise<Record<string, InboundCounters>> {
  const pc = session?.pc;
  const out: Record<string, InboundCounters> = {};
  if (!pc) return out;
  const streamOfMid = new Map<string, string>();
  for (const section of (pc.remoteDescription?.sdp ?? '').split(/\r?\nm=/).slice(1)) {
    const mid = /\r?\na=mid:(\S+)/.exec(section);
    const msid = /\r?\na=msid:(\S+)/.exec(section) ?? /\r?\na=ssrc:\d+ msid:(\S+)/.exec(section);
    if (mid && msid) streamOfMid.set(mid[1], msid[1]);
  }
  for (const tr of pc.getTransceivers()) {
    const pid = tr.mid ? streamOfMid.get(tr.mid) : undefined;
    if (!pid || pid === session?.participantId) continue;
    const c = (out[pid] ??= {
      audio: { packetsReceived: 0, totalSamplesReceived: 0, bytesReceived: 0 },
      video: { packetsReceived: 0, framesDecoded: 0, bytesReceived: 0 },
    });
    const stats = await tr.receiver.getStats();
    stats.forEach((r: { type: string; kind?: string; [k: string]: unknown }) => {
      if (r.type !== 'inbound-rtp') return;
      const n = (k: string) => (typeof r[k] === 'number' ? (r[k] as number) : 0);
      if (r.kind === 'audio') {
        c.audio.packetsReceived += n('packetsReceived');
        c.audio.totalSamplesReceived += n('totalSamplesReceived');
        c.audio.bytesReceived += n('bytesReceived');
      } else if (r.kind === 'video') {
        c.video.packetsReceived += n('packetsReceived');
        c.video.framesDecoded += n('framesDecoded');
        c.video.bytesReceived += n('bytesReceived');
      }
    });
  }
  return out;
}

window.__openhearing = {
  pc: () => session?.pc ?? null,
  participantId: () => session?.participantId ?? null,
  joinedAt: () => joinedAt,
  firstRemoteFrameAt: () => firstRemoteFrameAt,
  status: () => (hearingStatus ? { ...hearingStatus } : null),
  self: () => (selfP ? { ...selfP } : null),
  participants: () => others.map((p) => ({ ...p })),
  permissions: () => [...permissions],
  room: () => {
    const r = roomOf(hearingStatus, selfP?.id ?? session?.participantId);
    return r ? { ...r, members: [...r.members] } : null;
  },
  inbound: inboundCounters,
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
  stateEl: HTMLElement;
  room: HTMLElement;
  lobby: HTMLElement;
  lobbyText: HTMLElement;
  lobbySince: HTMLElement;
  mediaWait: HTMLElement;
  unmutePrompt: HTMLElement;
  privateBanner: HTMLElement;
  deliberationBanner: HTMLElement;
  roomNotice: HTMLElement;
  consultControls: HTMLElement;
  consultSignature: string;
  console: ConsoleView | null;
  dialog: HTMLElement;
}

let view: HearingView | null = null;
const remoteTracks = new Map<string, { audio: MediaStreamTrack | null; video: MediaStreamTrack | null }>();
let lastStatus: { status: SessionStatus; attempt?: number } = { status: 'connecting' };

function courtMuted(): boolean {
  return !!selfP?.muted;
}

function inLobby(): boolean {
  return selfP?.admission === 'lobby';
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
  const floorBadge = h('div', { class: 'badge floor' });
  // Away in a private room (seen from outside it), or outside the viewer's private room.
  const awayLabel = h('span');
  const awayTime = h('span', { class: 'duration' });
  const away = h('div', { class: 'badge away', testid: self ? undefined : `away-${p.id}` }, awayLabel, awayTime);
  away.hidden = true;
  const root = h(
    'article',
    { class: 'tile' + (self ? ' self' : ''), testid: `tile-${idPart}` },
    h('div', { class: 'tile-media' }, initials, video, badge, floorBadge, away, audio),
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
      const micKey: MessageKey = np.muted ? 'hearing.mutedByCourt' : np.audio ? 'hearing.micOn' : 'hearing.micOff';
      micIcon.replaceChildren(icon(np.audio && !np.muted ? 'mic' : 'micOff'));
      micIcon.className = 'state ' + (np.muted ? 'court' : np.audio ? 'on' : 'off');
      micIcon.title = t(micKey);
      micIcon.setAttribute('aria-label', micIcon.title);
      camIcon.replaceChildren(icon(np.video ? 'cam' : 'camOff'));
      camIcon.className = 'state ' + (np.video ? 'on' : 'off');
      camIcon.title = t(np.video ? 'hearing.camOn' : 'hearing.camOff');
      camIcon.setAttribute('aria-label', camIcon.title);
      root.classList.toggle('absent', !np.present);
      root.dataset.present = String(np.present);
      root.dataset.muted = String(np.muted);
      badge.textContent = !np.present ? t('hearing.notConnected') : watchOnly ? t('hearing.watchOnly') : '';
      badge.hidden = badge.textContent === '';
      const floor = !!hearingStatus?.spotlight && hearingStatus.spotlight === np.id;
      root.classList.toggle('spotlight', floor);
      root.dataset.spotlight = String(floor);
      floorBadge.textContent = t('hearing.floor');
      floorBadge.hidden = !floor;
      root.classList.toggle('no-video', !hasVideo || !np.video);
      if (self) return;
      // Private rooms: the server stops the media across the wall; never show a frozen
      // last frame as if live, say where they are instead.
      const selfId = selfP?.id ?? session?.participantId ?? null;
      const theirRoom = roomOf(hearingStatus, np.id);
      const myRoom = roomOf(hearingStatus, selfId);
      const isAway = !!theirRoom && theirRoom.id !== myRoom?.id;
      const outside = !theirRoom && !!myRoom;
      root.classList.toggle('away', isAway);
      root.classList.toggle('outside', outside);
      if (isAway) {
        root.dataset.away = theirRoom.kind;
        away.dataset.kind = theirRoom.kind;
        away.dataset.room = theirRoom.id;
        away.dataset.since = theirRoom.since;
        awayLabel.textContent = `${t(`room.away.${theirRoom.kind}` as MessageKey)} · `;
        awayTime.textContent = formatDuration(elapsedMs(theirRoom.since, Date.now()));
        awayTime.dataset.durationSince = theirRoom.since;
      } else {
        delete root.dataset.away;
        delete away.dataset.kind;
        delete away.dataset.room;
        delete away.dataset.since;
        delete awayTime.dataset.durationSince;
        awayLabel.textContent = outside ? t('room.outside') : '';
        awayTime.textContent = '';
      }
      away.hidden = !isAway && !outside;
      if (audio) audio.muted = isAway || outside;
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

function localEnabled(kind: 'audio' | 'video'): boolean {
  const tracks = kind === 'audio' ? localStream?.getAudioTracks() : localStream?.getVideoTracks();
  return !!tracks?.some((tk) => tk.enabled && tk.readyState === 'live') && canPublish;
}

function selfInfo(): ParticipantInfo {
  return {
    id: session?.participantId ?? 'self',
    name: me.name,
    role: me.role as Role,
    site: me.site,
    site_kind: selfP?.site_kind ?? 'remote',
    present: true,
    admission: selfP?.admission ?? 'admitted',
    audio: localEnabled('audio') && !courtMuted(),
    video: localEnabled('video'),
    muted: courtMuted(),
    connection: selfP?.connection ?? 'connecting',
    ...(selfP?.party ? { party: selfP.party } : {}),
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
  const stateEl = h('div', {
    class: 'state-banner',
    testid: 'hearing-state',
    attrs: { role: 'status', 'aria-live': 'polite' },
  });
  stateEl.hidden = true;

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

  // Lobby: own preview and the state banner (above); no media of the hearing.
  const lobbyPreview = h('video', {
    class: 'preview',
    testid: 'lobby-preview',
    attrs: { autoplay: '', playsinline: '', muted: '' },
  });
  lobbyPreview.muted = true;
  lobbyPreview.srcObject = localStream;
  const lobbyText = h('p');
  const lobbySince = h('p', { class: 'muted' });
  const lobby = h(
    'section',
    { class: 'card lobby', testid: 'lobby-screen' },
    tr(h('h1'), 'lobby.heading'),
    lobbyText,
    lobbySince,
    localStream?.getVideoTracks().length ? lobbyPreview : null,
  );
  lobby.hidden = true;
  const mediaWait = h('p', { class: 'note', testid: 'media-wait' });
  mediaWait.hidden = true;
  const room = h('section', { class: 'room', testid: 'room' }, mediaWait, grid, count);

  const unmutePrompt = h(
    'div',
    { class: 'unmute-prompt', testid: 'unmute-prompt', attrs: { role: 'alertdialog' } },
    tr(h('p'), 'unmute.prompt'),
    tr(
      h('button', {
        class: 'btn primary',
        testid: 'unmute-accept',
        attrs: { type: 'button' },
        on: { click: () => acceptUnmute() },
      }),
      'unmute.accept',
    ),
    tr(
      h('button', {
        class: 'btn',
        testid: 'unmute-decline',
        attrs: { type: 'button' },
        on: {
          click: () => {
            unmuteAsked = false;
            updateUnmutePrompt();
          },
        },
      }),
      'unmute.decline',
    ),
  );
  unmutePrompt.hidden = true;

  const dialog = h('div', { class: 'dialog-backdrop' });
  dialog.hidden = true;

  // Private rooms: the members' banner, the others' deliberation banner, notices, and
  // the defendant's / counsel's request buttons (in the footer).
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
  const roomNoticeEl = h('div', { class: 'room-notice', testid: 'room-notice', attrs: { role: 'status' } });
  roomNoticeEl.hidden = true;
  const consultControls = h('div', { class: 'consult-controls', testid: 'consultation-controls' });

  const sections = consoleSections(permissions);
  const consoleView = sections.participants ? makeConsole() : null;

  view = {
    grid,
    tiles: new Map(),
    self,
    status: hd.status!,
    banner,
    count,
    micBtn,
    camBtn,
    stateEl,
    room,
    lobby,
    lobbyText,
    lobbySince,
    mediaWait,
    unmutePrompt,
    privateBanner,
    deliberationBanner,
    roomNotice: roomNoticeEl,
    consultControls,
    consultSignature: '',
    console: consoleView,
    dialog,
  };
  bind(() => {
    if (!view) return;
    updateControls();
    updateStatus();
    view.self.update(selfInfo());
    for (const tile of view.tiles.values()) tile.update(tile.info);
    updateCount();
    updateCourt(true);
  });

  app.append(
    hd.el,
    h(
      'main',
      { class: 'hearing' + (consoleView ? ' with-console' : '') },
      stateEl,
      privateBanner,
      deliberationBanner,
      roomNoticeEl,
      banner,
      unmutePrompt,
      h('div', { class: 'hearing-body' }, h('div', { class: 'stage' }, lobby, room), consoleView?.root ?? null),
    ),
    h('footer', { class: 'controls' }, micBtn, camBtn, consultControls, leaveBtn),
    dialog,
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
    const forced = kind === 'audio' && courtMuted();
    const on = usable && !forced && tracks!.every((tk) => tk.enabled);
    btn.disabled = !usable || forced;
    btn.setAttribute('aria-pressed', String(!on));
    btn.classList.toggle('off', !on);
    btn.classList.toggle('court-muted', forced);
    btn.dataset.courtMuted = String(forced);
    if (forced) {
      btn.replaceChildren(icon('micOff'), h('span', { testid: 'muted-by-court', text: t('controls.mutedByCourt') }));
      return;
    }
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
  if (kind === 'audio' && courtMuted()) return;
  const enable = !tracks.every((tk) => tk.enabled);
  for (const tk of tracks) tk.enabled = enable;
  session?.sendMediaState();
  updateControls();
  view?.self.update(selfInfo());
}

/** Turns the microphone on or off without the user (court mute, accepted unmute). */
function setMic(enabled: boolean): void {
  for (const tk of localStream?.getAudioTracks() ?? []) tk.enabled = enabled;
  session?.sendMediaState();
}

function acceptUnmute(): void {
  unmuteAsked = false;
  if (session?.command({ type: 'accept_unmute' })) unmuteAccepted = true;
  updateUnmutePrompt();
}

function updateUnmutePrompt(): void {
  if (!view) return;
  view.unmutePrompt.hidden = !(unmuteAsked && courtMuted());
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

/** The state banner (everyone), lobby/room switch and media-wait note. */
function updateStateBanner(): void {
  if (!view) return;
  const el = view.stateEl;
  if (!hearingStatus) {
    el.hidden = true;
    return;
  }
  const everyone = selfP ? [selfP, ...others] : others;
  const b = stateBanner(hearingStatus, hearing, everyone);
  el.hidden = false;
  el.dataset.state = b.state;
  el.dataset.locked = String(hearingStatus.locked);
  // "Phiên tòa tạm ngừng: <reason>" as one run of text (the banner is a flex row).
  const main = h('span', { class: 'state-main' }, h('strong', { class: 'state-title', text: b.title }));
  if (b.reason) main.append(': ', h('span', { testid: 'hearing-state-reason', text: b.reason }));
  const parts: Node[] = [main];
  for (const d of b.details) parts.push(h('span', { class: 'state-detail', text: d }));
  const floor = h('span', { class: 'floor-holder', testid: 'floor-holder' });
  floor.textContent = b.floor ? t('state.floor', { name: b.floor }) : '';
  floor.hidden = !b.floor;
  if (hearingStatus.spotlight) floor.dataset.participant = hearingStatus.spotlight;
  parts.push(floor);
  el.replaceChildren(...parts);
}

function updateRoomVisibility(): void {
  if (!view) return;
  const lobby = inLobby();
  view.lobby.hidden = !lobby;
  view.room.hidden = lobby;
  const role = (selfP?.role ?? me.role) as Role;
  view.lobbyText.textContent = t(CALL_IN_ROLES.includes(role) ? 'lobby.bodyWitness' : 'lobby.body');
  view.lobbySince.textContent = lobby ? waitingSince(selfP?.lobby_since, Date.now()) : '';
  const waiting = !!hearingStatus && !mediaFlows(hearingStatus.state);
  view.mediaWait.hidden = !waiting;
  view.mediaWait.textContent = waiting ? t('state.waitMedia') : '';
}

/** Everything that depends on the court state: banner, lobby/room, tiles, console. */
function updateCourt(force = false): void {
  updateStateBanner();
  updateRooms();
  updateRoomVisibility();
  updateControls();
  updateUnmutePrompt();
  if (view) {
    view.self.update(selfInfo());
    for (const tile of view.tiles.values()) tile.update(tile.info);
    orderTiles();
  }
  renderConsole(force);
}

// ---------------------------------------------------------------- private rooms

/** Members' banner, the deliberation banner, the notice and the request buttons. */
function updateRooms(): void {
  if (!view) return;
  const selfId = selfP?.id ?? session?.participantId ?? null;
  const everyone = selfP ? [selfP, ...others] : others;
  const now = Date.now();

  // Members of a private room: nobody else can hear them, and they hear nobody else.
  const pb = privateRoomBanner(hearingStatus, everyone, selfId, now);
  const el = view.privateBanner;
  el.hidden = !pb;
  if (pb) {
    el.dataset.kind = pb.kind;
    el.dataset.room = pb.roomId;
    const room = roomOf(hearingStatus, selfId)!;
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
            on: { click: () => command({ type: 'end_consultation', room_id: room.id }) },
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
  const dw = deliberationWaiting(hearingStatus, selfId, now);
  const db = view.deliberationBanner;
  db.hidden = !dw;
  if (dw) {
    const since = roomsOf(hearingStatus).find((r) => r.id === dw.roomId)!.since;
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
  const n = view.roomNotice;
  n.hidden = !roomNoticeState;
  if (roomNoticeState) {
    const ns = roomNoticeState;
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
            roomNoticeState = null;
            updateRooms();
          },
        },
      }),
    );
  } else {
    delete n.dataset.reason;
    n.replaceChildren();
  }

  // A defendant / their counsel: ask for a consultation with the partner.
  const partners = consultationPartners(permissions, selfP, others, hearingStatus);
  const entries = partners.map((p) => ({ p, pending: selfId ? pendingConsultation(hearingStatus, selfId, p.id) : null }));
  const sig = JSON.stringify([getLang(), entries.map((e) => [e.p.id, e.p.name, e.pending?.id ?? null])]);
  if (sig !== view.consultSignature) {
    view.consultSignature = sig;
    view.consultControls.replaceChildren(
      ...entries.map(({ p, pending }) => {
        const btn = h('button', {
          class: 'btn control consult',
          testid: `request-consultation-${p.id}`,
          attrs: { type: 'button', 'data-pending': String(!!pending) },
          text: pending ? t('room.requestPending', { name: p.name }) : t('room.request', { name: p.name }),
          on: {
            click: () => {
              roomNoticeState = null;
              command({ type: 'request_consultation', participant_id: p.id });
              updateRooms();
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
  view.consultControls.hidden = entries.length === 0;
}

/** Running durations ("mm:ss") of rooms, every second. */
function tickDurations(): void {
  const now = Date.now();
  document.querySelectorAll<HTMLElement>('[data-duration-since]').forEach((el) => {
    el.textContent = formatDuration(elapsedMs(el.dataset.durationSince, now));
  });
}

function syncParticipants(list: ParticipantInfo[]): void {
  others = list;
  if (!view) return;
  const seen = new Set<string>();
  for (const p of list) {
    // The room shows those admitted; the lobby is in the console.
    if (p.admission !== 'admitted') continue;
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
      tile.setTrack('audio', null);
      tile.setTrack('video', null);
      tile.root.remove();
      view.tiles.delete(id);
    }
  }
  orderTiles();
  updateCount();
  updateStateBanner();
  updateRooms();
  renderConsole();
}

/** Order: the one with the floor first (shown large), self, then court order. */
function orderTiles(): void {
  if (!view) return;
  const spot = hearingStatus?.spotlight ?? null;
  const ordered = [...view.tiles.values()].sort((a, b) => byCourtOrder(a.info, b.info));
  const want = [view.self, ...ordered].sort(
    (a, b) => Number(b.info.id === spot && spot !== null) - Number(a.info.id === spot && spot !== null),
  );
  want.forEach((tl, i) => {
    if (view!.grid.children[i] !== tl.root) view!.grid.insertBefore(tl.root, view!.grid.children[i] ?? null);
  });
  view.grid.dataset.count = String(want.length);
  view.grid.classList.toggle('has-spotlight', want.some((tl) => tl.info.id === spot));
}

// ---------------------------------------------------------------- court console

interface ConsoleView {
  root: HTMLElement;
  lifecycle: HTMLElement;
  lifecycleButtons: Map<LifecycleControl, HTMLButtonElement>;
  reason: HTMLInputElement;
  date: HTMLInputElement;
  dateLabel: HTMLElement;
  hint: HTMLElement;
  lock: HTMLButtonElement | null;
  muteAll: HTMLButtonElement | null;
  lobbySection: HTMLElement | null;
  lobbyTitle: HTMLElement | null;
  admitAll: HTMLButtonElement | null;
  lobbyList: HTMLElement | null;
  participantList: HTMLElement;
  roomsSection: HTMLElement | null;
  requestsTitle: HTMLElement | null;
  requestsList: HTMLElement | null;
  roomsTitle: HTMLElement | null;
  roomsList: HTMLElement | null;
  startDeliberation: HTMLButtonElement | null;
  endDeliberation: HTMLButtonElement | null;
  signature: string;
}

const LIFECYCLE_KEYS: Record<LifecycleControl, MessageKey> = {
  open: 'console.open',
  start: 'console.start',
  suspend: 'console.suspend',
  resume: 'console.resume',
  adjourn: 'console.adjourn',
  close: 'console.close',
};

function command(msg: CourtCommand): void {
  if (!session?.command(msg)) {
    bannerError = { code: 'not_joined', message: '', fatal: false };
    showBanner();
  }
}

function makeConsole(): ConsoleView {
  const sections = consoleSections(permissions);
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
  const lifecycle = h('section', { class: 'console-section lifecycle' });
  if (sections.lifecycle) {
    const row = h('div', { class: 'button-row' });
    for (const c of ['open', 'start', 'suspend', 'resume', 'adjourn', 'close'] as const) {
      const btn = h('button', {
        class: 'btn small' + (c === 'close' ? ' danger' : c === 'open' || c === 'start' || c === 'resume' ? ' primary' : ''),
        testid: `state-${c}`,
        attrs: { type: 'button' },
        on: { click: () => lifecycleClick(c) },
      });
      tr(btn, LIFECYCLE_KEYS[c]);
      lifecycleButtons.set(c, btn);
      row.append(btn);
    }
    lifecycle.append(h('label', { class: 'field' }, tr(h('span'), 'console.reason'), reason), dateLabel, row, hint);
    root.append(lifecycle);
  }

  let lock: HTMLButtonElement | null = null;
  let muteAll: HTMLButtonElement | null = null;
  if (sections.lock || sections.muteAll) {
    const row = h('div', { class: 'button-row' });
    if (sections.lock) {
      lock = h('button', {
        class: 'btn small',
        testid: 'lock-toggle',
        attrs: { type: 'button' },
        on: { click: () => command({ type: 'lock', locked: !hearingStatus?.locked }) },
      });
      row.append(lock);
    }
    if (sections.muteAll) {
      muteAll = h('button', {
        class: 'btn small',
        testid: 'mute-all',
        attrs: { type: 'button' },
        on: { click: () => command({ type: 'mute_all' }) },
      });
      tr(muteAll, 'console.muteAll');
      row.append(muteAll);
    }
    root.append(h('section', { class: 'console-section' }, row));
  }

  let lobbySection: HTMLElement | null = null;
  let lobbyTitle: HTMLElement | null = null;
  let admitAll: HTMLButtonElement | null = null;
  let lobbyList: HTMLElement | null = null;
  if (sections.lobby) {
    lobbyTitle = h('h3');
    lobbyList = h('ul', { class: 'plist', testid: 'lobby-list' });
    lobbySection = h('section', { class: 'console-section' }, lobbyTitle);
    if (permissions.includes('admit')) {
      admitAll = h('button', {
        class: 'btn small primary',
        testid: 'admit-all',
        attrs: { type: 'button' },
        on: { click: () => command({ type: 'admit_all' }) },
      });
      tr(admitAll, 'lobby.admitAll');
      lobbySection.append(admitAll);
    }
    lobbySection.append(lobbyList);
    root.append(lobbySection);
  }

  // Private rooms: consultation requests, rooms in use (recall), deliberation.
  let roomsSection: HTMLElement | null = null;
  let requestsTitle: HTMLElement | null = null;
  let requestsList: HTMLElement | null = null;
  let roomsTitle: HTMLElement | null = null;
  let roomsList: HTMLElement | null = null;
  let startDeliberation: HTMLButtonElement | null = null;
  let endDeliberation: HTMLButtonElement | null = null;
  if (sections.rooms) {
    roomsSection = h('section', { class: 'console-section rooms', testid: 'private-rooms-section' });
    if (permissions.includes('deliberate')) {
      startDeliberation = h('button', {
        class: 'btn small primary',
        testid: 'start-deliberation',
        attrs: { type: 'button' },
        on: { click: () => command({ type: 'start_deliberation' }) },
      });
      tr(startDeliberation, 'room.startDeliberation');
      endDeliberation = h('button', {
        class: 'btn small primary',
        testid: 'end-deliberation',
        attrs: { type: 'button' },
        on: { click: () => command({ type: 'end_deliberation' }) },
      });
      tr(endDeliberation, 'room.endDeliberation');
      roomsSection.append(h('div', { class: 'button-row' }, startDeliberation, endDeliberation));
    }
    if (permissions.includes('approve_consultation')) {
      requestsTitle = h('h3');
      requestsList = h('ul', { class: 'plist', testid: 'consultation-requests' });
      roomsSection.append(requestsTitle, requestsList);
    }
    roomsTitle = h('h3');
    roomsList = h('ul', { class: 'plist', testid: 'private-rooms' });
    roomsSection.append(roomsTitle, roomsList);
    root.append(roomsSection);
  }

  const participantList = h('div', { class: 'site-groups', testid: 'participant-list' });
  root.append(h('section', { class: 'console-section' }, tr(h('h3'), 'console.participants'), participantList));

  return {
    root,
    lifecycle,
    lifecycleButtons,
    reason,
    date,
    dateLabel,
    hint,
    lock,
    muteAll,
    lobbySection,
    lobbyTitle,
    admitAll,
    lobbyList,
    participantList,
    roomsSection,
    requestsTitle,
    requestsList,
    roomsTitle,
    roomsList,
    startDeliberation,
    endDeliberation,
    signature: '',
  };
}

function lifecycleClick(c: LifecycleControl): void {
  const cv = view?.console;
  if (!cv) return;
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
    command({
      type: 'set_state',
      state: lifecycleTarget(c),
      ...(reason ? { reason } : {}),
      ...(adjourned_to ? { adjourned_to } : {}),
    });
    cv.reason.value = '';
    cv.date.value = '';
  };
  if (needs.confirm) askConfirm(t('confirm.close'), false, send);
  else send();
}

/** An in-page confirmation (headless tests can drive it; no window.confirm). */
function askConfirm(text: string, withReason: boolean, onYes: (reason: string) => void): void {
  if (!view) return;
  const d = view.dialog;
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

function controlButton(c: ParticipantControl, p: ParticipantInfo): HTMLButtonElement {
  const locked = !!hearingStatus?.locked;
  const spotlit = hearingStatus?.spotlight === p.id;
  const run: Record<ParticipantControl, () => void> = {
    admit: () => command({ type: 'admit', participant_id: p.id }),
    deny: () => command({ type: 'deny', participant_id: p.id }),
    'call-in': () => command({ type: 'call_in', participant_id: p.id }),
    dismiss: () => command({ type: 'dismiss', participant_id: p.id }),
    mute: () => command({ type: 'mute', participant_id: p.id }),
    'request-unmute': () => command({ type: 'request_unmute', participant_id: p.id }),
    spotlight: () => command({ type: 'spotlight', participant_id: spotlit ? null : p.id }),
    remove: () =>
      askConfirm(t('confirm.remove', { name: p.name }), true, (reason) =>
        command({ type: 'remove', participant_id: p.id, ...(reason ? { reason } : {}) }),
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
function renderConsole(force = false): void {
  const cv = view?.console;
  if (!cv) return;
  const st = hearingStatus;
  const state = st?.state ?? 'scheduled';
  // Lifecycle buttons: only the moves the current state allows.
  const allowed = lifecycleControls(permissions, state);
  for (const [c, btn] of cv.lifecycleButtons) btn.hidden = !st || !allowed.includes(c);
  cv.dateLabel.hidden = !allowed.includes('adjourn');
  if (cv.lock) {
    const locked = !!st?.locked;
    cv.lock.textContent = t(locked ? 'console.unlock' : 'console.lock');
    cv.lock.setAttribute('aria-pressed', String(locked));
  }

  const everyone = selfP ? [selfP, ...others] : [...others];
  const signature = JSON.stringify([getLang(), st, everyone, Math.floor(Date.now() / 60000)]);
  if (!force && signature === cv.signature) return;
  cv.signature = signature;
  const selfId = selfP?.id ?? null;

  if (cv.lobbyList && cv.lobbyTitle) {
    const waiting = lobbyWaiting(others);
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
                ...participantControls(permissions, p, selfId)
                  .filter((c) => c === 'admit' || c === 'call-in' || c === 'deny')
                  .map((c) => controlButton(c, p)),
              ),
            ),
          )),
    );
  }

  renderRoomsConsole(cv, everyone);

  const away = new Map(awayList(st, everyone, selfId, Date.now()).map((a) => [a.participant.id, a]));
  const groups = groupBySite(everyone);
  cv.participantList.replaceChildren(
    ...groups.map((g, i) =>
      h(
        'section',
        { class: 'site-group', testid: `site-group-${i}`, attrs: { 'data-site': g.site, 'data-site-kind': g.kind } },
        h('h4', {}, h('span', { text: g.site }), h('span', { class: 'muted small', text: ` · ${t(`site.${g.kind}` as MessageKey)}` })),
        h(
          'ul',
          { class: 'plist' },
          ...g.members.map((p) => participantRow(p, p.id === selfId, away.get(p.id)?.kind ?? null)),
        ),
      ),
    ),
  );
}

/** The console's private-room part: requests to answer, rooms in use, deliberation. */
function renderRoomsConsole(cv: ConsoleView, everyone: ParticipantInfo[]): void {
  if (!cv.roomsSection) return;
  const st = hearingStatus;
  const rc = roomControls(permissions, st);
  if (cv.startDeliberation) cv.startDeliberation.hidden = !rc.startDeliberation;
  if (cv.endDeliberation) cv.endDeliberation.hidden = !rc.endDeliberation;
  if (cv.requestsList && cv.requestsTitle) {
    const entries = consultationRequestEntries(st, everyone);
    cv.requestsTitle.textContent = t('room.requests', { n: entries.length });
    cv.requestsList.replaceChildren(
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
                  on: { click: () => command({ type: 'answer_consultation', request_id: e.request.id, approve: true }) },
                }),
                h('button', {
                  class: 'btn small danger',
                  testid: `refuse-consultation-${e.request.id}`,
                  attrs: { type: 'button' },
                  text: t('room.refuse'),
                  on: { click: () => command({ type: 'answer_consultation', request_id: e.request.id, approve: false }) },
                }),
              ),
            ),
          )),
    );
  }
  if (cv.roomsList && cv.roomsTitle) {
    const rooms = roomsOf(st);
    cv.roomsTitle.textContent = t('room.rooms', { n: rooms.length });
    cv.roomsTitle.hidden = rooms.length === 0;
    const name = (id: string) => {
      const p = everyone.find((x) => x.id === id);
      return p ? `${p.name} (${roleName(p.role)})` : id;
    };
    cv.roomsList.replaceChildren(
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
          r.kind === 'consultation' && rc.recall
            ? h(
                'div',
                { class: 'pctl' },
                h('button', {
                  class: 'btn small',
                  testid: `recall-consultation-${r.id}`,
                  attrs: { type: 'button' },
                  text: t('room.recall'),
                  on: { click: () => command({ type: 'end_consultation', room_id: r.id }) },
                }),
              )
            : null,
        ),
      ),
    );
  }
}

function participantRow(p: ParticipantInfo, self: boolean, awayKind: RoomKind | null): HTMLElement {
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
  if (hearingStatus?.spotlight === p.id) badges.push(h('span', { class: 'tag floor', text: t('hearing.floor') }));
  if (awayKind) badges.push(h('span', { class: 'tag away', text: t(`room.away.${awayKind}` as MessageKey) }));
  const controls = participantControls(permissions, p, self ? p.id : null)
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
        'data-room-kind': roomOf(hearingStatus, p.id)?.kind ?? 'none',
      },
    },
    h('div', { class: 'pinfo' }, personText(p, self), h('div', { class: 'pstate' }, mic, cam, conn, ...badges)),
    h('div', { class: 'pctl' }, ...controls.map((c) => controlButton(c, p))),
  );
}

// ---------------------------------------------------------------- session wiring

function applySelf(p: ParticipantInfo): void {
  const wasMuted = courtMuted();
  const wasLobby = inLobby();
  selfP = p;
  me = { name: p.name, role: p.role, site: p.site };
  if (p.muted && !wasMuted) {
    // The court muted us: stop sending at once (the server already stopped forwarding).
    unmuteAccepted = false;
    setMic(false);
  } else if (!p.muted && wasMuted) {
    unmuteAsked = false;
    if (unmuteAccepted) setMic(true);
    unmuteAccepted = false;
  }
  if (wasLobby !== inLobby() && view) {
    // Admitted, or dismissed back to the lobby: the server renegotiates the media.
    view.self.setTrack('video', localStream?.getVideoTracks()[0] ?? null);
  }
  updateCourt();
}

function startSession(): void {
  session?.dispose();
  remoteTracks.clear();
  joinedAt = null;
  firstRemoteFrameAt = null;
  bannerError = null;
  bannerLost = false;
  lastStatus = { status: 'connecting' };
  unmuteAsked = false;
  unmuteAccepted = false;
  roomNoticeState = null;
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
          const err = detail.error!;
          if (FINAL_CODES.includes(err.code as ErrorCode)) renderFinal(err);
          else renderFailed(err);
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
      welcome(w) {
        if (session !== s) return;
        hearing = { case_number: w.hearing.case_number, title: w.hearing.title, scheduled_at: w.hearing.scheduled_at };
        hearingStatus = w.status;
        canPublish = w.canPublish;
        const permsChanged = JSON.stringify(w.permissions) !== JSON.stringify(permissions);
        permissions = w.permissions;
        others = [];
        selfP = null;
        if (permsChanged || !view) {
          // The console depends on the permissions: rebuild the screen around the session.
          renderHearing();
          updateStatus();
          showBanner();
        }
        applySelf(w.you);
        relabel();
      },
      participants(list) {
        if (session !== s) return;
        syncParticipants(list);
      },
      self(p) {
        if (session !== s) return;
        applySelf(p);
      },
      hearingStatus(st) {
        if (session !== s) return;
        hearingStatus = st;
        updateCourt();
      },
      unmuteRequested() {
        if (session !== s) return;
        if (!courtMuted()) return;
        unmuteAsked = true;
        updateUnmutePrompt();
      },
      consultationAnswered(_requestId, approved) {
        if (session !== s) return;
        roomNoticeState = approved ? null : { reason: 'refused', kind: 'consultation' };
        updateRooms();
      },
      roomEnded(ev) {
        if (session !== s) return;
        roomNoticeState = { reason: ev.reason, kind: ev.kind };
        updateRooms();
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

// ---------------------------------------------------------------- screens: left / failed / final

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

/** The end of this participant's hearing: closed, refused, removed or link revoked. No rejoin. */
function renderFinal(err: ServerError): void {
  session?.dispose();
  session = null;
  view = null;
  stopStream(localStream);
  localStream = null;
  newScreen();
  const code = err.code as ErrorCode;
  const closed = code === 'hearing_closed';
  const reason = closed ? (hearingStatus?.state === 'closed' ? hearingStatus.reason ?? '' : '') : '';
  const msg = h('p', { testid: 'error-message' });
  const reasonEl = h('p', { testid: 'final-reason' });
  const heading = h('h1');
  bind(() => {
    heading.textContent = t(`final.${code}` as MessageKey);
    msg.textContent = errorText(code, err.message);
    reasonEl.textContent = reason ? t('final.reason', { reason }) : '';
    reasonEl.hidden = !reason;
  });
  app.append(
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

// Time in private rooms runs on the banners and badges.
setInterval(() => {
  if (view && roomsOf(hearingStatus).length > 0) tickDurations();
}, 1000);

// Waiting times ("since 09:05 (12 min)") move on even when nothing else happens.
setInterval(() => {
  if (!view) return;
  renderConsole();
  updateRoomVisibility();
}, 30_000);

window.addEventListener('pagehide', () => {
  session?.dispose();
  stopStream(localStream);
});

boot();
