// One participant's tile on the hearing screen: video, audio, name, role, site, the
// mic/camera state, the floor and "not connected" badges, and the away badge while a
// private room separates the viewer from them (the video is hidden then, never a
// frozen frame that looks live), and the "weak network, video paused" badge while the
// server pauses their video for this page's bandwidth (hidden the same way). A tile owns its elements and is updated in place
// from a ParticipantInfo; screens/hearing.ts decides which tiles exist and in what order.
import { elapsedMs, formatDuration, roomOf } from '../court';
import { h, icon } from '../dom';
import { roleName, t, type MessageKey } from '../i18n';
import type { ParticipantInfo } from '../protocol';
import { useSpeaker } from '../media';
import type { Grade, UplinkGrade } from '../reception';
import { selfId, state } from '../state';

export interface TileView {
  root: HTMLElement;
  video: HTMLVideoElement;
  audio: HTMLAudioElement | null;
  info: ParticipantInfo;
  update(p: ParticipantInfo): void;
  setTrack(kind: 'audio' | 'video', track: MediaStreamTrack | null): void;
  /** Shows how well this page receives them (null: not graded yet). */
  setLink(g: Grade | null): void;
  /** The server paused their video for this page's bandwidth: say so, hide the frame. */
  setPaused(paused: boolean): void;
  /** The self view only: how well this page's own media reaches the server. */
  setUplink(g: UplinkGrade | null): void;
}

export function makeTile(p: ParticipantInfo, self: boolean): TileView {
  const idPart = self ? 'self' : p.id;
  const video = h('video', {
    class: 'tile-video',
    attrs: { autoplay: '', playsinline: '', muted: '' },
  });
  video.muted = true;
  if (!self) video.dataset.testid = `video-${p.id}`;
  const audio = self ? null : h('audio', { testid: `audio-${p.id}`, attrs: { autoplay: '' } });
  // The output picked in the pre-join speaker test.
  if (audio) void useSpeaker(audio, state.choice.speakerId);
  const initials = h('div', { class: 'placeholder', attrs: { 'aria-hidden': 'true' } });
  const name = h('div', { class: 'tile-name' });
  const meta = h('div', { class: 'tile-meta' });
  const micIcon = h('span', { class: 'state' });
  const camIcon = h('span', { class: 'state' });
  // What this page receives from them (remote tiles): a dot and, on hover, why. On the
  // self view: how well this page's own media reaches the server.
  const link = h('span', { class: 'link', testid: self ? 'uplink-quality' : `link-${p.id}`, attrs: { role: 'img' } });
  link.hidden = true;
  const badge = h('div', { class: 'badge' });
  const floorBadge = h('div', { class: 'badge floor' });
  // Away in a private room (seen from outside it), or outside the viewer's private room.
  const awayLabel = h('span');
  const awayTime = h('span', { class: 'duration' });
  const away = h('div', { class: 'badge away', testid: self ? undefined : `away-${p.id}` }, awayLabel, awayTime);
  away.hidden = true;
  // Their video paused by the server for this page's bandwidth (`video_paused`).
  const paused = h('div', { class: 'badge paused', testid: self ? undefined : `paused-${p.id}` }, t('hearing.videoPaused'));
  paused.hidden = true;
  const root = h(
    'article',
    { class: 'tile' + (self ? ' self' : ''), testid: `tile-${idPart}` },
    h('div', { class: 'tile-media' }, initials, video, badge, floorBadge, away, paused, audio),
    h('div', { class: 'tile-caption' }, h('div', { class: 'tile-text' }, name, meta), h('div', { class: 'states' }, link, micIcon, camIcon)),
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
      const watchOnly = self ? !state.canPublish : np.role === 'observer';
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
      const hs = state.hearingStatus;
      const floor = !!hs?.spotlight && hs.spotlight === np.id;
      root.classList.toggle('spotlight', floor);
      root.dataset.spotlight = String(floor);
      floorBadge.textContent = t('hearing.floor');
      floorBadge.hidden = !floor;
      root.classList.toggle('no-video', !hasVideo || !np.video);
      if (self) return;
      // Private rooms: the server stops the media across the wall; never show a frozen
      // last frame as if live, say where they are instead.
      const theirRoom = roomOf(hs, np.id);
      const myRoom = roomOf(hs, selfId());
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
    setLink(g) {
      link.hidden = self || g === null;
      if (!g) {
        delete link.dataset.quality;
        delete link.dataset.loss;
        delete link.dataset.fps;
        return;
      }
      link.dataset.quality = g.quality;
      // The window's figures, for tests and support staff (the title says them in words).
      link.dataset.loss = g.lossPercent.toFixed(1);
      if (g.fps !== null) link.dataset.fps = g.fps.toFixed(1);
      else delete link.dataset.fps;
      const parts = [t(`link.${g.quality}` as MessageKey)];
      if (g.quality !== 'none') {
        parts.push(t('link.detail', { loss: Math.round(g.lossPercent) }));
        if (g.fps !== null) parts.push(t('link.fps', { fps: Math.round(g.fps) }));
      }
      link.title = parts.join(' · ');
      link.setAttribute('aria-label', link.title);
    },
    setPaused(on) {
      paused.hidden = self || !on;
      root.classList.toggle('video-paused', !self && on);
      root.dataset.videoPaused = String(!self && on);
    },
    setUplink(g) {
      if (!self) return;
      link.hidden = g === null;
      if (!g) {
        delete link.dataset.quality;
        return;
      }
      link.dataset.quality = g.quality;
      const parts = [t('uplink.label'), t(`link.${g.quality}` as MessageKey)];
      if (g.quality !== 'none') {
        parts.push(t('link.detail', { loss: Math.round(g.lossPercent) }));
        if (g.rttMs !== null) parts.push(t('uplink.rtt', { ms: Math.round(g.rttMs) }));
        if (g.limitation === 'bandwidth') parts.push(t('uplink.bandwidth'));
      }
      link.title = parts.join(' · ');
      link.setAttribute('aria-label', link.title);
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

/** Records `state.firstRemoteFrameAt` (the join-time measure of the e2e test). */
function watchFirstFrame(video: HTMLVideoElement): void {
  if (state.firstRemoteFrameAt !== null) return;
  const mark = () => {
    if (state.firstRemoteFrameAt === null && video.videoWidth > 0) state.firstRemoteFrameAt = performance.now();
  };
  video.addEventListener('loadeddata', mark, { once: true });
  if ('requestVideoFrameCallback' in video) {
    video.requestVideoFrameCallback(() => {
      if (state.firstRemoteFrameAt === null) state.firstRemoteFrameAt = performance.now();
    });
  }
}
