//! The engine's worker (issue 14): one media worker, ONE UDP socket on 127.0.0.1,
//! ICE-lite with server-chosen ufrags, serving several webrtc 0.21 peers at once. One
//! peer publishes the VP8/Opus test clips; the peers given legs to it (each leg a
//! server offer answered by the peer) receive them through the worker (frames matched
//! by content against the clips), a connected peer given no leg receives nothing, a
//! leg removed stops; the publisher gets nothing of its own back. The server side's UDP sockets are counted in /proc: exactly the
//! worker's one, with one peer connected and with all of them. Junk sent to the port
//! meanwhile is dropped and counted by reason, and media keeps flowing.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use openhearing::sfu::engine::demux::DropReason;
use openhearing::sfu::engine::worker::{
    Answer, LegId, Worker, WorkerConfig, WorkerError, WorkerStats,
};
use openhearing_peer::{MediaFixtures, MediaPeer};
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;

const SUBSCRIBERS: usize = 4;
/// The stream id the legs carry (the hearing side names the publisher's participant).
const PUBLISHER_STREAM: &str = "publisher";
const WAIT: Duration = Duration::from_secs(20);

/// Lines the worker logged about dropped datagrams (counted by a layer of the test's
/// subscriber): the rate-limited sources must show up as a few lines, not a flood.
static DROP_LINES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct DropLines;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for DropLines {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Message(bool);
        impl tracing::field::Visit for Message {
            fn record_debug(&mut self, f: &tracing::field::Field, v: &dyn std::fmt::Debug) {
                if f.name() == "message" && format!("{v:?}").contains("dropped") {
                    self.0 = true;
                }
            }
        }
        let mut m = Message(false);
        event.record(&mut m);
        if m.0 {
            DROP_LINES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let fmt = tracing_subscriber::fmt::layer()
        .with_test_writer()
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,rtc_dtls::config=error".into()),
        );
    let drops = DropLines.with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target("openhearing::sfu::engine", tracing::Level::INFO),
    );
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(drops)
        .try_init();
}

fn fixtures() -> Arc<MediaFixtures> {
    let dir = std::env::temp_dir().join("openhearing-test-fixtures");
    Arc::new(MediaFixtures::generate(&dir).expect("ffmpeg makes the test clips"))
}

/// (inode, local port) of every UDP socket in this network namespace.
fn udp_table() -> Vec<(u64, u16)> {
    let mut out = Vec::new();
    for file in ["/proc/self/net/udp", "/proc/self/net/udp6"] {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(inode)) = (cols.get(1), cols.get(9)) else {
                continue;
            };
            let port = local
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            if let (Some(port), Ok(inode)) = (port, inode.parse::<u64>()) {
                out.push((inode, port));
            }
        }
    }
    out
}

/// (inode, local port) of the UDP sockets this process holds (its fds matched
/// against the namespace's UDP table by inode).
fn process_udp_sockets() -> Vec<(u64, u16)> {
    let mut inodes = HashSet::new();
    for entry in std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let t = target.to_string_lossy();
            if let Some(n) = t
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse::<u64>().ok())
            {
                inodes.insert(n);
            }
        }
    }
    udp_table()
        .into_iter()
        .filter(|(inode, _)| inodes.contains(inode))
        .collect()
}

fn process_udp_ports() -> Vec<u16> {
    process_udp_sockets().into_iter().map(|(_, p)| p).collect()
}

/// Counts the server side's UDP sockets: those this process opened since `new`
/// (the worker is spawned after), minus the peers' own, known from the host
/// candidates they announced, and the test's junk senders.
struct ServerSockets {
    before: HashSet<u64>,
    client_ports: HashSet<u16>,
}

impl ServerSockets {
    fn new() -> ServerSockets {
        ServerSockets {
            before: process_udp_sockets().into_iter().map(|(i, _)| i).collect(),
            client_ports: HashSet::new(),
        }
    }

    fn ports(&self) -> Vec<u16> {
        let mut p: Vec<u16> = process_udp_sockets()
            .into_iter()
            .filter(|(inode, port)| {
                !self.before.contains(inode) && !self.client_ports.contains(port)
            })
            .map(|(_, port)| port)
            .collect();
        p.sort_unstable();
        p
    }
}

/// The tests count this process's sockets: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A peer connected to the worker, and the ports of its host candidates.
struct Connected {
    peer: MediaPeer,
    answer: Answer,
    ports: HashSet<u16>,
}

async fn connect(worker: &Worker, publish: bool) -> Connected {
    let peer = MediaPeer::new().await.expect("peer builds");
    let mut candidates = peer.take_candidates().expect("candidate receiver");
    if publish {
        peer.add_media_tracks("publisher").await.expect("tracks");
    } else {
        peer.add_recvonly_transceivers()
            .await
            .expect("transceivers");
    }
    let offer = peer.create_offer().await.expect("offer");
    let answer = tokio::time::timeout(WAIT, worker.answer(offer))
        .await
        .expect("the worker answers in time")
        .expect("the worker answers");
    assert!(
        answer.sdp.contains("a=ice-lite"),
        "the answer is ICE-lite:\n{}",
        answer.sdp
    );
    assert!(
        answer
            .sdp
            .contains(&format!("a=ice-ufrag:{}", answer.ufrag)),
        "with the worker's ufrag"
    );
    let port = worker.local_addr().port();
    let tcp = worker.tcp_addr().map(|a| a.port());
    assert!(
        answer
            .sdp
            .lines()
            .filter(|l| l.starts_with("a=candidate:"))
            .all(|l| match l.split_whitespace().nth(2) {
                Some(p) if p.eq_ignore_ascii_case("udp") => {
                    l.contains(&format!(" {port} typ host"))
                }
                Some(p) if p.eq_ignore_ascii_case("tcp") =>
                    tcp.is_some_and(|t| { l.contains(&format!(" {t} typ host tcptype passive")) }),
                _ => false,
            }),
        "every candidate is the worker's one UDP port (or its TCP listener):\n{}",
        answer.sdp
    );
    peer.apply_answer(answer.sdp.clone())
        .await
        .expect("answer applies");
    peer.wait_connected(WAIT)
        .await
        .expect("connects through the one port");
    // The peer's own host candidates (gathered before it connected).
    let mut ports = HashSet::new();
    while let Ok(c) = candidates.try_recv() {
        let fields: Vec<&str> = c.candidate.split_whitespace().collect();
        if let Some(p) = fields.get(5).and_then(|p| p.parse::<u16>().ok()) {
            ports.insert(p);
        }
    }
    assert!(!ports.is_empty(), "the peer announced its candidates");
    Connected {
        peer,
        answer,
        ports,
    }
}

/// Gives `sub` the publisher's audio and video: a leg each, the worker's offer
/// answered by the peer.
async fn subscribe(worker: &Worker, publisher: &Connected, sub: &Connected) -> Vec<LegId> {
    let mut legs = Vec::new();
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        let offer = worker
            .add_leg(
                sub.answer.conn,
                publisher.answer.conn,
                kind,
                PUBLISHER_STREAM,
            )
            .await
            .expect("leg added");
        assert!(
            offer.sdp.contains("a=sendonly"),
            "the leg is a sendonly m-section:\n{}",
            offer.sdp
        );
        let answer = sub
            .peer
            .answer_offer(offer.sdp)
            .await
            .expect("peer answers");
        let started = worker
            .apply_answer(sub.answer.conn, answer)
            .await
            .expect("answer applies");
        assert_eq!(started, vec![offer.leg], "the leg starts with the answer");
        legs.push(offer.leg);
    }
    legs
}

/// RTP packets a peer got from the publisher so far.
fn received(c: &Connected) -> u64 {
    c.peer
        .stats()
        .stream(PUBLISHER_STREAM)
        .map_or(0, |r| r.audio.rtp_packets + r.video.rtp_packets)
}

async fn stats(worker: &Worker) -> WorkerStats {
    tokio::time::timeout(WAIT, worker.stats())
        .await
        .expect("stats in time")
        .expect("stats")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_peers_share_one_port_and_receive_the_publishers_media() {
    init_tracing();
    let _serial = SERIAL.lock().await;
    let fx = fixtures();
    // Taken before the worker exists: what is new after it is the server's.
    let mut sockets = ServerSockets::new();
    let worker = Worker::spawn(WorkerConfig::new(0, "127.0.0.1:0".parse().expect("addr")))
        .expect("worker starts");
    let port = worker.local_addr().port();

    let publisher = connect(&worker, true).await;
    sockets.client_ports.extend(publisher.ports.iter().copied());
    assert_eq!(
        sockets.ports(),
        vec![port],
        "one peer: the server holds one UDP socket"
    );

    let mut subscribers = Vec::new();
    for _ in 0..SUBSCRIBERS {
        let s = connect(&worker, false).await;
        sockets.client_ports.extend(s.ports.iter().copied());
        s.peer.set_known_hashes(fx.hashes());
        subscribers.push(s);
    }
    assert_eq!(
        sockets.ports(),
        vec![port],
        "{} peers: still the one UDP socket",
        SUBSCRIBERS + 1
    );
    let ufrags: HashSet<&str> = subscribers
        .iter()
        .chain(std::iter::once(&publisher))
        .map(|c| c.answer.ufrag.as_str())
        .collect();
    assert_eq!(ufrags.len(), SUBSCRIBERS + 1, "a ufrag per connection");

    // The last subscriber stays a bystander: connected, no leg, so nothing reaches
    // it (the worker forwards only what a leg says, and the hearing side makes legs
    // only where the policy allows).
    let (bystander, viewers) = subscribers.split_last().expect("subscribers");
    // One negotiation at a time per connection: a second leg while the first's offer
    // waits for its answer is refused, and the first still completes.
    let first = worker
        .add_leg(
            viewers[0].answer.conn,
            publisher.answer.conn,
            RtpCodecKind::Audio,
            PUBLISHER_STREAM,
        )
        .await
        .expect("leg added");
    let refused = worker
        .add_leg(
            viewers[0].answer.conn,
            publisher.answer.conn,
            RtpCodecKind::Video,
            PUBLISHER_STREAM,
        )
        .await;
    assert!(
        matches!(refused, Err(WorkerError::Negotiating(c)) if c == viewers[0].answer.conn),
        "{refused:?}"
    );
    // Garbage for an answer: refused with the reason, the offer still outstanding.
    let garbage = worker
        .apply_answer(viewers[0].answer.conn, "v=0 not an answer".into())
        .await;
    assert!(
        matches!(garbage, Err(WorkerError::InvalidAnswer { .. })),
        "{garbage:?}"
    );
    let answer = viewers[0]
        .peer
        .answer_offer(first.sdp)
        .await
        .expect("peer answers");
    assert_eq!(
        worker
            .apply_answer(viewers[0].answer.conn, answer)
            .await
            .expect("answer applies"),
        vec![first.leg]
    );
    let mut legs = vec![vec![first.leg]];
    let offer = worker
        .add_leg(
            viewers[0].answer.conn,
            publisher.answer.conn,
            RtpCodecKind::Video,
            PUBLISHER_STREAM,
        )
        .await
        .expect("video leg");
    let answer = viewers[0]
        .peer
        .answer_offer(offer.sdp)
        .await
        .expect("peer answers");
    worker
        .apply_answer(viewers[0].answer.conn, answer)
        .await
        .expect("answer applies");
    legs[0].push(offer.leg);
    for v in &viewers[1..] {
        legs.push(subscribe(&worker, &publisher, v).await);
    }
    assert!(
        matches!(
            worker
                .apply_answer(bystander.answer.conn, "v=0".into())
                .await,
            Err(WorkerError::NoOffer(_))
        ),
        "nothing to answer on the bystander"
    );

    let s = stats(&worker).await;
    assert_eq!(s.connections, SUBSCRIBERS + 1);
    assert_eq!(
        (s.legs, s.legs_flowing),
        (2 * viewers.len(), 2 * viewers.len())
    );
    assert_eq!(s.connected, SUBSCRIBERS + 1, "{s:?}");
    assert!(s.flows > SUBSCRIBERS, "a flow per peer at least: {s:?}");
    assert_eq!(s.sockets, 1);
    let before_media = s;

    publisher
        .peer
        .start_publishing(fx.clone())
        .await
        .expect("publishing starts");
    let lines_before = DROP_LINES.load(std::sync::atomic::Ordering::Relaxed);

    // Junk at the port while media flows: random datagrams, STUN with a ufrag nobody
    // has, fake SRTP from an unknown 4-tuple.
    let junk = UdpSocket::bind("127.0.0.1:0").expect("junk socket");
    sockets
        .client_ports
        .insert(junk.local_addr().expect("addr").port());
    let to: SocketAddr = worker.local_addr();
    let mut x: u32 = 0x9e37_79b9;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        x
    };
    for i in 0..300u32 {
        let len = 1 + (next() % 200) as usize;
        let mut d: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        match i % 3 {
            // An unclassifiable first byte.
            0 => d[0] = 0xff,
            // RTP-looking, from a flow that never did ICE.
            1 => {
                d.resize(len.max(12), 0);
                d[0] = 0x80;
                d[1] = 96;
            }
            _ => {}
        }
        let _ = junk.send_to(&d, to);
        // Keep under the per-source limit's burst for most of it: the point is the
        // counting by reason, the flood case is the unit tests'.
        if i % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // A well-formed binding request for a ufrag the worker never gave out, from a
    // source that has not sent anything yet (the junk source may be rate-limited).
    let mut stun = vec![0x00, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[1u8; 12]);
    stun.extend_from_slice(&[0x00, 0x06, 0x00, 0x08]);
    stun.extend_from_slice(b"nobody:x");
    let stranger = UdpSocket::bind("127.0.0.2:0").expect("second junk socket");
    sockets
        .client_ports
        .insert(stranger.local_addr().expect("addr").port());
    let _ = stranger.send_to(&stun, to);
    // A binding request naming a live connection's ufrag (as if sniffed) but signed
    // with a guessed password: refused before it binds a flow or reaches the core.
    let forged = {
        use rtc::stun::message::{Message, Setter, BINDING_REQUEST};
        let provider = rtc::crypto::default_provider().expect("crypto provider");
        let mut m = Message::new();
        m.build(&[
            Box::new(BINDING_REQUEST) as Box<dyn Setter>,
            Box::new(rtc::stun::textattrs::TextAttribute::new(
                rtc::stun::attributes::ATTR_USERNAME,
                format!("{}:intruder", publisher.answer.ufrag),
            )),
            Box::new(
                rtc::stun::integrity::MessageIntegrity::new_short_term_integrity_with_provider(
                    "guessed-password-000000".to_owned(),
                    provider.crypto(),
                ),
            ),
            Box::new(rtc::stun::fingerprint::FINGERPRINT),
        ])
        .expect("builds");
        m.raw
    };
    let intruder = UdpSocket::bind("127.0.0.3:0").expect("third junk socket");
    sockets
        .client_ports
        .insert(intruder.local_addr().expect("addr").port());
    let _ = intruder.send_to(&forged, to);

    for (i, s) in viewers.iter().enumerate() {
        let got = s
            .peer
            .wait_until(
                |st| {
                    st.stream(PUBLISHER_STREAM)
                        .is_some_and(|r| r.video.frames_matched >= 15 && r.audio.rtp_packets >= 50)
                },
                WAIT,
            )
            .await
            .unwrap_or_else(|e| panic!("subscriber {i} got the publisher's media: {e}"));
        let r = got.stream(PUBLISHER_STREAM).expect("publisher's stream");
        assert!(
            r.video.frames_discarded <= r.video.frames / 10 + 1,
            "subscriber {i}: frames arrive whole: {:?}",
            r.video
        );
    }
    // Nothing of its own comes back to the publisher, and nothing reaches the
    // bystander, connected all along.
    assert_eq!(
        received(&publisher),
        0,
        "the publisher is not sent its own media"
    );
    assert_eq!(received(bystander), 0, "no leg, no media");

    // Each subscriber asked for a keyframe when its video opened (as browsers do):
    // the worker read the PLIs (through today's keyframe-request interceptor) and
    // relayed each to the publisher.
    let deadline = tokio::time::Instant::now() + WAIT;
    let s = loop {
        let s = stats(&worker).await;
        if s.plis_relayed >= viewers.len() as u64 || tokio::time::Instant::now() >= deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("worker: {s:?}");
    assert!(
        s.plis_in >= viewers.len() as u64,
        "a PLI from each subscriber: {s:?}"
    );
    assert!(
        s.plis_relayed >= s.plis_in,
        "each relayed to the publisher: {s:?}"
    );
    assert!(s.rtp_forwarded >= s.rtp_in, "fanned out: {s:?}");
    // Batched egress: while the publisher's media fanned out to 4 subscribers, each
    // packet's 4 copies (and whatever else the same wake-up produced) left in one
    // sendmmsg, so the worker made fewer send calls than it sent datagrams.
    let sent = s.datagrams_out - before_media.datagrams_out;
    let calls = s.send_syscalls - before_media.send_syscalls;
    let forwarded = s.rtp_forwarded - before_media.rtp_forwarded;
    let trains = s.gso_trains - before_media.gso_trains;
    let in_trains = s.gso_datagrams - before_media.gso_datagrams;
    eprintln!(
        "fan-out window: {sent} datagrams in {calls} send calls ({:.2} each; {trains} of \
         them GSO trains holding {in_trains}), {forwarded} RTP forwarded; overall {:.2} \
         per send, {:.2} per recvmmsg",
        sent as f64 / calls.max(1) as f64,
        s.datagrams_per_send(),
        s.datagrams_per_recv()
    );
    assert!(
        forwarded >= viewers.len() as u64,
        "media was fanned out: {s:?}"
    );
    assert!(
        calls > 0 && calls < sent,
        "fewer send calls ({calls}) than datagrams sent ({sent}): {s:?}"
    );
    assert!(s.recv_syscalls > 0, "{s:?}");
    assert!(s.drops.get(DropReason::Unclassified) > 0, "{s:?}");
    assert!(s.drops.get(DropReason::UnknownFlow) > 0, "{s:?}");
    assert_eq!(s.drops.get(DropReason::UnknownUfrag), 1, "{s:?}");
    assert_eq!(s.drops.get(DropReason::BadIntegrity), 1, "{s:?}");
    // Three sources sent junk (127.0.0.1, .2, .3): a line each within the interval,
    // whatever the number of datagrams dropped.
    let lines = DROP_LINES.load(std::sync::atomic::Ordering::Relaxed) - lines_before;
    assert!(
        (1..=3).contains(&lines),
        "{lines} log lines for {} drops",
        s.drops.total()
    );
    assert!(
        s.drops.get(DropReason::UnknownFlow)
            + s.drops.get(DropReason::Unclassified)
            + s.drops.get(DropReason::MalformedStun)
            + s.drops.get(DropReason::StunNoUsername)
            + s.drops.get(DropReason::UnknownUfrag)
            + s.drops.get(DropReason::RateLimited)
            >= 250,
        "the junk was dropped and counted: {s:?}"
    );
    assert_eq!(
        s.connected,
        SUBSCRIBERS + 1,
        "junk broke no connection: {s:?}"
    );
    assert_eq!(
        sockets.ports(),
        vec![port],
        "after all that, still one UDP socket"
    );

    // A leg removed stops at once; its removal is a renegotiation like its making.
    let (gone, kept) = (&viewers[0], &viewers[1]);
    for leg in &legs[0] {
        let offer = worker
            .remove_leg(*leg)
            .await
            .expect("leg removed")
            .expect("an offer removing it");
        let answer = gone.peer.answer_offer(offer).await.expect("peer answers");
        worker
            .apply_answer(gone.answer.conn, answer)
            .await
            .expect("answer applies");
    }
    assert!(matches!(
        worker.remove_leg(legs[0][0]).await,
        Err(WorkerError::NoLeg(_))
    ));
    let s = stats(&worker).await;
    let left = 2 * (viewers.len() - 1);
    assert_eq!((s.legs, s.legs_flowing), (left, left), "{s:?}");
    // Packets already on their way may still land: settle, then watch.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (gone_before, kept_before) = (received(gone), received(kept));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(received(gone), gone_before, "a removed leg carries nothing");
    assert!(received(kept) > kept_before, "the other legs still flow");

    // Closing connections releases their state.
    publisher.peer.close().await.expect("closes");
    worker.close(publisher.answer.conn).expect("close");
    for s in &subscribers {
        s.peer.close().await.expect("closes");
        worker.close(s.answer.conn).expect("close");
    }
    let s = stats(&worker).await;
    assert_eq!((s.connections, s.flows, s.timers), (0, 0, 0), "{s:?}");
    assert_eq!(
        (s.legs, s.legs_flowing),
        (0, 0),
        "no leg outlives its connections"
    );
    worker.shutdown();
    assert!(
        !process_udp_ports().contains(&port),
        "the worker's socket is gone with it"
    );
}

async fn wait_stats(
    worker: &Worker,
    what: &str,
    mut pred: impl FnMut(&WorkerStats) -> bool,
) -> WorkerStats {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = stats(worker).await;
        if pred(&s) {
            return s;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} within {WAIT:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_leave_cycles_and_abandoned_answers_leave_nothing_behind() {
    const CYCLES: usize = 30;
    init_tracing();
    let _serial = SERIAL.lock().await;
    let mut sockets = ServerSockets::new();
    let mut cfg = WorkerConfig::new(1, "127.0.0.1:0".parse().expect("addr"));
    cfg.ufrag_idle = Duration::from_secs(1);
    cfg.flow_idle = Duration::from_secs(2);
    let worker = Worker::spawn(cfg).expect("worker starts");
    let port = worker.local_addr().port();

    for cycle in 0..CYCLES {
        let c = connect(&worker, false).await;
        sockets.client_ports.extend(c.ports.iter().copied());
        assert!(
            c.answer.ufrag.starts_with("w01c"),
            "the ufrag names worker 1: {}",
            c.answer.ufrag
        );
        c.peer.close().await.expect("peer closes");
        if cycle % 10 != 9 {
            // The hearing side closes it (a participant leaving says so).
            worker.close(c.answer.conn).expect("close");
        }
        // Otherwise the peer just goes: rtc 0.21 ignores its DTLS close_notify (the
        // connection only turns `disconnected` 5 s later), so it is the flow going
        // idle for flow_idle that ends it.
        wait_stats(
            &worker,
            &format!("cycle {cycle}: the connection gone"),
            |s| s.connections == 0 && s.flows == 0 && s.timers == 0,
        )
        .await;
    }
    assert_eq!(
        sockets.ports(),
        vec![port],
        "{CYCLES} joins and leaves: still one UDP socket"
    );

    // An offer answered and then abandoned (the client never sends a check): its
    // connection and ufrag go after ufrag_idle.
    let peer = MediaPeer::new().await.expect("peer builds");
    peer.add_recvonly_transceivers()
        .await
        .expect("transceivers");
    let offer = peer.create_offer().await.expect("offer");
    let answer = worker.answer(offer).await.expect("answered");
    let s = stats(&worker).await;
    assert_eq!((s.connections, s.flows), (1, 0), "{s:?}");
    wait_stats(&worker, "the abandoned answer expired", |s| {
        s.connections == 0
    })
    .await;
    // Its ufrag now routes nowhere.
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[3u8; 12]);
    let user = format!("{}:x", answer.ufrag);
    let mut attr = vec![0x00, 0x06];
    attr.extend_from_slice(&(user.len() as u16).to_be_bytes());
    attr.extend_from_slice(user.as_bytes());
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    stun[2..4].copy_from_slice(&(attr.len() as u16).to_be_bytes());
    stun.extend_from_slice(&attr);
    let probe = UdpSocket::bind("127.0.0.1:0").expect("socket");
    probe.send_to(&stun, worker.local_addr()).expect("sent");
    let s = wait_stats(&worker, "the stale ufrag counted", |s| {
        s.drops.get(DropReason::UnknownUfrag) == 1
    })
    .await;
    assert_eq!((s.connections, s.flows, s.timers), (0, 0, 0), "{s:?}");
    peer.close().await.expect("closes");
    worker.shutdown();
}

/// What a bare webrtc subscriber that has no UDP socket at all receives.
#[derive(Default)]
struct TcpOnlyCounts {
    audio: std::sync::atomic::AtomicU64,
    video: std::sync::atomic::AtomicU64,
}

struct TcpOnlyHandler {
    state: tokio::sync::watch::Sender<webrtc::peer_connection::RTCPeerConnectionState>,
    counts: Arc<TcpOnlyCounts>,
}

#[async_trait::async_trait]
impl webrtc::peer_connection::PeerConnectionEventHandler for TcpOnlyHandler {
    async fn on_connection_state_change(
        &self,
        state: webrtc::peer_connection::RTCPeerConnectionState,
    ) {
        self.state.send_replace(state);
    }

    async fn on_track(&self, track: Arc<dyn webrtc::media_stream::track_remote::TrackRemote>) {
        let counts = self.counts.clone();
        tokio::spawn(async move {
            let kind = track.kind().await;
            while let Some(ev) = track.poll().await {
                if let webrtc::media_stream::track_remote::TrackRemoteEvent::OnRtpPacket(_) = ev {
                    let c = match kind {
                        rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio => &counts.audio,
                        _ => &counts.video,
                    };
                    c.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_without_udp_receives_over_ice_tcp() {
    use std::sync::atomic::Ordering::Relaxed;
    use webrtc::peer_connection::{
        PeerConnection, PeerConnectionBuilder, RTCPeerConnectionState, RTCSessionDescription,
        SettingEngineBuilder,
    };
    init_tracing();
    let _serial = SERIAL.lock().await;
    let fx = fixtures();
    let mut cfg = WorkerConfig::new(2, "127.0.0.1:0".parse().expect("addr"));
    cfg.tcp = Some("127.0.0.1:0".parse().expect("addr"));
    let worker = Worker::spawn(cfg).expect("worker starts");
    let tcp_port = worker.tcp_addr().expect("a TCP listener").port();

    let publisher = connect(&worker, true).await;

    // The subscriber: webrtc 0.21 with a TCP listener and no UDP socket.
    let mut media = rtc::peer_connection::configuration::media_engine::MediaEngine::default();
    media.register_default_codecs().expect("codecs");
    let registry =
        rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors(
            rtc::interceptor::Registry::new(),
            &mut media,
        )
        .expect("interceptors");
    let (state_tx, mut state_rx) = tokio::sync::watch::channel(RTCPeerConnectionState::New);
    let counts = Arc::new(TcpOnlyCounts::default());
    let pc = PeerConnectionBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(
            SettingEngineBuilder::new()
                .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
                .build(),
        )
        .with_handler(Arc::new(TcpOnlyHandler {
            state: state_tx,
            counts: counts.clone(),
        }))
        .with_udp_addrs(Vec::<String>::new())
        .with_tcp_addrs(vec!["127.0.0.1:0".to_owned()])
        .build()
        .await
        .expect("TCP-only peer builds");
    for kind in [
        rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio,
        rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video,
    ] {
        pc.add_transceiver_from_kind(
            kind,
            Some(rtc::rtp_transceiver::RTCRtpTransceiverInit {
                direction: rtc::rtp_transceiver::RTCRtpTransceiverDirection::Recvonly,
                streams: vec![],
                send_encodings: vec![],
            }),
        )
        .await
        .expect("transceiver");
    }
    let offer = pc.create_offer(None).await.expect("offer");
    pc.set_local_description(offer.clone())
        .await
        .expect("local offer");
    let answer = tokio::time::timeout(WAIT, worker.answer(offer.sdp))
        .await
        .expect("answered in time")
        .expect("answered");
    assert!(
        answer
            .sdp
            .lines()
            .any(|l| l.contains(&format!(" {tcp_port} typ host tcptype passive"))),
        "the answer offers the passive TCP candidate:\n{}",
        answer.sdp
    );
    pc.set_remote_description(RTCSessionDescription::answer(answer.sdp.clone()).expect("sdp"))
        .await
        .expect("answer applies");
    // webrtc 0.21 dials a passive TCP candidate only when it is trickled.
    for c in answer.candidates.clone() {
        pc.add_ice_candidate(c).await.expect("candidate");
    }
    tokio::time::timeout(
        WAIT,
        state_rx.wait_for(|s| *s == RTCPeerConnectionState::Connected),
    )
    .await
    .expect("connects over TCP in time")
    .expect("state");

    // Its legs: the worker's offers, over TCP like everything else, answered here.
    for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
        let offer = worker
            .add_leg(answer.conn, publisher.answer.conn, kind, PUBLISHER_STREAM)
            .await
            .expect("leg added");
        pc.set_remote_description(RTCSessionDescription::offer(offer.sdp).expect("sdp"))
            .await
            .expect("offer applies");
        let reply = pc.create_answer(None).await.expect("answer");
        pc.set_local_description(reply).await.expect("local answer");
        let sdp = pc.local_description().await.expect("local description").sdp;
        worker
            .apply_answer(answer.conn, sdp)
            .await
            .expect("answer applies");
    }
    publisher
        .peer
        .start_publishing(fx)
        .await
        .expect("publishing starts");
    let deadline = tokio::time::Instant::now() + WAIT;
    while counts.video.load(Relaxed) < 30 || counts.audio.load(Relaxed) < 50 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "media over ICE-TCP: audio {} video {}",
            counts.audio.load(Relaxed),
            counts.video.load(Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let s = stats(&worker).await;
    eprintln!("worker: {s:?}");
    assert_eq!((s.tcp_accepted, s.tcp_streams), (1, 1), "{s:?}");
    assert!(
        s.tcp_frames_out >= 80,
        "the media went out framed on TCP: {s:?}"
    );
    assert_eq!(s.connected, 2, "{s:?}");

    pc.close().await.expect("closes");
    publisher.peer.close().await.expect("closes");
    worker.close(answer.conn).expect("close");
    worker.close(publisher.answer.conn).expect("close");
    let s = wait_stats(&worker, "everything released", |s| {
        s.connections == 0 && s.tcp_streams == 0 && s.flows == 0
    })
    .await;
    assert_eq!(s.timers, 0);
    worker.shutdown();
}
