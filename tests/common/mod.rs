//! Shared harness for the integration tests: the real server, in process, on
//! 127.0.0.1:0 with a temporary data folder and a real SQLite database.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use openhearing::config::Config;
use openhearing::server;
use openhearing_peer::{JoinOptions, MediaFixtures, Participant};
use serde::Deserialize;
use tokio::sync::oneshot;
use uuid::Uuid;

pub const ADMIN_KEY: &str = "integration-test-admin-key-0123456789";

pub struct TestServer {
    pub addr: SocketAddr,
    /// The server's SFU, to observe media ports in use.
    pub sfu: Arc<openhearing::sfu::Sfu>,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreatedParticipant {
    pub participant_id: Uuid,
    pub name: String,
    pub role: String,
    pub site: String,
    pub join_url: String,
}

impl CreatedParticipant {
    /// The join token carried in the join URL's fragment.
    pub fn token(&self) -> String {
        self.join_url
            .split_once("#token=")
            .map(|(_, t)| t.to_owned())
            .expect("join url carries a token")
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct CreatedHearing {
    pub hearing_id: Uuid,
    pub participants: Vec<CreatedParticipant>,
}

impl CreatedHearing {
    /// Creates the hearing `body` describes through the admin API of the server at
    /// `base` (e.g. a server process a test started itself).
    pub async fn create_at(base: &str, body: &serde_json::Value) -> CreatedHearing {
        reqwest::Client::new()
            .post(format!("{base}/api/v1/hearings"))
            .bearer_auth(ADMIN_KEY)
            .json(body)
            .send()
            .await
            .expect("admin API answers")
            .json()
            .await
            .expect("the created hearing")
    }

    pub fn by_role(&self, role: &str) -> &CreatedParticipant {
        self.participants
            .iter()
            .find(|p| p.role == role)
            .unwrap_or_else(|| panic!("no {role} in hearing"))
    }
}

/// Configuration text for a test server: plain HTTP on `listen`, data in `data_dir`,
/// loopback media on a port range of its own; `extra` follows the `[media]` keys.
pub fn config_text(
    data_dir: &Path,
    listen: u16,
    port_min: u16,
    port_max: u16,
    extra: &str,
) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{listen}"
public_url = "http://127.0.0.1:{public}"
[server.tls]
enabled = false
[data]
dir = "{}"
[auth]
admin_api_key = "{ADMIN_KEY}"
[media]
bind_address = "127.0.0.1"
udp_port_min = {port_min}
udp_port_max = {port_max}
{extra}
"#,
        data_dir.display(),
        // Port 0 lets the OS choose; the server then learns its address itself.
        public = if listen == 0 { 1 } else { listen },
    )
}

/// A TCP port on 127.0.0.1 that was free a moment ago (for a server started as its
/// own process).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Test configuration: plain HTTP, loopback media on a port range of its own.
pub fn test_config(dir: &Path, port_min: u16, port_max: u16, extra: &str) -> Config {
    let text = config_text(
        dir,
        0,
        port_min,
        port_max,
        &format!("pli_throttle_ms = 200\n{extra}"),
    );
    Config::from_toml_str(&text, "test config").expect("test config is valid")
}

/// ffprobe's container duration of `file` in seconds; `None` when ffprobe fails or
/// the file has no duration yet.
pub fn ffprobe_duration(file: &Path) -> Option<f64> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

impl TestServer {
    /// Starts a server with a fresh data folder.
    pub async fn start(port_min: u16, port_max: u16) -> TestServer {
        Self::start_with(port_min, port_max, "").await
    }

    pub async fn start_with(port_min: u16, port_max: u16, extra: &str) -> TestServer {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().to_owned();
        let mut s = Self::start_in(&dir, port_min, port_max, extra).await;
        s._tmp = Some(tmp);
        s
    }

    /// Starts a server on an existing data folder (restart tests).
    pub async fn start_in(dir: &Path, port_min: u16, port_max: u16, extra: &str) -> TestServer {
        let config = test_config(dir, port_min, port_max, extra);
        Self::start_config(dir, config).await
    }

    /// Starts a server with this configuration (for settings outside `[media]`, which
    /// `extra` cannot reach: change the fields of a [`test_config`]).
    pub async fn start_config(dir: &Path, config: Config) -> TestServer {
        init_tracing();
        let prepared = server::prepare(&config).await.expect("server prepares");
        let sfu = prepared.state.signaling.sfu.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _ = server::run(listener, prepared, async {
                let _ = stopped.await;
            })
            .await;
        });
        TestServer {
            addr,
            sfu,
            dir: dir.to_owned(),
            _tmp: None,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self, hearing: Uuid) -> String {
        format!("ws://{}/ws/hearings/{hearing}", self.addr)
    }

    /// Creates a hearing through the admin API. `participants`: (name, role, site).
    pub async fn create_hearing(&self, participants: &[(&str, &str, &str)]) -> CreatedHearing {
        let with_party: Vec<(&str, &str, &str, Option<&str>)> = participants
            .iter()
            .map(|(n, r, s)| (*n, *r, *s, None))
            .collect();
        self.create_hearing_with(&with_party, &[]).await
    }

    /// Creates a hearing with parties and declared sites: participants are (name,
    /// role, site, party); sites are (name, kind).
    pub async fn create_hearing_with(
        &self,
        participants: &[(&str, &str, &str, Option<&str>)],
        sites: &[(&str, &str)],
    ) -> CreatedHearing {
        let body = serde_json::json!({
            "case_number": "HS-123/2026",
            "title": "Phiên tòa thử nghiệm",
            "sites": sites.iter().map(|(n, k)| serde_json::json!({"name": n, "kind": k})).collect::<Vec<_>>(),
            "participants": participants.iter().map(|(n, r, s, p)| {
                let mut v = serde_json::json!({"name": n, "role": r, "site": s});
                if let Some(p) = p { v["party"] = serde_json::json!(p); }
                v
            }).collect::<Vec<_>>(),
        });
        let resp = reqwest::Client::new()
            .post(format!("{}/api/v1/hearings", self.base()))
            .bearer_auth(ADMIN_KEY)
            .json(&body)
            .send()
            .await
            .expect("admin API answers");
        assert_eq!(
            resp.status(),
            201,
            "create hearing: {:?}",
            resp.text().await
        );
        resp.json().await.expect("create hearing JSON")
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(15), t).await;
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,openhearing=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// The real VP8 and Opus clips every publishing test participant sends.
pub fn fixtures() -> Arc<MediaFixtures> {
    static F: std::sync::OnceLock<Arc<MediaFixtures>> = std::sync::OnceLock::new();
    F.get_or_init(|| {
        let dir = std::env::temp_dir().join("openhearing-test-fixtures");
        Arc::new(MediaFixtures::generate(&dir).expect("ffmpeg makes the test clips"))
    })
    .clone()
}

pub async fn join(
    server: &TestServer,
    hearing: &CreatedHearing,
    role: &str,
    publish: bool,
) -> Participant {
    join_as(server, hearing, hearing.by_role(role), publish).await
}

/// Joins as a given participant (when a hearing has several of one role).
pub async fn join_as(
    server: &TestServer,
    hearing: &CreatedHearing,
    p: &CreatedParticipant,
    publish: bool,
) -> Participant {
    let role = p.role.as_str();
    let participant = Participant::join(
        &server.ws_url(hearing.hearing_id),
        &p.token(),
        JoinOptions {
            publish,
            fixtures: if publish { Some(fixtures()) } else { None },
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{role} joins: {e}"));
    participant.set_known_hashes(fixtures().hashes());
    participant
}

/// Polls `cond` every 100 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

/// Matched (video frames, audio packets) that `receiver` got from `publisher`.
pub fn received_from(receiver: &Participant, publisher: Uuid) -> (u64, u64) {
    let stats = receiver.stats();
    match stats.stream(&publisher.to_string()) {
        Some(s) => (s.video.frames_matched, s.audio.frames_matched),
        None => (0, 0),
    }
}

/// How long a test waits for media to arrive before it fails. Generous: on a shared
/// 2-core machine with four hearings of real WebRTC peers per test binary, media has
/// been seen to take over 30 s to settle; this bounds a wait, it measures nothing.
pub const MEDIA_WAIT: Duration = Duration::from_secs(60);

/// Starts every given participant's real VP8/Opus stream.
pub async fn publish(participants: &[&Participant]) {
    for p in participants {
        p.start_publishing()
            .await
            .unwrap_or_else(|e| panic!("{} starts publishing: {e}", p.welcome().you.role));
    }
}

/// Waits until every receiver has decoded at least `video` frames and `audio` packets
/// equal to the sent ones from every publisher other than itself.
pub async fn wait_exchange(
    receivers: &[&Participant],
    publishers: &[&Participant],
    video: u64,
    audio: u64,
) {
    for rx in receivers {
        for tx in publishers {
            if rx.id() == tx.id() {
                continue;
            }
            let tx_id = tx.id();
            let what = format!(
                "{} receives {} media of {}",
                rx.welcome().you.role,
                format_args!("{video}+/{audio}+"),
                tx.welcome().you.role
            );
            eventually(MEDIA_WAIT, &what, || {
                let (v, a) = received_from(rx, tx_id);
                v >= video && a >= audio
            })
            .await;
        }
    }
}

/// Integrity: every VP8 frame `rx` reassembled and every Opus payload it got equals
/// one that was sent (nothing corrupted, nothing foreign).
pub fn assert_integrity(rx: &Participant) {
    for (stream, s) in &rx.stats().streams {
        assert_eq!(
            s.video.frames, s.video.frames_matched,
            "{stream}: every reassembled VP8 frame equals a sent one"
        );
        assert_eq!(
            s.audio.frames, s.audio.frames_matched,
            "{stream}: every Opus payload equals a sent one"
        );
    }
}

/// Sends a typed message on `p`'s signaling socket.
pub fn send(p: &Participant, msg: openhearing_signaling::ClientMessage) {
    p.signaling_sender()
        .expect("signaling socket is open")
        .send(&msg)
        .expect("message sent");
}

/// Waits until `p` has received a server message matching `pred`.
pub async fn wait_event(
    p: &Participant,
    what: &str,
    pred: impl Fn(&openhearing_signaling::ServerMessage) -> bool,
) -> openhearing_signaling::ServerMessage {
    let start = Instant::now();
    while start.elapsed() < MEDIA_WAIT {
        if let Some(m) = p.events().into_iter().find(|m| pred(m)) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Number of server messages `p` received so far (to wait for *new* ones).
pub fn event_count(p: &Participant) -> usize {
    p.events().len()
}

/// Waits for a message matching `pred` among those after the first `skip`.
pub async fn wait_new_event(
    p: &Participant,
    skip: usize,
    what: &str,
    pred: impl Fn(&openhearing_signaling::ServerMessage) -> bool,
) -> openhearing_signaling::ServerMessage {
    let start = Instant::now();
    while start.elapsed() < MEDIA_WAIT {
        if let Some(m) = p.events().into_iter().skip(skip).find(|m| pred(m)) {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The error code of the first `error` after `skip` messages, waiting for it.
pub async fn next_error(p: &Participant, skip: usize) -> openhearing_signaling::ErrorCode {
    match wait_new_event(p, skip, "an error", |m| {
        matches!(m, openhearing_signaling::ServerMessage::Error { .. })
    })
    .await
    {
        openhearing_signaling::ServerMessage::Error { code, .. } => code,
        _ => unreachable!(),
    }
}

/// Whether `p` was told it is in state `admission`.
/// The codes of every `error` the server sent `p` so far, in order.
pub fn error_codes(p: &Participant) -> Vec<openhearing_signaling::ErrorCode> {
    p.events()
        .into_iter()
        .filter_map(|e| match e {
            openhearing_signaling::ServerMessage::Error { code, .. } => Some(code),
            _ => None,
        })
        .collect()
}

pub fn sees_self(p: &Participant, admission: openhearing_signaling::Admission) -> bool {
    let me = p.id();
    p.events()
        .iter()
        .rev()
        .find_map(|m| match m {
            openhearing_signaling::ServerMessage::ParticipantUpdated { participant }
                if participant.id == me =>
            {
                Some(participant.admission)
            }
            _ => None,
        })
        .unwrap_or(p.welcome().you.admission)
        == admission
}

/// A lifecycle move (`set_state`), with an optional reason.
pub fn set_state(
    state: openhearing_signaling::HearingState,
    reason: Option<&str>,
) -> openhearing_signaling::ClientMessage {
    openhearing_signaling::ClientMessage::SetState {
        change: openhearing_signaling::StateChange {
            state,
            reason: reason.map(str::to_owned),
            adjourned_to: None,
        },
    }
}

/// The judge opens the hearing and starts the session, waiting for each step.
pub async fn open_session(judge: &Participant) {
    use openhearing_signaling::{HearingState, ServerMessage};
    for state in [HearingState::Open, HearingState::InSession] {
        send(judge, set_state(state, None));
        wait_event(
            judge,
            &format!("hearing becomes {state}"),
            |m| matches!(m, ServerMessage::HearingStatus { status } if status.state == state),
        )
        .await;
    }
}

/// The judge lets `p` in from the lobby (calling in witnesses and experts), and waits
/// until `p` knows.
pub async fn admit(judge: &Participant, p: &Participant) {
    use openhearing_signaling::{Admission, ClientMessage, Role};
    let id = p.id();
    let msg = match p.welcome().you.role {
        Role::Witness | Role::Expert => ClientMessage::CallIn { participant_id: id },
        _ => ClientMessage::Admit { participant_id: id },
    };
    send(judge, msg);
    eventually(MEDIA_WAIT, "the participant is admitted", || {
        sees_self(p, Admission::Admitted)
    })
    .await;
}

/// Opens the hearing and admits everyone in `others` who waits in the lobby.
pub async fn convene(judge: &Participant, others: &[&Participant]) {
    open_session(judge).await;
    for p in others {
        if !sees_self(p, openhearing_signaling::Admission::Admitted) {
            admit(judge, p).await;
        }
    }
}

/// RTP packets `receiver` got from `publisher` so far: (video, audio).
pub fn packets_from(receiver: &Participant, publisher: Uuid) -> (u64, u64) {
    receiver
        .stats()
        .stream(&publisher.to_string())
        .map(|s| (s.video.rtp_packets, s.audio.rtp_packets))
        .unwrap_or((0, 0))
}

/// The people the tests seat, each as (name, role, site, party). The names are the
/// ones every test used before this module existed, so what tests assert is unchanged.
pub mod cast {
    /// One person of a test hearing.
    #[derive(Debug, Clone, Copy)]
    pub struct Person {
        pub name: &'static str,
        pub role: &'static str,
        pub site: &'static str,
        pub party: Option<&'static str>,
    }

    impl Person {
        pub const fn new(name: &'static str, role: &'static str, site: &'static str) -> Person {
            Person {
                name,
                role,
                site,
                party: None,
            }
        }

        /// The same person as a member of `party` (what allows a consultation).
        pub const fn of_party(self, party: &'static str) -> Person {
            Person {
                party: Some(party),
                ..self
            }
        }

        /// Observers receive only; everyone else publishes the test clips.
        pub fn publishes(&self) -> bool {
            self.role != "observer"
        }
    }

    pub const JUDGE: Person = Person::new("Nguyễn Văn A", "presiding_judge", "Phòng xử án 1");
    pub const PANEL_JUDGE: Person = Person::new("Đỗ Thị J", "judge", "Phòng xử án 1");
    pub const PROSECUTOR: Person = Person::new("Hoàng E", "prosecutor", "Viện kiểm sát");
    pub const DEFENDANT: Person = Person::new("Trần Văn B", "defendant", "Trại tạm giam số 1");
    pub const COUNSEL: Person = Person::new("Lê Thị C", "defence_counsel", "Văn phòng luật sư");
    pub const WITNESS: Person = Person::new("Phạm F", "witness", "Nhà riêng");
    pub const OBSERVER: Person = Person::new("Phạm D", "observer", "Tòa án tỉnh");
    /// The party of the standard defendant and counsel.
    pub const PARTY: &str = "Bị cáo 1";
}

impl TestServer {
    /// Creates a hearing of `people` through the admin API (no declared sites).
    pub async fn hearing_of(&self, people: &[cast::Person]) -> CreatedHearing {
        let rows: Vec<(&str, &str, &str, Option<&str>)> = people
            .iter()
            .map(|p| (p.name, p.role, p.site, p.party))
            .collect();
        self.create_hearing_with(&rows, &[]).await
    }

    /// The common preamble: creates a hearing of `people` and joins each of them, in
    /// order, as a real webrtc participant (publishing unless an observer). Roles must
    /// be distinct (use [`join_as`] for two of one role).
    pub async fn seat<const N: usize>(
        &self,
        people: [cast::Person; N],
    ) -> (CreatedHearing, [Participant; N]) {
        let hearing = self.hearing_of(&people).await;
        let mut joined = Vec::with_capacity(N);
        for p in &people {
            joined.push(join(self, &hearing, p.role, p.publishes()).await);
        }
        let joined: [Participant; N] = joined
            .try_into()
            .unwrap_or_else(|_| unreachable!("one participant per person"));
        (hearing, joined)
    }
}
