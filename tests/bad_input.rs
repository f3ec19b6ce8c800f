//! "Bad input" of the foundation: refused tokens, malformed and oversize frames,
//! garbage SDP, bogus candidates and a message flood each get their documented error
//! (and, when fatal, the documented close code) while the other participants of the
//! hearing keep exchanging real media.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use openhearing::auth::{load_or_create_secret, JoinClaims, JoinTokens};
use openhearing_signaling::client::{ClientError, SignalingClient};
use openhearing_signaling::{ErrorCode, Role, ServerMessage};
use serde_json::json;

const STEP: Duration = Duration::from_secs(10);

/// Connects a raw signaling client to `url`.
async fn connect(url: &str) -> SignalingClient {
    SignalingClient::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect {url}: {e}"))
}

/// Reads messages until the socket closes (bounded) and returns the close frame.
async fn wait_closed(client: &mut SignalingClient, what: &str) -> (u16, String) {
    for _ in 0..10_000 {
        match client.recv_timeout(STEP).await {
            Ok(_) => continue,
            Err(ClientError::Closed) => break,
            Err(e) => panic!("{what}: socket not closed: {e}"),
        }
    }
    client
        .close_info()
        .unwrap_or_else(|| panic!("{what}: the server sent no close frame"))
}

/// Asserts that the socket is refused with `code` and then closed with its close code.
async fn assert_refused_and_closed(mut client: SignalingClient, code: ErrorCode, what: &str) {
    let (got, fatal) = match client.recv_timeout(STEP).await {
        Ok(ServerMessage::Error { code, fatal, .. }) => (code, fatal),
        Ok(other) => panic!("{what}: expected error {code}, got {}", other.kind()),
        Err(e) => panic!("{what}: expected error {code}, got {e}"),
    };
    assert_eq!(got, code, "{what}: error code");
    assert!(fatal, "{what}: {code} is reported as fatal");
    let (close, reason) = wait_closed(&mut client, what).await;
    assert_eq!(
        close,
        code.close_code(),
        "{what}: close code (reason {reason:?})"
    );
}

/// Joins with `token` and expects the documented refusal and close.
async fn join_refused(url: &str, token: &str, code: ErrorCode, what: &str) {
    let mut client = connect(url).await;
    match client.join(token, STEP).await {
        Err(ClientError::Refused { code: got, message }) => {
            assert_eq!(got, code, "{what}: refusal code ({message})");
            assert!(!message.is_empty(), "{what}: the refusal explains itself");
        }
        Ok(_) => panic!("{what}: the join was accepted"),
        Err(e) => panic!("{what}: expected refusal {code}, got {e}"),
    }
    let (close, reason) = wait_closed(&mut client, what).await;
    assert_eq!(
        close,
        code.close_code(),
        "{what}: close code (reason {reason:?})"
    );
}

/// Reads (bounded) until an `error` arrives; other messages are skipped.
async fn next_error(client: &mut SignalingClient, what: &str) -> (ErrorCode, String, bool) {
    for _ in 0..1000 {
        match client.recv_timeout(STEP).await {
            Ok(ServerMessage::Error {
                code,
                message,
                fatal,
                ..
            }) => return (code, message, fatal),
            Ok(_) => continue,
            Err(e) => panic!("{what}: no error message: {e}"),
        }
    }
    panic!("{what}: no error among 1000 messages");
}

/// Sends `ping` and waits (bounded) for the matching `pong`.
async fn ping_pong(client: &mut SignalingClient, id: u64, what: &str) {
    client
        .send_text(json!({"type": "ping", "id": id}).to_string())
        .expect("send ping");
    for _ in 0..1000 {
        match client.recv_timeout(STEP).await {
            Ok(ServerMessage::Pong { id: got }) if got == id => return,
            Ok(ServerMessage::Error { code, fatal, .. }) if fatal => {
                panic!("{what}: session ended with {code} instead of answering ping")
            }
            Ok(_) => continue,
            Err(e) => panic!("{what}: no pong {id} after the error: {e}"),
        }
    }
    panic!("{what}: no pong among 1000 messages");
}

/// Sends `raw` on the joined raw client, expects a non-fatal `code`, then ping/pong.
async fn expect_nonfatal(
    client: &mut SignalingClient,
    send: impl FnOnce(&SignalingClient),
    code: ErrorCode,
    ping_id: u64,
    what: &str,
) {
    send(client);
    let (got, message, fatal) = next_error(client, what).await;
    assert_eq!(got, code, "{what}: error code ({message})");
    assert!(!fatal, "{what}: {code} is not fatal");
    assert!(!message.is_empty(), "{what}: the error explains itself");
    ping_pong(client, ping_id, what).await;
}

fn has_pong(p: &openhearing_peer::Participant, id: u64) -> bool {
    p.events()
        .iter()
        .any(|e| matches!(e, ServerMessage::Pong { id: got } if *got == id))
}

/// Sends `raw` through a media-connected participant and waits for error `code`
/// (counted beyond the ones seen before), then checks the session still pongs.
async fn participant_nonfatal(
    p: &openhearing_peer::Participant,
    raw: String,
    code: ErrorCode,
    ping_id: u64,
    what: &str,
) {
    let before = error_codes(p).iter().filter(|c| **c == code).count();
    p.send_text(raw).expect("send");
    eventually(MEDIA_WAIT, &format!("{what}: error {code}"), || {
        error_codes(p).iter().filter(|c| **c == code).count() > before
    })
    .await;
    p.send_text(json!({"type": "ping", "id": ping_id}).to_string())
        .expect("send ping");
    eventually(MEDIA_WAIT, &format!("{what}: pong {ping_id}"), || {
        has_pong(p, ping_id)
    })
    .await;
    assert!(!p.is_closed(), "{what}: the session is still open");
}

/// A joined client sends 2000 pings as fast as it can: it is told `rate_limited` and
/// the socket is closed with 4429. Plain tokio-tungstenite, so that every frame is
/// written before reading starts and the reader sees exactly what the server sent.
async fn flood(url: &str, token: &str) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("flooder connects");
    ws.send(Message::text(
        json!({"type": "join", "v": 1, "token": token}).to_string(),
    ))
    .await
    .expect("join");
    let mut sent = 0;
    for i in 0..2000u64 {
        if ws
            .feed(Message::text(json!({"type": "ping", "id": i}).to_string()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    let flushed = ws.flush().await;
    let (mut pongs, mut codes, mut close, mut end) = (0, Vec::new(), None, None);
    for _ in 0..5000 {
        match tokio::time::timeout(STEP, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => match serde_json::from_str(t.as_str()) {
                Ok(ServerMessage::Pong { .. }) => pongs += 1,
                Ok(ServerMessage::Error { code, fatal, .. }) => codes.push((code, fatal)),
                _ => {}
            },
            Ok(Some(Ok(Message::Close(f)))) => {
                close = f.map(|f| u16::from(f.code));
                break;
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => {
                end = Some(e.to_string());
                break;
            }
            Ok(None) => break,
            Err(_) => panic!("flood: socket neither limited nor closed"),
        }
    }
    let what = format!(
        "sent {sent} (flush {flushed:?}), {pongs} pongs, errors {codes:?}, close {close:?}, end {end:?}"
    );
    assert!(pongs < 2000, "the flood is not served in full: {what}");
    assert_eq!(codes, vec![(ErrorCode::RateLimited, true)], "{what}");
    assert_eq!(close, Some(ErrorCode::RateLimited.close_code()), "{what}");
    assert_eq!(ErrorCode::RateLimited.close_code(), 4429);
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_and_the_hearing_keeps_going() {
    let server = TestServer::start(42200, 42299).await;
    let hearing = server
        .create_hearing(&[
            ("Nguyễn Văn A", "presiding_judge", "Phòng xử án 1"),
            ("Trần Văn B", "defendant", "Trại tạm giam số 1"),
            ("Lê Thị C", "defence_counsel", "Văn phòng luật sư"),
            ("Võ Văn D", "prosecutor", "Viện kiểm sát"),
            ("Đỗ Thị E", "witness", "Nhà riêng"),
        ])
        .await;
    let other = server
        .create_hearing(&[("Hoàng Văn F", "presiding_judge", "Phòng xử án 2")])
        .await;
    let url = server.ws_url(hearing.hearing_id);

    // Judge and defendant publish real media to each other.
    let judge = join(&server, &hearing, "presiding_judge", true).await;
    let defendant = join(&server, &hearing, "defendant", true).await;
    let counsel = join(&server, &hearing, "defence_counsel", false).await;
    convene(&judge, &[&defendant, &counsel]).await;
    publish(&[&judge, &defendant]).await;
    wait_exchange(
        &[&judge, &defendant, &counsel],
        &[&judge, &defendant],
        10,
        25,
    )
    .await;
    let media_before = (
        received_from(&defendant, judge.id()),
        received_from(&judge, defendant.id()),
    );

    // --- Tokens and the join handshake -------------------------------------------
    let judge_token = hearing.by_role("presiding_judge").token();
    let judge_p = hearing.by_role("presiding_judge");
    join_refused(&url, "", ErrorCode::TokenMissing, "empty token").await;
    join_refused(&url, "   ", ErrorCode::TokenMissing, "blank token").await;
    join_refused(&url, "not-a-jwt", ErrorCode::TokenMalformed, "not a JWT").await;

    let claims = |iat: i64, exp: i64| JoinClaims {
        sub: judge_p.participant_id,
        hearing_id: hearing.hearing_id,
        role: Role::PresidingJudge,
        name: judge_p.name.clone(),
        site: judge_p.site.clone(),
        case_number: "HS-123/2026".into(),
        title: "Phiên tòa thử nghiệm".into(),
        iat,
        exp,
        ver: 0,
    };
    let forger = JoinTokens::new(
        b"a completely different secret, 32+ bytes long",
        Duration::from_secs(3600),
    );
    let forged = forger
        .issue_claims(&claims(now(), now() + 3600))
        .expect("forged token");
    join_refused(&url, &forged, ErrorCode::TokenInvalid, "forged token").await;
    // A valid signature over tampered claims is also invalid.
    let mut parts: Vec<String> = judge_token.split('.').map(str::to_owned).collect();
    assert_eq!(parts.len(), 3, "join token is a JWT");
    let tampered_claims = forger.issue_claims(&claims(now(), now() + 7200)).unwrap();
    parts[1] = tampered_claims.split('.').nth(1).unwrap().to_owned();
    join_refused(
        &url,
        &parts.join("."),
        ErrorCode::TokenInvalid,
        "tampered claims",
    )
    .await;

    let secret = load_or_create_secret(&server.dir).expect("server secret");
    let real = JoinTokens::new(&secret, Duration::from_secs(3600));
    let expired = real
        .issue_claims(&claims(now() - 7200, now() - 3600))
        .expect("expired token");
    join_refused(&url, &expired, ErrorCode::TokenExpired, "expired token").await;
    // Sanity: the same secret with a current expiry is accepted, so the refusals
    // above are about the token and not the secret.
    {
        let fresh = real.issue_claims(&claims(now(), now() + 3600)).unwrap();
        // Joining as the judge would replace the judge's session; only verify the
        // token offline.
        assert!(real.verify(&fresh).is_ok());
    }

    let other_token = other.by_role("presiding_judge").token();
    join_refused(
        &url,
        &other_token,
        ErrorCode::TokenWrongHearing,
        "other hearing's token",
    )
    .await;

    let c = connect(&url).await;
    c.send_text(json!({"type": "join", "v": 99, "token": judge_token}).to_string())
        .unwrap();
    assert_refused_and_closed(c, ErrorCode::UnsupportedVersion, "protocol version 99").await;

    let c = connect(&url).await;
    c.send_text(json!({"type": "ping", "id": 1}).to_string())
        .unwrap();
    assert_refused_and_closed(c, ErrorCode::NotJoined, "ping before join").await;

    let bad_path = format!("ws://{}/ws/hearings/not-a-uuid", server.addr);
    join_refused(
        &bad_path,
        &judge_token,
        ErrorCode::HearingNotFound,
        "non-uuid hearing path",
    )
    .await;
    // A correctly signed token for a hearing that does not exist.
    let ghost = uuid::Uuid::new_v4();
    let ghost_token = real
        .issue_claims(&JoinClaims {
            hearing_id: ghost,
            ..claims(now(), now() + 3600)
        })
        .unwrap();
    join_refused(
        &format!("ws://{}/ws/hearings/{ghost}", server.addr),
        &ghost_token,
        ErrorCode::HearingNotFound,
        "hearing that does not exist",
    )
    .await;

    // --- A joined attacker on a raw socket (never offers) --------------------------
    let mut raw = connect(&url).await;
    let welcome = raw
        .join(&hearing.by_role("prosecutor").token(), STEP)
        .await
        .expect("prosecutor joins");
    let max = welcome.max_message_bytes;
    assert!(max >= 1024, "welcome announces the size limit ({max})");
    ping_pong(&mut raw, 1, "fresh session").await;

    expect_nonfatal(
        &mut raw,
        |c| c.send_text("{not json".into()).unwrap(),
        ErrorCode::MalformedMessage,
        2,
        "malformed JSON",
    )
    .await;
    expect_nonfatal(
        &mut raw,
        |c| c.send_text(r#"{"no_type":1}"#.into()).unwrap(),
        ErrorCode::MalformedMessage,
        3,
        "missing type",
    )
    .await;
    expect_nonfatal(
        &mut raw,
        |c| c.send_text(r#"{"type":"offer"}"#.into()).unwrap(),
        ErrorCode::MalformedMessage,
        4,
        "offer without sdp",
    )
    .await;
    expect_nonfatal(
        &mut raw,
        |c| c.send_text(r#"{"type":"teleport"}"#.into()).unwrap(),
        ErrorCode::UnknownMessageType,
        5,
        "unknown message type",
    )
    .await;
    let oversize = json!({"type": "ping", "id": 6, "pad": "x".repeat(max + 16)}).to_string();
    assert!(oversize.len() > max);
    expect_nonfatal(
        &mut raw,
        move |c| c.send_text(oversize).unwrap(),
        ErrorCode::MessageTooLarge,
        7,
        "frame over max_message_bytes",
    )
    .await;
    expect_nonfatal(
        &mut raw,
        |c| c.send_binary(vec![0xde, 0xad, 0xbe, 0xef]).unwrap(),
        ErrorCode::BinaryNotSupported,
        8,
        "binary frame",
    )
    .await;
    expect_nonfatal(
        &mut raw,
        |c| {
            c.send_text(json!({"type": "offer", "sdp": "v=0\r\nthis is not SDP\r\n"}).to_string())
                .unwrap()
        },
        ErrorCode::InvalidSdp,
        9,
        "garbage SDP offer",
    )
    .await;
    expect_nonfatal(
        &mut raw,
        |c| {
            c.send_text(json!({"type": "offer", "sdp": ""}).to_string())
                .unwrap()
        },
        ErrorCode::InvalidSdp,
        10,
        "empty SDP offer",
    )
    .await;
    expect_nonfatal(
        &mut raw,
        |c| {
            c.send_text(json!({"type": "answer", "sdp": "v=0"}).to_string())
                .unwrap()
        },
        ErrorCode::NoOfferPending,
        11,
        "answer without a server offer",
    )
    .await;
    expect_nonfatal(
        &mut raw,
        |c| {
            c.send_text(json!({"type": "join", "v": 1, "token": "x"}).to_string())
                .unwrap()
        },
        ErrorCode::AlreadyJoined,
        12,
        "second join",
    )
    .await;

    // --- Bogus candidates on a media-connected session -----------------------------
    participant_nonfatal(
        &counsel,
        json!({"type": "candidate", "candidate": {"candidate": "candidate:garbage", "sdpMid": "0", "sdpMLineIndex": 0}}).to_string(),
        ErrorCode::InvalidCandidate,
        100,
        "garbage candidate",
    )
    .await;
    participant_nonfatal(
        &counsel,
        json!({"type": "candidate", "candidate": {"candidate": format!("candidate:{}", "9".repeat(2000)), "sdpMid": "0"}}).to_string(),
        ErrorCode::InvalidCandidate,
        101,
        "overlong candidate",
    )
    .await;
    // A well-formed loopback candidate to the discard port may be accepted; the
    // session must simply survive it.
    let errors_before = error_codes(&counsel).len();
    counsel
        .send_text(json!({"type": "candidate", "candidate": {"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 9 typ host", "sdpMid": "0", "sdpMLineIndex": 0}}).to_string())
        .expect("send");
    counsel
        .send_text(json!({"type": "ping", "id": 102}).to_string())
        .expect("send");
    eventually(MEDIA_WAIT, "pong after a loopback candidate", || {
        has_pong(&counsel, 102)
    })
    .await;
    let new_errors: Vec<ErrorCode> = error_codes(&counsel)[errors_before..].to_vec();
    assert!(
        new_errors
            .iter()
            .all(|c| *c == ErrorCode::InvalidCandidate && !c.is_fatal()),
        "a well-formed candidate gets at most a non-fatal error: {new_errors:?}"
    );
    // The media-connected session also survives the message-level errors.
    participant_nonfatal(
        &counsel,
        "{not json".into(),
        ErrorCode::MalformedMessage,
        103,
        "malformed JSON from a media-connected session",
    )
    .await;
    participant_nonfatal(
        &counsel,
        json!({"type": "offer", "sdp": "garbage"}).to_string(),
        ErrorCode::InvalidSdp,
        104,
        "garbage SDP from a media-connected session",
    )
    .await;
    assert!(
        counsel.failures().is_empty(),
        "counsel's peer saw no failures: {:?}",
        counsel.failures()
    );
    let counsel_from_judge = received_from(&counsel, judge.id());
    eventually(MEDIA_WAIT, "counsel still receives the judge", || {
        let now = received_from(&counsel, judge.id());
        now.0 >= counsel_from_judge.0 + 5 && now.1 >= counsel_from_judge.1 + 10
    })
    .await;

    // --- Flood ----------------------------------------------------------------------
    flood(&url, &hearing.by_role("witness").token()).await;

    // The raw attacker outlived everything above.
    ping_pong(&mut raw, 13, "attacker after the flood").await;

    // --- Everyone else is fine ------------------------------------------------------
    eventually(
        MEDIA_WAIT,
        "judge and defendant keep exchanging media",
        || {
            let d = received_from(&defendant, judge.id());
            let j = received_from(&judge, defendant.id());
            d.0 >= media_before.0 .0 + 20
                && d.1 >= media_before.0 .1 + 50
                && j.0 >= media_before.1 .0 + 20
                && j.1 >= media_before.1 .1 + 50
        },
    )
    .await;
    for p in [&judge, &defendant, &counsel] {
        assert!(!p.is_closed(), "{} is still connected", p.id());
        let fatal: Vec<ErrorCode> = error_codes(p)
            .into_iter()
            .filter(|c| c.is_fatal())
            .collect();
        assert!(fatal.is_empty(), "{} got fatal errors: {fatal:?}", p.id());
    }
    for p in [&judge, &defendant] {
        assert!(
            error_codes(p).is_empty(),
            "{} got errors it did not cause: {:?}",
            p.id(),
            error_codes(p)
        );
        assert_integrity(p);
    }
    let health = reqwest::get(format!("{}/healthz", server.base()))
        .await
        .expect("healthz answers");
    assert_eq!(health.status(), 200);

    raw.close();
    for p in [&judge, &defendant, &counsel] {
        let _ = p.leave().await;
    }
    server.stop().await;
}

/// The flood as a real client does it: `SignalingClient` keeps writing while it
/// reads. The server drops the TCP connection right after its close frame without
/// draining the client's unread pings, so the kernel answers with a reset and the
/// client usually loses the `rate_limited` error and the 4429 close frame (it sees
/// "connection reset without closing handshake", i.e. 1006).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flooding_client_that_keeps_writing_sees_rate_limited_and_4429() {
    let server = TestServer::start(42300, 42399).await;
    let hearing = server
        .create_hearing(&[("Đỗ Thị E", "witness", "Nhà riêng")])
        .await;
    let url = server.ws_url(hearing.hearing_id);
    for round in 0..5 {
        let mut flooder = connect(&url).await;
        flooder
            .join(&hearing.by_role("witness").token(), STEP)
            .await
            .expect("witness joins");
        for i in 0..2000u64 {
            if flooder
                .send_text(json!({"type": "ping", "id": i}).to_string())
                .is_err()
            {
                break;
            }
        }
        let (mut pongs, mut limited) = (0, false);
        for _ in 0..5000 {
            match flooder.recv_timeout(STEP).await {
                Ok(ServerMessage::Pong { .. }) => pongs += 1,
                Ok(ServerMessage::Error { code, .. }) => {
                    assert_eq!(code, ErrorCode::RateLimited);
                    limited = true;
                }
                Ok(_) => {}
                Err(ClientError::Closed) => break,
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        assert!(
            limited,
            "round {round}: rate_limited arrives ({pongs} pongs, close {:?})",
            flooder.close_info()
        );
        assert_eq!(
            flooder.close_info().map(|c| c.0),
            Some(4429),
            "round {round}: close code"
        );
    }
    server.stop().await;
}
