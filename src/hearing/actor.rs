//! The hearing actor: the tokio task that runs one live hearing's [`HearingCore`]
//! and does its I/O.
//!
//! Every decision is the core's. The actor loads the hearing, turns each
//! [`Command`] (and the recorder's news, and the idle timer) into a core
//! [`Input`], and carries out the [`Effect`]s that come back, in their order:
//! state changes and audit records go to the [`Writer`], legs are cut and attached
//! on the SFU's [`PublishedTrack`]s (which the actor keeps by id, so the core never
//! sees webrtc), the open archive ([`ActiveRecording`]) is fed, sessions are told
//! through their channels (kept by session number), and requests are answered. A
//! [`Phase::Continue`](super::core::Phase::Continue) effect — a store call, opening
//! the archive — is carried out at once and its outcome handed back to the core
//! before any other input, so it behaves as one decision.
//!
//! # Stored before told
//!
//! Each effect list starts with its persists and audits. The actor stores those as
//! one batch and waits for the store before it carries out anything else, so no one
//! is told of a change, and no request is answered as done, before the change is
//! stored. When the batch is not stored (a full disk):
//! - for a **request** — a join, a participant's court action, an operator's change
//!   ([`Requester`]) — the actor drops the rest of the list (no media change, no
//!   announcement), puts the core back as it was before the input
//!   ([`HearingCore::restore`] of a [`Snapshot`](super::core::Snapshot) taken just
//!   before), and answers the requester `store_unavailable`: the joiner is refused,
//!   the judge gets an `error`, the admin API a 503. The core, the store and what
//!   everyone was told agree, and the same request succeeds once the store takes
//!   writes again;
//! - for a **fact** — a leave, an ended track, a recorder alert, the second step of
//!   a decision whose first step (opening the archive, a store call) already
//!   happened — nothing can be undone: its media effects are carried out without
//!   waiting, the batch waits in the writer's backlog if the store refuses it and
//!   is retried with backoff ([`Writer::retry_at`]) until stored, and the rest is
//!   carried out. While the backlog is not empty every request is refused, so the
//!   audit chain keeps the order in which things happened, and the actor does not
//!   stop for idleness.
//!
//! The actor stops when the core says it is idle (nobody connected, no open
//! archive, no input for a while) and nothing waits for the store, and at server
//! shutdown closes the archive and stores its backlog (or logs each entry it could
//! not) before it answers.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, Utc};
use openhearing_signaling::{ErrorCode, HearingInfo, ServerMessage};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::core::{
    self as hearing_core, ArchiveOp, Effect, HearingCore, Input, Phase, Reply, RequestId,
    StoreAnswer, StoreCall, StoreFailed,
};
use super::health::TrackCounters;
use super::recording::{self, ActiveRecording, RecorderNews, RecordingSettings};
use super::writer::{WriteOp, Writer};
use super::{
    AdminOp, AdminOutcome, HearingHandle, Hearings, JoinError, JoinRequest, Refusal, SessionCommand,
};
use crate::model::Hearing;
use crate::permissions::Permissions;
use crate::sfu::{Downstream, PublishedTrack};
use crate::store::Store;

/// Commands a hearing actor accepts (see [`HearingHandle`] for the senders).
#[derive(Debug)]
pub enum Command {
    Join {
        req: JoinRequest,
        reply: oneshot::Sender<Result<ServerMessage, JoinError>>,
    },
    TrackPublished {
        participant: Uuid,
        session: u64,
        track: Arc<PublishedTrack>,
    },
    LegReady {
        subscriber: Uuid,
        session: u64,
        track_id: String,
        leg: Arc<Downstream>,
    },
    /// What a session reports that carries nothing for the actor to keep (leave,
    /// track ended, media state, connection, court action): handed to the core as is.
    Session(Input),
    /// The server stops: close the open archive (signed, reason `server_stopped`)
    /// and store the writer's backlog, then answer.
    Shutdown(oneshot::Sender<()>),
    /// May a pre-join self-test run for this participant's link? Answered at once
    /// by the core's join checks; changes nothing.
    SelfTest {
        participant: Uuid,
        link_version: u32,
        reply: oneshot::Sender<Result<(), JoinError>>,
    },
    /// An operator's change through the admin API.
    Admin {
        op: AdminOp,
        actor: String,
        reply: oneshot::Sender<Result<AdminOutcome, Refusal>>,
    },
}

/// A request waiting for its [`Effect::Reply`].
enum Waiting {
    Join {
        reply: oneshot::Sender<Result<ServerMessage, JoinError>>,
        session: u64,
    },
    Admin(oneshot::Sender<Result<AdminOutcome, Refusal>>),
    Stored(oneshot::Sender<()>),
}

/// Who waits for the outcome of an input that may be refused when its changes are
/// not stored (see the module docs); every other input is a fact.
#[derive(Debug, Clone, Copy)]
enum Requester {
    Join(RequestId),
    Admin(RequestId),
    /// A participant's court action, answered on their session.
    Session(u64),
}

impl Requester {
    fn of(input: &Input) -> Option<Requester> {
        match input {
            Input::Join { request, .. } => Some(Requester::Join(*request)),
            Input::Admin { request, .. } => Some(Requester::Admin(*request)),
            Input::Act { session, .. } => Some(Requester::Session(*session)),
            _ => None,
        }
    }
}

struct Actor {
    core: HearingCore,
    store: Arc<dyn Store>,
    writer: Writer,
    /// The channels of the sessions the core knows, by session number.
    links: HashMap<u64, mpsc::UnboundedSender<SessionCommand>>,
    /// The published tracks the core knows, by id.
    tracks: HashMap<String, Arc<PublishedTrack>>,
    /// Tracks dropped by the effects being carried out; forgotten after them.
    dropped: Vec<String>,
    /// The leg of the `LegReady` being handled, for its `AttachLeg`.
    ready_leg: Option<(Uuid, String, Arc<Downstream>)>,
    waiting: HashMap<RequestId, Waiting>,
    next_request: u64,
    /// How the server records, if it does.
    recording: Option<Arc<RecordingSettings>>,
    /// The open archive while the hearing is in session or suspended.
    active: Option<ActiveRecording>,
    news_tx: mpsc::UnboundedSender<RecorderNews>,
    /// When the next media-health sample is due, while one is.
    next_sample: Option<tokio::time::Instant>,
    /// Flagged report entries already counted in `/metrics`.
    flagged_counted: u64,
    /// This hearing's shares of the `/metrics` gauges (withdrawn when it stops).
    gauges: Gauges,
}

/// A hearing's shares of the gauges `/metrics` sums over hearings, and what of the
/// open archive's drop counter was counted already (its directory, its count).
struct Gauges {
    health_cells: crate::metrics::Contribution,
    participants: crate::metrics::Contribution,
    recorder_queue: crate::metrics::Contribution,
    recorder_dropped: Option<(std::path::PathBuf, u64)>,
}

impl Gauges {
    fn new() -> Gauges {
        use crate::metrics::{Contribution, HEALTH_CELLS, PARTICIPANTS, RECORDER_QUEUE};
        Gauges {
            health_cells: Contribution::new(HEALTH_CELLS),
            participants: Contribution::new(PARTICIPANTS),
            recorder_queue: Contribution::new(RECORDER_QUEUE),
            recorder_dropped: None,
        }
    }
}

/// How long an actor waits when the core sets no idle timeout.
const FOREVER: Duration = Duration::from_secs(365 * 24 * 3600);

pub(super) fn spawn(
    handle: HearingHandle,
    mut rx: mpsc::UnboundedReceiver<Command>,
    registry: Weak<Hearings>,
    idle: Duration,
    store: Arc<dyn Store>,
    perms: Arc<Permissions>,
    recording: Option<Arc<RecordingSettings>>,
) {
    let joins = registry.upgrade().map(|r| r.joins).unwrap_or_default();
    let integrity = registry
        .upgrade()
        .map(|r| r.integrity.clone())
        .unwrap_or_default();
    tokio::spawn(async move {
        let loaded = store.get_hearing(handle.id).await;
        match loaded {
            Ok(Some(hearing)) => {
                let (news_tx, mut news_rx) = mpsc::unbounded_channel();
                let mut actor = Actor::new(
                    hearing,
                    store,
                    perms,
                    idle,
                    recording,
                    news_tx,
                    (joins, integrity),
                );
                // A hearing that was in session when the server stopped records on.
                let mut stop = actor.step(Input::Start).await;
                while !stop {
                    let wait = actor.core.next_wakeup().unwrap_or(FOREVER);
                    let retry = actor.writer.retry_at();
                    let sample = match actor.core.health_interval() {
                        Some(interval) => Some(actor.sample_at(interval)),
                        None => {
                            actor.next_sample = None;
                            None
                        }
                    };
                    stop = tokio::select! {
                        cmd = rx.recv() => match cmd {
                            Some(cmd) => actor.command(cmd).await,
                            None => true,
                        },
                        Some(news) = news_rx.recv() => actor.news(news).await,
                        _ = tokio::time::sleep_until(retry.unwrap_or_else(tokio::time::Instant::now)),
                            if retry.is_some() =>
                        {
                            actor.writer.retry().await;
                            false
                        }
                        _ = tokio::time::sleep_until(sample.unwrap_or_else(tokio::time::Instant::now)),
                            if sample.is_some() =>
                        {
                            actor.next_sample = None;
                            let counters = actor.counters();
                            actor.step(Input::HealthSample(counters)).await
                        }
                        _ = tokio::time::sleep(wait) => actor.step(Input::Tick).await,
                    };
                    actor.publish_gauges();
                }
                if let Some(active) = actor.active.take() {
                    let _ = active.close("server_stopped", false).await;
                }
                actor.writer.drain().await;
            }
            Ok(None) => refuse_all(&mut rx, JoinError::NotFound),
            Err(e) => {
                tracing::error!(hearing = %handle.id, "cannot load hearing: {e}");
                refuse_all(&mut rx, JoinError::Unavailable);
            }
        }
        if let Some(reg) = registry.upgrade() {
            reg.retire(&handle);
        }
        // Send back joins that raced with the shutdown so they retry on a new actor.
        rx.close();
        while let Ok(cmd) = rx.try_recv() {
            match cmd {
                Command::Join { reply, .. } => {
                    let _ = reply.send(Err(JoinError::Restarting));
                }
                Command::SelfTest { reply, .. } => {
                    let _ = reply.send(Err(JoinError::Restarting));
                }
                Command::Admin { reply, .. } => {
                    let _ = reply.send(Err(Refusal::new(
                        ErrorCode::Internal,
                        "the hearing was restarting; try again",
                    )));
                }
                _ => {}
            }
        }
        tracing::debug!(hearing = %handle.id, "hearing actor stopped");
    });
}

/// Answers everything queued for a hearing that could not be loaded (`why` is
/// `NotFound` or `Unavailable`).
fn refuse_all(rx: &mut mpsc::UnboundedReceiver<Command>, why: JoinError) {
    rx.close();
    while let Ok(cmd) = rx.try_recv() {
        match cmd {
            Command::Join { reply, .. } => {
                let _ = reply.send(Err(why.clone()));
            }
            Command::SelfTest { reply, .. } => {
                let _ = reply.send(Err(why.clone()));
            }
            Command::Admin { reply, .. } => {
                let _ = reply.send(Err(match why {
                    JoinError::NotFound => {
                        Refusal::new(ErrorCode::HearingNotFound, "this hearing does not exist")
                    }
                    _ => Refusal::new(
                        ErrorCode::Internal,
                        "the hearing could not be loaded; try again",
                    ),
                }));
            }
            _ => {}
        }
    }
}

impl Actor {
    fn new(
        hearing: Hearing,
        store: Arc<dyn Store>,
        permissions: Arc<Permissions>,
        idle: Duration,
        recording: Option<Arc<RecordingSettings>>,
        news_tx: mpsc::UnboundedSender<RecorderNews>,
        (joins, integrity): (hearing_core::JoinPolicy, super::health::Thresholds),
    ) -> Actor {
        let writer = Writer::new(hearing.id, store.clone());
        let settings = hearing_core::Settings {
            permissions,
            idle,
            recording: match &recording {
                None => hearing_core::Recording::Off,
                Some(r) => hearing_core::Recording::On {
                    render_after_close: r.render_after_close,
                },
            },
            joins,
            integrity,
        };
        Actor {
            core: HearingCore::new(hearing, settings, Utc::now()),
            store,
            writer,
            links: HashMap::new(),
            tracks: HashMap::new(),
            dropped: Vec::new(),
            ready_leg: None,
            waiting: HashMap::new(),
            next_request: 0,
            recording,
            active: None,
            news_tx,
            next_sample: None,
            flagged_counted: 0,
            gauges: Gauges::new(),
        }
    }

    /// When the next health sample is due (`interval` after the last one). Kept
    /// across loop turns so other inputs do not put it off.
    fn sample_at(&mut self, interval: Duration) -> tokio::time::Instant {
        *self
            .next_sample
            .get_or_insert_with(|| tokio::time::Instant::now() + interval)
    }

    /// The SFU's counters of every track the core knows.
    fn counters(&self) -> Vec<TrackCounters> {
        self.tracks
            .values()
            .filter(|t| !t.is_ended())
            .map(|t| TrackCounters {
                track: t.id.clone(),
                publisher: t.publisher,
                kind: match t.kind {
                    crate::sfu::MediaKind::Audio => openhearing_signaling::MediaKind::Audio,
                    crate::sfu::MediaKind::Video => openhearing_signaling::MediaKind::Video,
                },
                received: t.received(),
                legs: t.leg_counters(),
            })
            .collect()
    }

    /// Counts report entries the core flagged since the last look, and logs them.
    fn count_flags(&mut self, participant: uuid::Uuid) {
        let total = self.core.flagged_reports();
        let new = total.saturating_sub(self.flagged_counted);
        if new > 0 {
            tracing::warn!(hearing = %self.core.id(), %participant, entries = new,
                "media report claims media the server did not forward: ignored");
            crate::metrics::reports_flagged().increment(new);
            self.flagged_counted = total;
        }
    }

    fn request(&mut self, waiting: Waiting) -> RequestId {
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.waiting.insert(id, waiting);
        id
    }

    /// Handles one command; true when the actor must stop.
    async fn command(&mut self, cmd: Command) -> bool {
        let input = match cmd {
            Command::Join { req, reply } => {
                let session = req.link.session;
                self.links.insert(session, req.link.tx);
                let request = self.request(Waiting::Join { reply, session });
                Input::Join {
                    request,
                    participant: req.participant,
                    link_version: req.link_version,
                    session,
                    device: req.device,
                }
            }
            Command::TrackPublished {
                participant,
                session,
                track,
            } => {
                let id = track.id.clone();
                let kind = track.kind;
                self.tracks.insert(id.clone(), track);
                let stop = self
                    .step(Input::TrackPublished {
                        participant,
                        session,
                        track: id.clone(),
                        kind,
                    })
                    .await;
                if !self.core.has_track(&id) {
                    self.tracks.remove(&id); // not from a current session
                }
                return stop;
            }
            Command::LegReady {
                subscriber,
                session,
                track_id,
                leg,
            } => {
                self.ready_leg = Some((subscriber, track_id.clone(), leg));
                let stop = self
                    .step(Input::LegReady {
                        subscriber,
                        session,
                        track: track_id,
                    })
                    .await;
                self.ready_leg = None;
                return stop;
            }
            Command::Session(Input::MediaReport {
                participant,
                session,
                remotes,
                ..
            }) => {
                let counters = self.counters();
                let input = Input::MediaReport {
                    participant,
                    session,
                    remotes,
                    counters,
                };
                let stop = self.step(input).await;
                self.count_flags(participant);
                return stop;
            }
            Command::Session(input) => input,
            Command::Shutdown(reply) => {
                let request = self.request(Waiting::Stored(reply));
                Input::Shutdown { request }
            }
            Command::Admin { op, actor, reply } => {
                let request = self.request(Waiting::Admin(reply));
                Input::Admin { request, op, actor }
            }
            Command::SelfTest {
                participant,
                link_version,
                reply,
            } => {
                let allowed = self
                    .core
                    .self_test_allowed(Utc::now(), participant, link_version)
                    .map_err(JoinError::Refused);
                let _ = reply.send(allowed);
                return false;
            }
        };
        self.step(input).await
    }

    async fn news(&mut self, news: RecorderNews) -> bool {
        let RecorderNews::Alert(alert) = &news;
        tracing::warn!(hearing = %self.core.id(), "recorder: {}", alert.message);
        self.step(Input::Recorder(news)).await
    }

    /// Sets this hearing's shares of the `/metrics` gauges from what it holds now
    /// (after every command, sample and tick: a few dozen entries to count).
    fn publish_gauges(&mut self) {
        let labelled = |pairs: Vec<(crate::metrics::Labels, usize)>| {
            pairs
                .into_iter()
                .map(|(l, n)| (l, n as f64))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        // Counts keyed by two label values, named `a` and `b`.
        let by_two = |a: &'static str,
                      b: &'static str,
                      counts: std::collections::BTreeMap<(&str, &str), usize>|
         -> Vec<(crate::metrics::Labels, usize)> {
            counts
                .into_iter()
                .map(|((x, y), n)| (vec![(a, x.to_owned()), (b, y.to_owned())], n))
                .collect()
        };
        let cells = by_two("kind", "state", self.core.health_cells());
        self.gauges.health_cells.set(labelled(cells));
        let people = by_two("role", "state", self.core.participant_states());
        self.gauges.participants.set(labelled(people));
        let queued = self.active.as_ref().map_or(0, |a| a.queued());
        self.gauges
            .recorder_queue
            .set(labelled(vec![(Vec::new(), queued)]));
        if let Some(a) = &self.active {
            let dropped = a.dropped_queue_full();
            let before = match &self.gauges.recorder_dropped {
                Some((dir, n)) if *dir == a.dir => *n,
                _ => 0,
            };
            if dropped > before {
                crate::metrics::recorder_dropped().increment(dropped - before);
            }
            self.gauges.recorder_dropped = Some((a.dir.clone(), dropped));
        }
    }

    /// Tells the core which tracks the SFU has seen end, so its next decision skips
    /// them.
    fn note_ended(&mut self) {
        for (id, track) in &self.tracks {
            if track.is_ended() {
                self.core.note_ended(id);
            }
        }
    }

    /// Hands one input to the core and carries out its effects (and those of any
    /// continuation), each list's writes stored first; true when the actor must stop.
    async fn step(&mut self, input: Input) -> bool {
        self.note_ended();
        let requester = Requester::of(&input);
        let mut undo = requester.map(|_| self.core.snapshot());
        let first = self.core.handle(Utc::now(), input);
        // Only the input's own list may be refused; a continuation follows
        // something that already happened.
        let mut lists = VecDeque::from([(first, requester)]);
        let mut stop = false;
        while let Some((mut effects, requester)) = lists.pop_front() {
            let mut rest = split_after(&mut effects, Phase::Audit);
            if !effects.is_empty() {
                let batch = effects.into_iter().map(write_of).collect();
                match requester {
                    Some(requester) => {
                        if self.writer.store(batch).await.is_err() {
                            if let Some(snapshot) = undo.take() {
                                self.core.restore(snapshot);
                            }
                            self.refuse(requester).await;
                            return false;
                        }
                    }
                    None => {
                        // A fact's media effects happen whatever the store says, so
                        // they do not wait for it (the archive records on at once);
                        // its announcements do.
                        let announce = split_after(&mut rest, Phase::Media);
                        for effect in rest {
                            self.carry_out(effect).await;
                        }
                        rest = announce;
                        self.writer.record(batch).await;
                    }
                }
            }
            undo = None;
            for effect in rest {
                let next = match effect {
                    Effect::OpenArchive(info) => Input::ArchiveOpened(self.open_archive(&info)),
                    Effect::Call(call) => Input::Stored(self.call(call).await),
                    Effect::Stop => {
                        // Not while records wait for the store: they would be lost.
                        stop = self.writer.is_drained();
                        continue;
                    }
                    other => {
                        self.carry_out(other).await;
                        continue;
                    }
                };
                self.note_ended();
                lists.push_back((self.core.handle(Utc::now(), next), None));
            }
        }
        for id in self.dropped.drain(..) {
            self.tracks.remove(&id);
        }
        self.rank_tracks();
        stop
    }

    /// Tells the SFU whose tracks come first (the presiding judge's, then whoever
    /// has the floor) after whatever this step changed.
    fn rank_tracks(&self) {
        for (id, bench, floor) in self.core.track_ranks() {
            if let Some(track) = self.tracks.get(id) {
                track.set_priority(crate::sfu::Priority::ranked(bench, floor));
            }
        }
    }

    /// Answers a request whose changes were not stored: nothing of it happened.
    async fn refuse(&mut self, requester: Requester) {
        let refusal = Refusal::store_unavailable();
        match requester {
            Requester::Join(request) => {
                let reply = Reply::Join(Err(JoinError::Refused(refusal)));
                self.reply(request, reply).await;
            }
            Requester::Admin(request) => self.reply(request, Reply::Admin(Err(refusal))).await,
            Requester::Session(session) => {
                let message = ServerMessage::error(refusal.code, refusal.message);
                self.tell(session, SessionCommand::Send(message));
            }
        }
    }

    async fn carry_out(&mut self, effect: Effect) {
        match effect {
            Effect::Persist(_) | Effect::Audit(_) => {
                unreachable!("writes are stored by `step` before the rest")
            }
            Effect::CutLeg { track, subscriber } => {
                if let Some(t) = self.tracks.get(&track) {
                    t.remove_downstream(subscriber);
                }
            }
            Effect::DropTrack(id) => {
                if let Some(t) = self.tracks.get(&id) {
                    stop_forwarding(t);
                }
                self.dropped.push(id);
            }
            Effect::AttachLeg { track, subscriber } => {
                let leg = self
                    .ready_leg
                    .take_if(|(s, t, _)| *s == subscriber && *t == track);
                if let (Some(t), Some((_, _, leg))) = (self.tracks.get(&track), leg) {
                    t.add_downstream(leg);
                }
            }
            Effect::Archive(op) => self.archive(op).await,
            Effect::Send { session, message } => self.tell(session, SessionCommand::Send(message)),
            Effect::Subscribe { session, track } => {
                if let Some(t) = self.tracks.get(&track).cloned() {
                    // Before the session adds the leg, which names it after this.
                    t.set_screen(self.core.is_screen(&track));
                    self.tell(session, SessionCommand::Subscribe(t));
                }
            }
            Effect::Unsubscribe { session, track } => {
                self.tell(session, SessionCommand::Unsubscribe(track));
            }
            Effect::Kick {
                session,
                code,
                message,
            } => self.tell(session, SessionCommand::Kick { code, message }),
            Effect::Release(session) => {
                self.links.remove(&session);
            }
            Effect::Reply { request, reply } => self.reply(request, reply).await,
            Effect::OpenArchive(_) | Effect::Call(_) | Effect::Stop => {
                unreachable!("continuations are carried out by `step`")
            }
        }
    }

    fn tell(&self, session: u64, cmd: SessionCommand) {
        if let Some(tx) = self.links.get(&session) {
            let _ = tx.send(cmd);
        }
    }

    async fn reply(&mut self, request: RequestId, reply: Reply) {
        let Some(waiting) = self.waiting.remove(&request) else {
            return;
        };
        match (waiting, reply) {
            (Waiting::Join { reply, session }, Reply::Join(result)) => {
                if result.is_err() {
                    self.links.remove(&session);
                }
                let _ = reply.send(result);
            }
            (Waiting::Admin(tx), Reply::Admin(result)) => {
                // Its changes are stored already: the caller reads them back.
                let _ = tx.send(result);
            }
            (Waiting::Stored(tx), Reply::Stored) => {
                self.writer.drain().await;
                let _ = tx.send(());
            }
            (_, reply) => tracing::error!(?request, ?reply, "reply of the wrong kind"),
        }
    }

    fn open_archive(&mut self, info: &HearingInfo) -> Result<(), String> {
        let Some(settings) = self.recording.clone() else {
            return Err("recording is off on this server".into());
        };
        let meta = recording::meta(
            info.id,
            &info.case_number,
            &info.title,
            info.scheduled_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|d| d.with_timezone(&Utc)),
        );
        match ActiveRecording::open(&settings, meta, self.news_tx.clone()) {
            Ok(a) => {
                tracing::info!(hearing = %info.id, archive = %a.dir.display(), "recording");
                self.active = Some(a);
                Ok(())
            }
            Err(e) => {
                tracing::error!(hearing = %info.id, "cannot start recording: {e}");
                Err(e.to_string())
            }
        }
    }

    async fn archive(&mut self, op: ArchiveOp) {
        let Some(active) = self.active.as_mut() else {
            return;
        };
        match op {
            ArchiveOp::Event {
                kind,
                actor,
                subject,
                details,
            } => active.event(kind, &actor, subject.as_deref(), details),
            ArchiveOp::Set {
                track,
                owner,
                record,
                cause,
            } => {
                if let Some(t) = self.tracks.get(&track) {
                    active.set(t, &owner, record, cause);
                }
            }
            ArchiveOp::TrackEnded(track) => active.track_ended(&track, "ended"),
            ArchiveOp::Pause(reason) => active.pause(reason),
            ArchiveOp::Resume => active.resume(),
            ArchiveOp::Close {
                reason,
                render,
                wait,
            } => {
                if let Some(active) = self.active.take() {
                    let closing = active.close(&reason, render);
                    if wait {
                        let _ = closing.await;
                    }
                    // Otherwise it closes off the actor; the hearing goes on.
                }
            }
        }
    }

    async fn call(&mut self, call: StoreCall) -> Result<StoreAnswer, StoreFailed> {
        let id = self.core.id();
        // The call would land before records that happened earlier.
        if !self.writer.retry().await {
            return Err(StoreFailed::Unavailable);
        }
        let answer = match call {
            StoreCall::UpdateHearing(update) => self
                .store
                .update_hearing(id, update)
                .await
                .map(|h| StoreAnswer::Hearing(h.map(Box::new))),
            StoreCall::AddParticipant(new, admission) => self
                .store
                .add_participant(id, new, admission)
                .await
                .map(StoreAnswer::Participant),
            StoreCall::RevokeLink(pid) => self
                .store
                .revoke_link(id, pid)
                .await
                .map(StoreAnswer::LinkVersion),
            StoreCall::UpsertSite(site) => self
                .store
                .upsert_site(id, site)
                .await
                .map(|()| StoreAnswer::Done),
        };
        answer.map_err(|e| {
            tracing::error!(hearing = %id, "store: {e}");
            if e.is_unavailable() {
                StoreFailed::Unavailable
            } else {
                StoreFailed::Failed
            }
        })
    }
}

/// Cuts every leg of a track that is leaving the hearing, at once.
fn stop_forwarding(track: &PublishedTrack) {
    for sub in track.subscribers() {
        track.remove_downstream(sub);
    }
}

/// Splits `effects` (in phase order) after its last effect of phase `last`; returns
/// the later ones.
fn split_after(effects: &mut Vec<Effect>, last: Phase) -> Vec<Effect> {
    let at = effects
        .iter()
        .position(|e| e.phase() > last)
        .unwrap_or(effects.len());
    effects.split_off(at)
}

/// The write of a persist or audit effect.
fn write_of(effect: Effect) -> WriteOp {
    match effect {
        Effect::Persist(op) => op,
        Effect::Audit(record) => WriteOp::Audit(record),
        other => unreachable!("only writes come before the media phase: {other:?}"),
    }
}
