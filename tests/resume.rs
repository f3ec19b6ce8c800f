//! Resuming a session over a new socket (issue 13; PROTOCOL.md, *Resuming a session*):
//! a resumable session whose socket breaks keeps its seat, and a new socket takes it
//! back without a join, with what it missed replayed; a cleanly closed one ends at
//! once; a token names nothing once its session is gone; a client that did not ask
//! gets no ticket.

mod common;

use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use openhearing_signaling::client::{ClientError, SignalingClient};
use openhearing_signaling::{ClientMessage, ErrorCode, ServerMessage, PROTOCOL_VERSION};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const STEP: Duration = Duration::from_secs(10);

type Raw =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket whose end the test controls: dropping it breaks the connection without a
/// close frame, as a network outage does.
async fn raw_join(url: &str, token: &str) -> (Raw, openhearing_signaling::Welcome) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let join = ClientMessage::Join {
        v: PROTOCOL_VERSION,
        token: token.to_owned(),
        tab: None,
        resumable: true,
    };
    ws.send(Message::text(serde_json::to_string(&join).unwrap()))
        .await
        .expect("send join");
    match next(&mut ws).await {
        Some(ServerMessage::Welcome(w)) => (ws, *w),
        other => panic!("expected welcome, got {other:?}"),
    }
}

/// The next server message on a raw socket (None: nothing within 500 ms, or closed).
async fn next(ws: &mut Raw) -> Option<ServerMessage> {
    loop {
        match tokio::time::timeout(Duration::from_millis(500), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                return Some(serde_json::from_str(t.as_str()).expect("a server message"))
            }
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// Reads (bounded) until `pred` matches a message; whether it did.
async fn saw(client: &mut SignalingClient, mut pred: impl FnMut(&ServerMessage) -> bool) -> bool {
    for _ in 0..200 {
        match client.recv_timeout(Duration::from_secs(2)).await {
            Ok(m) if pred(&m) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
    false
}

/// `join` entries of participant `id` in the hearing's audit.
async fn joins_of(server: &TestServer, hearing: Uuid, id: Uuid) -> usize {
    let audit: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/v1/hearings/{hearing}/audit", server.base()))
        .bearer_auth(ADMIN_KEY)
        .send()
        .await
        .expect("audit answers")
        .json()
        .await
        .expect("audit JSON");
    audit["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .filter(|e| e["action"] == "join" && e.to_string().contains(&id.to_string()))
        .count()
}

async fn judge_and_defendant(server: &TestServer) -> CreatedHearing {
    server
        .create_hearing(&[
            ("Nguyễn Văn A", "presiding_judge", "Phòng xử án 1"),
            ("Trần Văn B", "defendant", "Trại tạm giam số 1"),
        ])
        .await
}

fn left(id: Uuid) -> impl FnMut(&ServerMessage) -> bool {
    move |m| matches!(m, ServerMessage::ParticipantLeft { participant_id, .. } if *participant_id == id)
}

#[tokio::test]
async fn a_broken_socket_is_resumed_without_a_join_and_gets_what_it_missed() {
    let server = TestServer::start(47000, 47019).await;
    let h = judge_and_defendant(&server).await;
    let url = server.ws_url(h.hearing_id);
    let judge_p = h.by_role("presiding_judge");
    let def_p = h.by_role("defendant");

    let (mut first, welcome) = raw_join(&url, &def_p.token()).await;
    let ticket = welcome
        .resume
        .clone()
        .expect("a resumable join gets a ticket");
    assert_eq!(ticket.token.len(), 64);
    assert!(ticket.window_ms > 0);
    let mut judge = SignalingClient::connect(&url).await.expect("connect");
    judge
        .join(&judge_p.token(), STEP)
        .await
        .expect("judge joins");
    // What the defendant receives before the break (the judge arriving, ...).
    let mut received = 0;
    while next(&mut first).await.is_some() {
        received += 1;
    }
    assert!(received > 0, "the judge's arrival was not announced");

    // The socket breaks: no close frame.
    drop(first);
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Meanwhile the court acts: the defendant must learn of it after resuming.
    judge
        .send(&ClientMessage::Lock { locked: true })
        .expect("lock");
    assert!(
        !saw(&mut judge, left(def_p.participant_id)).await,
        "the defendant left when its socket broke"
    );

    let mut again = SignalingClient::connect(&url).await.expect("connect");
    let replayed = again
        .resume(&ticket.token, received, STEP)
        .await
        .expect("resumed");
    assert!(
        replayed >= 1,
        "nothing replayed although the hearing was locked"
    );
    assert!(
        saw(
            &mut again,
            |m| matches!(m, ServerMessage::HearingStatus { status } if status.locked)
        )
        .await,
        "the lock was not replayed"
    );
    assert_eq!(
        joins_of(&server, h.hearing_id, def_p.participant_id).await,
        1,
        "a resume was audited as a join"
    );
    // The session goes on over the new socket.
    again.send(&ClientMessage::Ping { id: 77 }).expect("ping");
    assert!(saw(&mut again, |m| matches!(m, ServerMessage::Pong { id: 77 })).await);

    // The token names nothing once the session ended.
    again.send(&ClientMessage::Leave).expect("leave");
    assert!(saw(&mut judge, left(def_p.participant_id)).await);
    let mut late = SignalingClient::connect(&url).await.expect("connect");
    match late.resume(&ticket.token, 0, STEP).await {
        Err(ClientError::Refused { code, .. }) => assert_eq!(code, ErrorCode::ResumeFailed),
        other => panic!("a dead session was resumed: {other:?}"),
    }
    server.stop().await;
}

#[tokio::test]
async fn a_clean_close_ends_at_once_and_bad_resumes_are_refused() {
    let server = TestServer::start(47020, 47039).await;
    let h = judge_and_defendant(&server).await;
    let url = server.ws_url(h.hearing_id);
    let mut judge = SignalingClient::connect(&url).await.expect("connect");
    let w = judge
        .join(&h.by_role("presiding_judge").token(), STEP)
        .await
        .expect("judge joins");
    assert!(w.resume.is_none(), "a client that did not ask got a ticket");

    let def = h.by_role("defendant");
    let (mut first, welcome) = raw_join(&url, &def.token()).await;
    let ticket = welcome.resume.expect("ticket");
    // A client ahead of the server, and an unknown token, are refused; the session
    // stays.
    for (token, received) in [(ticket.token.clone(), 1_000_000), ("ab".repeat(32), 0)] {
        let mut c = SignalingClient::connect(&url).await.expect("connect");
        match c.resume(&token, received, STEP).await {
            Err(ClientError::Refused { code, .. }) => assert_eq!(code, ErrorCode::ResumeFailed),
            other => panic!("resume accepted: {other:?}"),
        }
    }
    // A clean close (a closed tab) is a leave: at once, no waiting for a resume.
    first.close(None).await.expect("close");
    assert!(
        saw(&mut judge, left(def.participant_id)).await,
        "a cleanly closed session did not end"
    );
    server.stop().await;
}
