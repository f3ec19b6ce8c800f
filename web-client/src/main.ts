// OpenHearing browser client, the entry: reads the join link, shows the pre-join
// screen, and routes between the screens as the hearing session goes (joined, left,
// failed, final). The session's events land here: they update state.ts and call the
// hearing screen's update functions. The screens are in screens/ (pre-join, hearing,
// end), the court console in console.ts, the private rooms' UI in rooms.ts.
import './style.css';
import { applyAlert } from './health';
import { installHooks } from './hooks';
import { initLang, type MessageKey } from './i18n';
import { checkToken, parseJoinLink, signalingUrl, takeToken } from './jwt';
import { stopStream } from './media';
import { FINAL_CODES, type ErrorCode } from './protocol';
import { renderEnd, renderFailed, renderFinal } from './screens/end';
import {
  applySelf,
  closeHearing,
  hearingShown,
  refreshHealth,
  refreshRooms,
  refreshWaitingTimes,
  remoteGone,
  remoteTrack,
  updateScreenShare,
  videoPaused,
  renderHearing,
  showBanner,
  syncParticipants,
  sampleLinks,
  tickRoomClocks,
  updateCourt,
  updateStatus,
  updateUnmutePrompt,
} from './screens/hearing';
import { renderLinkProblem, renderPrejoin } from './screens/prejoin';
import { HearingSession, type ServerError } from './session';
import {
  acquireLocalMedia,
  courtMuted,
  disposeSession,
  isObserver,
  releaseMedia,
  resetConnection,
  state,
  stopMeter,
  streamEnded,
} from './state';
import { relabel } from './ui';

installHooks();

/** The Join / Rejoin buttons. */
const onJoin = () => void joinHearing();

function startSession(): void {
  state.session?.dispose();
  resetConnection();
  renderHearing(leaveHearing);
  const s = new HearingSession({
    url: signalingUrl(location.protocol, location.host, state.hearingId),
    token: state.token,
    tab: state.tab,
    localStream: state.localStream,
    events: {
      opened(at) {
        state.joinedAt = at;
        state.firstRemoteFrameAt = null;
      },
      status(status, detail) {
        if (state.session !== s) return;
        state.lastStatus = { status, attempt: detail.attempt };
        if (status === 'failed') {
          sessionEnded(detail.error!);
          return;
        }
        if (status === 'lost' || status === 'reconnecting') {
          state.bannerLost = true;
          if (detail.error) state.bannerError = detail.error;
        } else if (status === 'connected' || status === 'media') {
          if (state.bannerLost) state.bannerError = null;
          state.bannerLost = false;
        }
        updateStatus();
        showBanner();
      },
      welcome(w) {
        if (state.session !== s) return;
        if (state.deviceWaiting) {
          state.deviceWaiting = false;
          showBanner();
        }
        state.hearing = { case_number: w.hearing.case_number, title: w.hearing.title, scheduled_at: w.hearing.scheduled_at };
        state.hearingStatus = w.status;
        state.canPublish = w.canPublish;
        const permsChanged = JSON.stringify(w.permissions) !== JSON.stringify(state.permissions);
        state.permissions = w.permissions;
        state.others = [];
        state.self = null;
        if (permsChanged || !hearingShown()) {
          // The console depends on the permissions: rebuild the screen around the session.
          renderHearing(leaveHearing);
          updateStatus();
          showBanner();
        }
        applySelf(w.you);
        relabel();
      },
      participants(list) {
        if (state.session !== s) return;
        syncParticipants(list);
      },
      self(p) {
        if (state.session !== s) return;
        applySelf(p);
      },
      hearingStatus(st) {
        if (state.session !== s) return;
        state.hearingStatus = st;
        updateCourt();
      },
      recordingAlert(message) {
        if (state.session !== s) return;
        state.recordingAlert = message;
        updateCourt();
      },
      mediaHealth(cells) {
        if (state.session !== s) return;
        state.health = cells;
        refreshHealth();
      },
      integrityAlert(alert) {
        if (state.session !== s) return;
        applyAlert(state.integrityAlerts, alert);
        state.integrityCleared = alert.state === 'cleared' ? alert : null;
        refreshHealth();
      },
      deviceWaiting() {
        if (state.session !== s) return;
        state.deviceWaiting = true;
        showBanner();
      },
      secondDevice(n) {
        if (state.session !== s) return;
        state.secondDevices.set(n.participantId, { event: n.event, userAgent: n.userAgent, at: n.at });
        updateCourt();
      },
      unmuteRequested() {
        if (state.session !== s) return;
        if (!courtMuted()) return;
        state.unmuteAsked = true;
        updateUnmutePrompt();
      },
      consultationAnswered(_requestId, approved) {
        if (state.session !== s) return;
        state.roomNotice = approved ? null : { reason: 'refused', kind: 'consultation' };
        refreshRooms();
      },
      roomEnded(ev) {
        if (state.session !== s) return;
        state.roomNotice = { reason: ev.reason, kind: ev.kind };
        refreshRooms();
      },
      remoteTrack(pid, kind, track) {
        remoteTrack(pid, kind, track);
      },
      screenShare() {
        if (state.session !== s) return;
        updateScreenShare();
      },
      videoPaused(pid, paused) {
        if (state.session !== s) return;
        videoPaused(pid, paused);
      },
      participantLeft(pid) {
        remoteGone(pid);
      },
      error(err) {
        state.bannerError = err;
        showBanner();
      },
    },
  });
  state.session = s;
  s.start();
}

/** A fatal error ended the session: the final screen, or the error screen. */
function sessionEnded(err: ServerError): void {
  disposeSession();
  closeHearing();
  if (FINAL_CODES.includes(err.code as ErrorCode)) renderFinal(err);
  else renderFailed(err, onJoin);
}

async function joinHearing(): Promise<void> {
  if (!isObserver() && streamEnded()) await acquireLocalMedia();
  stopMeter();
  // Until the server says otherwise, assume a non-observer may publish.
  state.canPublish = !isObserver();
  startSession();
}

function leaveHearing(): void {
  state.session?.leave();
  state.session = null;
  releaseMedia();
  closeHearing();
  renderEnd(onJoin);
}

/** This tab's own id for `join.tab`, kept in `sessionStorage` (a reload keeps it, a
 * copied link does not carry it): the server lets this tab's reconnects take the seat
 * back at once instead of waiting as a second device. */
function tabId(store: Storage | null): string | undefined {
  const KEY = 'openhearing.tab';
  try {
    const known = store?.getItem(KEY);
    if (known) return known;
    // getRandomValues, unlike randomUUID, also works on plain http (a test server).
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    const id = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    store?.setItem(KEY, id);
    return id;
  } catch {
    return undefined;
  }
}

function boot(): void {
  initLang();
  const parsed = parseJoinLink(location.pathname, location.hash);
  let store: Storage | null = null;
  try {
    store = window.sessionStorage;
  } catch {
    store = null;
  }
  const link = { ...parsed, token: takeToken(parsed, store) };
  state.tab = tabId(store);
  if (parsed.token) {
    // Out of the address bar, the history and screenshots once read; this tab
    // remembers it (sessionStorage) so a reload still joins.
    history.replaceState(null, '', location.pathname + location.search);
  }
  if (!link.hearingId) {
    renderLinkProblem(link.token ? 'link.noHearing' : 'link.missing');
    return;
  }
  const check = checkToken(link.token, Date.now() / 1000, link.hearingId);
  if (check.payload) {
    state.hearing = { case_number: check.payload.case_number, title: check.payload.title };
  }
  if (!check.ok) {
    renderLinkProblem(`link.${check.problem}` as MessageKey);
    return;
  }
  state.token = check.token;
  state.hearingId = link.hearingId;
  state.me = { name: check.payload.name, role: check.payload.role, site: check.payload.site };
  renderPrejoin(check.payload, onJoin);
}

// Time in private rooms runs on the banners and badges.
setInterval(tickRoomClocks, 1000);
setInterval(() => void sampleLinks(), 2000);

// Waiting times ("since 09:05 (12 min)") move on even when nothing else happens.
setInterval(refreshWaitingTimes, 30_000);

window.addEventListener('pagehide', () => {
  state.session?.dispose();
  stopStream(state.localStream);
});

boot();
