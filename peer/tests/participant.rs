//! `Participant` against a minimal fake signaling server (a WebSocket endpoint that
//! answers with a `MediaPeer`), so the glue is tested without the real server.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use openhearing_peer::fixtures::default_dir;
use openhearing_peer::{JoinOptions, MediaFixtures, MediaPeer, Participant};
use openhearing_signaling::protocol::{
    decode_client, Action, Admission, ClientMessage, Connection, ErrorCode, HearingInfo,
    HearingState, HearingStatus, IceCandidate, ParticipantInfo, Role, ServerMessage, SiteKind,
    Welcome,
};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;
use webrtc::peer_connection::RTCIceCandidateInit;

const SERVER_STREAM: &str = "5f0e8d7c-0000-4000-8000-00000000beef";

#[derive(Debug)]
enum Cmd {
    /// Add tracks on the server side and send a server offer, then publish.
    PublishBack,
}

/// Serves one participant; returns the URL, a command sender and a receiver of the
/// `type` of every client message.
async fn fake_server(
    fx: Arc<MediaFixtures>,
    you: Uuid,
) -> (
    String,
    mpsc::UnboundedSender<Cmd>,
    mpsc::UnboundedReceiver<String>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/ws", listener.local_addr().expect("addr"));
    let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel();
    let (seen_tx, seen_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        let ws = tokio_tungstenite::accept_async(tcp).await.expect("ws");
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<ServerMessage>();
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let text = serde_json::to_string(&m).expect("json");
                if sink.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let peer = Arc::new(MediaPeer::new().await.expect("server peer"));
        peer.set_known_hashes(fx.hashes());
        let mut cands = peer.take_candidates().expect("cands");
        let out = out_tx.clone();
        tokio::spawn(async move {
            while let Some(c) = cands.recv().await {
                let _ = out.send(ServerMessage::Candidate {
                    candidate: IceCandidate {
                        candidate: c.candidate,
                        sdp_mid: c.sdp_mid,
                        sdp_mline_index: c.sdp_mline_index,
                        username_fragment: None,
                    },
                });
            }
        });
        loop {
            tokio::select! {
                frame = stream.next() => {
                    let Some(Ok(frame)) = frame else { break };
                    let Message::Text(text) = frame else { continue };
                    let msg = match decode_client(text.as_str()) {
                        Ok(m) => m,
                        Err(e) => {
                            let _ = seen_tx.send("undecodable".into());
                            let _ = out_tx.send(ServerMessage::error(e.code(), e.to_string()));
                            continue;
                        }
                    };
                    let _ = seen_tx.send(msg.kind().to_owned());
                    match msg {
                        ClientMessage::Join { .. } => {
                            let _ = out_tx.send(ServerMessage::Welcome(Box::new(Welcome {
                                v: 1,
                                you: ParticipantInfo {
                                    id: you,
                                    name: "Witness One".into(),
                                    role: Role::Witness,
                                    site: "Test site".into(),
                                    site_kind: SiteKind::Remote,
                                    present: true,
                                    admission: Admission::Admitted,
                                    lobby_since: None,
                                    audio: true,
                                    video: true,
                                    muted: false,
                                    connection: Connection::Connecting,
                                    party: None,
                                },
                                hearing: HearingInfo {
                                    id: Uuid::new_v4(),
                                    case_number: "T-1".into(),
                                    title: "Test".into(),
                                    scheduled_at: None,
                                },
                                status: HearingStatus {
                                    state: HearingState::InSession,
                                    reason: None,
                                    since: "2026-11-24T09:00:00.000000Z".into(),
                                    adjourned_to: None,
                                    locked: false,
                                    spotlight: None,
                                    rooms: vec![],
                                    consultation_requests: vec![],
                                    recording: false,
                                },
                                participants: vec![],
                                max_message_bytes: 65536,
                                max_sdp_bytes: 524288,
                                can_publish: true,
                                permissions: vec![Action::PublishAudio, Action::PublishVideo, Action::Subscribe],
                                resume: None,
                            })));
                        }
                        ClientMessage::Offer { sdp } => {
                            let answer = peer.answer_offer(sdp).await.expect("server answer");
                            let _ = out_tx.send(ServerMessage::Answer { sdp: answer });
                        }
                        ClientMessage::Answer { sdp } => peer.apply_answer(sdp).await.expect("apply"),
                        ClientMessage::Candidate { candidate } => {
                            let _ = peer
                                .add_remote_candidate(RTCIceCandidateInit {
                                    candidate: candidate.candidate,
                                    sdp_mid: candidate.sdp_mid,
                                    sdp_mline_index: candidate.sdp_mline_index,
                                    username_fragment: candidate.username_fragment,
                                    url: None,
                                })
                                .await;
                        }
                        ClientMessage::Leave => break,
                        _ => {}
                    }
                }
                Some(Cmd::PublishBack) = cmd_rx.recv() => {
                    peer.add_media_tracks(SERVER_STREAM).await.expect("server tracks");
                    let offer = peer.create_offer().await.expect("server offer");
                    let _ = out_tx.send(ServerMessage::Offer { sdp: offer });
                    // Publish once the participant's answer is in (next loop turns).
                    let p = peer.clone();
                    let fx = fx.clone();
                    tokio::spawn(async move {
                        for _ in 0..100 {
                            if p.start_publishing(fx.clone()).await.is_ok() {
                                return;
                            }
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        panic!("server could not start publishing");
                    });
                }
            }
        }
        let _ = peer.close().await;
    });
    (url, cmd_tx, seen_rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn participant_joins_publishes_answers_server_offers_and_leaves() {
    let fx = Arc::new(MediaFixtures::generate(&default_dir()).expect("fixtures"));
    let you = Uuid::new_v4();
    let (url, cmd, mut seen) = fake_server(fx.clone(), you).await;

    let p = Participant::join(
        &url,
        "token",
        JoinOptions {
            publish: true,
            fixtures: Some(fx.clone()),
            ..Default::default()
        },
    )
    .await
    .expect("join");
    assert_eq!(p.id(), you);
    p.wait_connected(Duration::from_secs(10))
        .await
        .expect("connected");
    p.start_publishing().await.expect("publish");

    // Server asks for a renegotiation and sends media back; the participant attributes
    // it by stream id and matches its content.
    p.set_known_hashes(fx.hashes());
    cmd.send(Cmd::PublishBack).expect("cmd");
    let stats = p
        .wait_until(
            |s| {
                s.stream(SERVER_STREAM).is_some_and(|st| {
                    st.video.frames_matched >= 10 && st.audio.frames_matched >= 20
                })
            },
            Duration::from_secs(10),
        )
        .await
        .expect("media from the server's offer");
    assert!(p.failures().is_empty(), "{:?}", p.failures());
    assert!(p
        .events()
        .iter()
        .any(|e| matches!(e, ServerMessage::Offer { .. })));
    let timing = p.join_timing();
    assert!(timing.ws_opened <= timing.welcomed);
    assert_eq!(timing.first_rtp.len(), 2, "{:?}", stats.streams.keys());
    assert!(!p.sent_hashes().is_empty());

    // Raw frames pass through; the error comes back as an event.
    p.send_text("{not json").expect("raw");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = p.events().iter().any(|e| {
            matches!(
                e,
                ServerMessage::Error {
                    code: ErrorCode::MalformedMessage,
                    ..
                }
            )
        });
        if got {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no error event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    p.leave().await.expect("leave");
    let mut kinds = Vec::new();
    while let Ok(Some(k)) = tokio::time::timeout(Duration::from_secs(2), seen.recv()).await {
        kinds.push(k);
    }
    assert_eq!(kinds.first().map(String::as_str), Some("join"));
    assert!(kinds.iter().any(|k| k == "offer"));
    assert!(kinds.iter().any(|k| k == "answer"));
    assert!(kinds.iter().any(|k| k == "candidate"));
    assert!(kinds.iter().any(|k| k == "undecodable"));
    assert_eq!(kinds.last().map(String::as_str), Some("leave"), "{kinds:?}");
    assert!(p.is_closed());
}
