// The hearing screen: the header with the connection status, the hearing-state banner,
// the lobby (own preview, waiting text) or the room (one tile per admitted participant,
// the one with the floor first), the error / connection-lost banner, the court's unmute
// prompt, the footer controls (mic, camera, consultation requests, leave), and for the
// court the console. It owns its DOM handles (`view`, null while another screen is
// shown); the data is in state.ts. main.ts wires the session's events to the update
// functions exported here. The private-room parts are rooms.ts's, the console console.ts's.
import { byCourtOrder, CALL_IN_ROLES, consoleSections, roomOf, roomsOf, stateBanner, waitingSince } from '../court';
import { makeConsole, renderConsole, renderHealth, type ConsoleView } from '../console';
import { localLoss } from '../health';
import { integrityNotices, receptionNotice } from '../healthView';
import { h, icon } from '../dom';
import { errorText, t, type MessageKey } from '../i18n';
import { mediaFlows, type CourtCommand, type DeviceEvent, type ParticipantInfo, type Role } from '../protocol';
import { makeRoomsView, tickDurations, updateRooms, type RoomsView } from '../rooms';
import type { RemoteKind, SessionStatus } from '../session';
import { courtMuted, everyone, inLobby, state } from '../state';
import { bind, header, mount, newScreen, relabel, tr } from '../ui';
import {
  emptyCounters,
  emptyOutbound,
  grade,
  gradeUplink,
  sampleInbound,
  sampleOutbound,
  type Expected,
  type InboundCounters,
  type OutboundCounters,
} from '../reception';
import { makeTile, type TileView } from './tile';

interface HearingView {
  grid: HTMLElement;
  tiles: Map<string, TileView>;
  self: TileView;
  status: HTMLElement;
  banner: HTMLElement;
  count: HTMLElement;
  micBtn: HTMLButtonElement;
  camBtn: HTMLButtonElement;
  shareBtn: HTMLButtonElement;
  stopShareBtn: HTMLButtonElement;
  /** The shared screens, large above the camera tiles. */
  screens: HTMLElement;
  screenTiles: Map<string, ScreenView>;
  stateEl: HTMLElement;
  room: HTMLElement;
  lobby: HTMLElement;
  lobbyText: HTMLElement;
  lobbySince: HTMLElement;
  mediaWait: HTMLElement;
  unmutePrompt: HTMLElement;
  rooms: RoomsView;
  console: ConsoleView | null;
}

/** One remote participant's shared screen. */
interface ScreenView {
  root: HTMLElement;
  video: HTMLVideoElement;
  label: HTMLElement;
}

let view: HearingView | null = null;

/** Whether the hearing screen is shown. */
export function hearingShown(): boolean {
  return view !== null;
}

/** Forgets the hearing screen (another screen replaces it). */
export function closeHearing(): void {
  view = null;
}

function localEnabled(kind: 'audio' | 'video'): boolean {
  const tracks = kind === 'audio' ? state.localStream?.getAudioTracks() : state.localStream?.getVideoTracks();
  return !!tracks?.some((tk) => tk.enabled && tk.readyState === 'live') && state.canPublish;
}

function selfInfo(): ParticipantInfo {
  const selfP = state.self;
  return {
    id: state.session?.participantId ?? 'self',
    name: state.me.name,
    role: state.me.role as Role,
    site: state.me.site,
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

/** Sends a court command; when not connected, says so in the error banner. */
function command(msg: CourtCommand): void {
  if (!state.session?.command(msg)) {
    state.bannerError = { code: 'not_joined', message: '', fatal: false };
    showBanner();
  }
}

export function renderHearing(onLeave: () => void): void {
  newScreen();
  const hd = header(true);
  const grid = h('section', { class: 'grid', attrs: { 'aria-live': 'off' } });
  const self = makeTile(selfInfo(), true);
  self.setTrack('video', state.localStream?.getVideoTracks()[0] ?? null);
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
  // Screen sharing (with `publish_screen` only; the server refuses it otherwise).
  const shareBtn = h('button', {
    class: 'btn control',
    testid: 'share-screen',
    attrs: { type: 'button' },
    on: { click: () => void shareScreen() },
  });
  shareBtn.append(icon('screen'), tr(h('span'), 'controls.shareScreen'));
  const stopShareBtn = h('button', {
    class: 'btn control sharing',
    testid: 'stop-share-screen',
    attrs: { type: 'button' },
    on: { click: () => state.session?.stopScreenShare() },
  });
  stopShareBtn.append(icon('screen'), tr(h('span'), 'controls.stopShareScreen'));
  shareBtn.hidden = stopShareBtn.hidden = true;
  const leaveBtn = h('button', {
    class: 'btn control danger',
    testid: 'leave',
    attrs: { type: 'button' },
    on: { click: () => onLeave() },
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
  lobbyPreview.srcObject = state.localStream;
  const lobbyText = h('p');
  const lobbySince = h('p', { class: 'muted' });
  const lobby = h(
    'section',
    { class: 'card lobby', testid: 'lobby-screen' },
    tr(h('h1'), 'lobby.heading'),
    lobbyText,
    lobbySince,
    state.localStream?.getVideoTracks().length ? lobbyPreview : null,
  );
  lobby.hidden = true;
  const mediaWait = h('p', { class: 'note', testid: 'media-wait' });
  mediaWait.hidden = true;
  const screens = h('section', { class: 'screens', attrs: { 'aria-live': 'off' } });
  screens.hidden = true;
  const room = h('section', { class: 'room', testid: 'room' }, mediaWait, screens, grid, count);

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
            state.unmuteAsked = false;
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
  const rooms = makeRoomsView(command);

  const sections = consoleSections(state.permissions);
  const consoleView = sections.participants ? makeConsole(command, dialog) : null;

  view = {
    grid,
    tiles: new Map(),
    self,
    status: hd.status!,
    banner,
    count,
    micBtn,
    camBtn,
    shareBtn,
    stopShareBtn,
    screens,
    screenTiles: new Map(),
    stateEl,
    room,
    lobby,
    lobbyText,
    lobbySince,
    mediaWait,
    unmutePrompt,
    rooms,
    console: consoleView,
  };
  bind(() => {
    if (!view) return;
    updateControls();
    updateStatus();
    view.self.update(selfInfo());
    for (const tile of view.tiles.values()) tile.update(tile.info);
    for (const pid of view.screenTiles.keys()) labelScreen(pid);
    updateCount();
    updateCourt(true);
  });

  // Screens shared before this screen was drawn (a rejoin, a language switch).
  for (const [pid, track] of state.remoteScreens) setScreen(pid, track);

  mount(
    hd.el,
    h(
      'main',
      { class: 'hearing' + (consoleView ? ' with-console' : '') },
      stateEl,
      rooms.privateBanner,
      rooms.deliberationBanner,
      rooms.notice,
      banner,
      unmutePrompt,
      h('div', { class: 'hearing-body' }, h('div', { class: 'stage' }, lobby, room), consoleView?.root ?? null),
    ),
    h('footer', { class: 'controls' }, micBtn, camBtn, shareBtn, stopShareBtn, rooms.consultControls, leaveBtn),
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
    const tracks = kind === 'audio' ? state.localStream?.getAudioTracks() : state.localStream?.getVideoTracks();
    const usable = state.canPublish && !!tracks?.length;
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
  updateScreenShare();
}

/** The share / stop-sharing buttons: only for a role with `publish_screen`. */
export function updateScreenShare(): void {
  if (!view) return;
  const may = state.canPublish && state.permissions.includes('publish_screen') && canCapture();
  const sharing = !!state.session?.sharingScreen;
  view.shareBtn.hidden = !may || sharing;
  view.stopShareBtn.hidden = !sharing;
  view.shareBtn.disabled = !state.session?.hasWelcome;
}

function canCapture(): boolean {
  return typeof navigator !== 'undefined' && typeof navigator.mediaDevices?.getDisplayMedia === 'function';
}

/** Asks the browser for a screen, window or tab and sends it (session.ts, media.ts). */
async function shareScreen(): Promise<void> {
  const session = state.session;
  if (!session || session.sharingScreen || !canCapture()) return;
  let stream: MediaStream;
  try {
    stream = await navigator.mediaDevices.getDisplayMedia({
      video: { width: { ideal: 1920 }, height: { ideal: 1080 }, frameRate: { ideal: 5, max: 15 } },
      audio: false,
    });
  } catch (e) {
    // Cancelled in the browser's picker, or refused: nothing is shared.
    console.info('[openhearing] screen capture not started', e);
    return;
  }
  const track = stream.getVideoTracks()[0];
  if (!track) return;
  // Sharp text over smooth motion: the encoder keeps the detail (and one encoding).
  track.contentHint = 'detail';
  if (state.session !== session || !session.startScreenShare(track, stream)) stream.getTracks().forEach((tk) => tk.stop());
  updateScreenShare();
}

function toggle(kind: 'audio' | 'video'): void {
  const tracks = kind === 'audio' ? state.localStream?.getAudioTracks() : state.localStream?.getVideoTracks();
  if (!tracks?.length || !state.canPublish) return;
  if (kind === 'audio' && courtMuted()) return;
  const enable = !tracks.every((tk) => tk.enabled);
  for (const tk of tracks) tk.enabled = enable;
  state.session?.sendMediaState();
  updateControls();
  view?.self.update(selfInfo());
}

/** Turns the microphone on or off without the user (court mute, accepted unmute). */
function setMic(enabled: boolean): void {
  for (const tk of state.localStream?.getAudioTracks() ?? []) tk.enabled = enabled;
  state.session?.sendMediaState();
}

function acceptUnmute(): void {
  state.unmuteAsked = false;
  if (state.session?.command({ type: 'accept_unmute' })) state.unmuteAccepted = true;
  updateUnmutePrompt();
}

export function updateUnmutePrompt(): void {
  if (!view) return;
  view.unmutePrompt.hidden = !(state.unmuteAsked && courtMuted());
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

export function updateStatus(): void {
  if (!view) return;
  view.status.textContent = t(STATUS_KEYS[state.lastStatus.status], { n: state.lastStatus.attempt ?? 1 });
  view.status.dataset.state = state.lastStatus.status;
}

/** The error banner: the last error, or "connection lost" with a reconnect button. */
export function showBanner(): void {
  if (!view) return;
  const b = view.banner;
  const err = state.bannerError;
  b.replaceChildren();
  if (state.bannerLost) {
    const btn = h('button', {
      class: 'btn primary',
      testid: 'rejoin',
      attrs: { type: 'button' },
      on: { click: () => state.session?.reconnect() },
    });
    btn.textContent = t('lost.reconnect');
    b.append(
      h('strong', { text: t('lost.heading') }),
      h('p', { testid: 'error-message', text: err ? errorText(err.code, err.message) : t('lost.body') }),
      btn,
    );
  } else if (err) {
    b.append(h('p', { testid: 'error-message', text: errorText(err.code, err.message) }));
  }
  if (state.deviceWaiting) b.append(h('p', { testid: 'device-waiting', text: t('device.waiting') }));
  b.hidden = !state.bannerLost && !err && !state.deviceWaiting;
}

/** The state banner (everyone), lobby/room switch and media-wait note. */
function updateStateBanner(): void {
  if (!view) return;
  const el = view.stateEl;
  const hs = state.hearingStatus;
  if (!hs) {
    el.hidden = true;
    return;
  }
  const b = stateBanner(hs, state.hearing, everyone());
  el.hidden = false;
  el.dataset.state = b.state;
  el.dataset.locked = String(hs.locked);
  // "Phiên tòa tạm ngừng: <reason>" as one run of text (the banner is a flex row).
  const main = h('span', { class: 'state-main' }, h('strong', { class: 'state-title', text: b.title }));
  if (b.reason) main.append(': ', h('span', { testid: 'hearing-state-reason', text: b.reason }));
  const parts: Node[] = [main];
  for (const d of b.details) parts.push(h('span', { class: 'state-detail', text: d }));
  const floor = h('span', { class: 'floor-holder', testid: 'floor-holder' });
  floor.textContent = b.floor ? t('state.floor', { name: b.floor }) : '';
  floor.hidden = !b.floor;
  if (hs.spotlight) floor.dataset.participant = hs.spotlight;
  parts.push(floor);
  if (hs.recording) {
    parts.push(h('span', { class: 'recording', testid: 'recording-indicator', text: t('state.recording') }));
  }
  if (state.recordingAlert) {
    parts.push(
      h('span', {
        class: 'recording-alert',
        testid: 'recording-alert',
        text: t('state.recordingAlert', { message: state.recordingAlert }),
      }),
    );
  }
  parts.push(...secondDeviceNotices());
  parts.push(...integrityNotices(command));
  const reception = receptionNotice();
  if (reception) parts.push(reception);
  el.replaceChildren(...parts);
}

const DEVICE_NOTICE: Record<DeviceEvent, MessageKey> = {
  waiting: 'device.noticeWaiting',
  replaced: 'device.noticeReplaced',
  refused: 'device.noticeRefused',
  withdrawn: 'device.noticeWithdrawn',
};

/** For the court: a participant's link used on a second device, with admit/refuse
 * while that device waits. */
function secondDeviceNotices(): Node[] {
  const mayAdmit = state.permissions.includes('admit');
  const out: Node[] = [];
  for (const [pid, n] of state.secondDevices) {
    const who = everyone().find((p) => p.id === pid);
    const text = t(DEVICE_NOTICE[n.event], {
      name: who?.name ?? pid,
      agent: n.userAgent ?? t('device.unknownAgent'),
    });
    const notice = h('span', { class: 'recording-alert', testid: 'second-device-notice', text });
    notice.dataset.participant = pid;
    notice.dataset.event = n.event;
    if (n.event === 'waiting' && mayAdmit) {
      const button = (what: 'admit' | 'refuse', msg: CourtCommand): HTMLElement => {
        const b = h('button', {
          class: 'btn',
          testid: `second-device-${what}-${pid}`,
          attrs: { type: 'button' },
          on: { click: () => command(msg) },
        });
        b.textContent = t(what === 'admit' ? 'device.admit' : 'device.refuse');
        return b;
      };
      notice.append(
        ' ',
        button('admit', { type: 'admit_device', participant_id: pid }),
        ' ',
        button('refuse', { type: 'refuse_device', participant_id: pid }),
      );
    }
    out.push(notice);
  }
  return out;
}

function updateRoomVisibility(): void {
  if (!view) return;
  const lobby = inLobby();
  view.lobby.hidden = !lobby;
  view.room.hidden = lobby;
  const role = (state.self?.role ?? state.me.role) as Role;
  view.lobbyText.textContent = t(CALL_IN_ROLES.includes(role) ? 'lobby.bodyWitness' : 'lobby.body');
  view.lobbySince.textContent = lobby ? waitingSince(state.self?.lobby_since, Date.now()) : '';
  const waiting = !!state.hearingStatus && !mediaFlows(state.hearingStatus.state);
  view.mediaWait.hidden = !waiting;
  view.mediaWait.textContent = waiting ? t('state.waitMedia') : '';
}

/** The private-room banners, notice and request buttons (rooms.ts). */
export function refreshRooms(): void {
  if (view) updateRooms(view.rooms);
}

/** Media health changed (cells, alerts, this page's own reception). */
export function refreshHealth(): void {
  updateStateBanner();
  if (view?.console) renderHealth(view.console);
}

function refreshConsole(force = false): void {
  if (view?.console) renderConsole(view.console, force);
}

/** Everything that depends on the court state: banner, lobby/room, tiles, console. */
export function updateCourt(force = false): void {
  updateStateBanner();
  refreshRooms();
  updateRoomVisibility();
  updateControls();
  updateUnmutePrompt();
  if (view) {
    view.self.update(selfInfo());
    for (const tile of view.tiles.values()) tile.update(tile.info);
    orderTiles();
  }
  refreshConsole(force);
}

/** This participant as the server now describes them: court mute, lobby/room. */
export function applySelf(p: ParticipantInfo): void {
  const wasMuted = courtMuted();
  const wasLobby = inLobby();
  state.self = p;
  state.me = { name: p.name, role: p.role, site: p.site };
  if (p.muted && !wasMuted) {
    // The court muted us: stop sending at once (the server already stopped forwarding).
    state.unmuteAccepted = false;
    setMic(false);
  } else if (!p.muted && wasMuted) {
    state.unmuteAsked = false;
    if (state.unmuteAccepted) setMic(true);
    state.unmuteAccepted = false;
  }
  if (wasLobby !== inLobby() && view) {
    // Admitted, or dismissed back to the lobby: the server renegotiates the media.
    view.self.setTrack('video', state.localStream?.getVideoTracks()[0] ?? null);
  }
  updateCourt();
}

/** Everyone else as the server now lists them: the tiles of those admitted. */
export function syncParticipants(list: ParticipantInfo[]): void {
  state.others = list;
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
      const tracks = state.remoteTracks.get(p.id);
      if (tracks?.video) tile.setTrack('video', tracks.video);
      if (tracks?.audio) tile.setTrack('audio', tracks.audio);
      tile.setPaused(state.videoPaused.has(p.id));
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
  for (const pid of view.screenTiles.keys()) labelScreen(pid);
  updateCount();
  updateStateBanner();
  refreshRooms();
  refreshConsole();
}

/** A participant's current remote track (kept for a tile that does not exist yet). */
export function remoteTrack(pid: string, kind: RemoteKind, track: MediaStreamTrack | null): void {
  if (kind === 'screen') {
    if (track) state.remoteScreens.set(pid, track);
    else state.remoteScreens.delete(pid);
    setScreen(pid, track);
    return;
  }
  const cur = state.remoteTracks.get(pid) ?? { audio: null, video: null };
  cur[kind] = track;
  state.remoteTracks.set(pid, cur);
  view?.tiles.get(pid)?.setTrack(kind, track);
}

/** Shows (or removes) `pid`'s shared screen, large, above the camera tiles. */
function setScreen(pid: string, track: MediaStreamTrack | null): void {
  if (!view) return;
  let sv = view.screenTiles.get(pid);
  if (!track) {
    if (sv) {
      sv.video.srcObject = null;
      sv.root.remove();
      view.screenTiles.delete(pid);
    }
  } else {
    if (!sv) {
      const video = h('video', { class: 'screen-video', attrs: { autoplay: '', playsinline: '', muted: '' } });
      video.muted = true;
      const label = h('div', { class: 'screen-label' });
      const root = h('article', { class: 'screen-tile', testid: `screen-${pid}` }, video, label);
      root.dataset.participant = pid;
      sv = { root, video, label };
      view.screenTiles.set(pid, sv);
      view.screens.append(root);
    }
    const cur = (sv.video.srcObject as MediaStream | null)?.getTracks()[0] ?? null;
    if (cur !== track) {
      sv.video.srcObject = new MediaStream([track]);
      void sv.video.play().catch(() => undefined);
    }
    labelScreen(pid);
  }
  view.screens.hidden = view.screenTiles.size === 0;
  view.room.classList.toggle('has-screen', view.screenTiles.size > 0);
}

/** "Màn hình của {name}" on `pid`'s shared screen. */
function labelScreen(pid: string): void {
  const sv = view?.screenTiles.get(pid);
  if (!sv) return;
  const name = state.others.find((p) => p.id === pid)?.name ?? '';
  sv.label.textContent = t('hearing.screenOf', { name });
  sv.root.setAttribute('aria-label', sv.label.textContent);
}

/** The server paused (or resumed) a participant's video for this page's bandwidth. */
export function videoPaused(pid: string, paused: boolean): void {
  if (paused) state.videoPaused.add(pid);
  else state.videoPaused.delete(pid);
  view?.tiles.get(pid)?.setPaused(paused);
}

/** A participant left: their tracks leave the tile. */
export function remoteGone(pid: string): void {
  state.remoteTracks.delete(pid);
  state.remoteScreens.delete(pid);
  setScreen(pid, null);
  state.videoPaused.delete(pid);
  view?.tiles.get(pid)?.setPaused(false);
  view?.tiles.get(pid)?.setTrack('audio', null);
  view?.tiles.get(pid)?.setTrack('video', null);
}

/** Order: the one with the floor first (shown large), self, then court order. */
function orderTiles(): void {
  if (!view) return;
  const spot = state.hearingStatus?.spotlight ?? null;
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

/** Every second: the running time in private rooms (banners and badges). */
export function tickRoomClocks(): void {
  if (view && roomsOf(state.hearingStatus).length > 0) tickDurations();
}

/** Every 30 s: waiting times ("since 09:05 (12 min)") move on even when nothing else happens. */
export function refreshWaitingTimes(): void {
  if (!view) return;
  refreshConsole();
  updateRoomVisibility();
}


/** The last link sample: counters per participant, this page's own outbound ones, and
 * when they were read. */
let lastSample: { at: number; counters: Record<string, InboundCounters>; outbound: OutboundCounters } | null = null;

/** What this page should be receiving from `p` now: what they send, when media flows
 * and no private room stands between them and this page, and the court has not muted
 * them. */
function expectedFrom(p: ParticipantInfo): Expected {
  const hs = state.hearingStatus;
  const flows = !!hs && mediaFlows(hs.state) && p.present && p.admission === 'admitted';
  const apart = (roomOf(hs, p.id)?.id ?? null) !== (roomOf(hs, state.session?.participantId ?? '')?.id ?? null);
  const open = flows && !apart && !inLobby();
  return { audio: open && p.audio && !p.muted, video: open && p.video };
}

/** Every ~2 s: grades what this page received from each remote participant since the
 * last sample and shows it on their tile (reception.ts). */
export async function sampleLinks(): Promise<void> {
  const pc = state.session?.pc;
  if (!view || !pc) {
    lastSample = null;
    return;
  }
  const counters = await sampleInbound(pc, state.session?.participantId ?? null);
  state.session?.sendMediaReport(counters);
  const outbound = await sampleOutbound(pc);
  const at = performance.now();
  const prev = lastSample;
  lastSample = { at, counters, outbound };
  if (!view || !prev) return;
  // The own uplink, while this page publishes something.
  const s = state.localStream;
  const publishing =
    state.canPublish && !!s?.getTracks().some((t) => t.enabled && t.readyState === 'live') && !inLobby();
  view.self.setUplink(publishing ? gradeUplink(prev.outbound ?? emptyOutbound(), outbound) : null);
  const seconds = (at - prev.at) / 1000;
  const judgeLoss = { cannotHear: false, cannotSee: false };
  for (const [id, tile] of view.tiles) {
    const expected = expectedFrom(tile.info);
    if (tile.info.role === 'presiding_judge') {
      Object.assign(judgeLoss, localLoss(prev.counters[id] ?? emptyCounters(), counters[id] ?? emptyCounters(), expected));
    }
    if (!expected.audio && !expected.video) {
      tile.setLink(null);
      continue;
    }
    const before = prev.counters[id] ?? emptyCounters();
    tile.setLink(grade(before, counters[id] ?? emptyCounters(), seconds, expected));
  }
  const was = state.localJudgeLoss;
  if (was.cannotHear !== judgeLoss.cannotHear || was.cannotSee !== judgeLoss.cannotSee) {
    state.localJudgeLoss = judgeLoss;
    refreshHealth();
  }
}
