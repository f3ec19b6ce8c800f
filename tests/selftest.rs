//! The pre-join self-test (issue 15): a headless webrtc peer runs the network test
//! with a defendant's join link while the judge holds a session. Its own stream
//! comes back through the SFU (checked by content), the server's report counts what
//! it received and sent back, the defendant never becomes present and the judge
//! receives nothing of the test; bad input is refused with clear errors.

mod common;

use std::time::Duration;

use common::cast::*;
use common::*;
use openhearing_peer::run_self_test;
use openhearing_signaling::client::{ClientError, SignalingClient};
use openhearing_signaling::{ClientMessage, ErrorCode, MediaKind, ServerMessage};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(10);

/// The refusal a `self_test` with `token` at `url` gets (it must be refused), and
/// the close code and reason that followed it.
async fn refused(url: &str, token: &str) -> (ErrorCode, String, Option<(u16, String)>) {
    let mut c = SignalingClient::connect(url).await.expect("socket opens");
    match c.self_test(token, Some(3), WAIT).await {
        Err(ClientError::Refused { code, message }) => {
            // A fatal refusal is followed by the close.
            for _ in 0..50 {
                if let Err(ClientError::Closed) = c.recv_timeout(Duration::from_millis(100)).await {
                    break;
                }
            }
            (code, message, c.close_info())
        }
        other => panic!("a self-test with this token was not refused: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_test_loops_the_stream_back_and_reports_outside_the_hearing() {
    init_tracing();
    let server = TestServer::start(44200, 44229).await;
    let hearing = server.hearing_of(&[JUDGE, DEFENDANT]).await;
    let judge = join(&server, &hearing, "presiding_judge", true).await;
    open_session(&judge).await;
    let defendant = hearing.by_role("defendant");
    let ports_before = server.sfu.ports_in_use();

    let outcome = run_self_test(
        &server.ws_url(hearing.hearing_id),
        &defendant.token(),
        Some(5),
        fixtures(),
    )
    .await
    .expect("the self-test completes");
    assert_eq!(outcome.seconds, 5);
    let r = &outcome.report;
    eprintln!("self-test report: {r:?}");
    assert!(r.connected, "the test connection came up: {r:?}");
    assert!(r.connect_ms.is_some(), "{r:?}");
    assert!(
        (5000..9000).contains(&r.duration_ms),
        "reported at the granted end: {r:?}"
    );
    assert_eq!(
        outcome.close.as_ref().map(|c| c.0),
        Some(1000),
        "closed normally after the report"
    );
    let kinds: Vec<MediaKind> = r.tracks.iter().map(|t| t.kind).collect();
    assert_eq!(kinds, vec![MediaKind::Audio, MediaKind::Video], "{r:?}");
    for t in &r.tracks {
        assert!(
            t.received_packets > 20,
            "the server received the test stream: {t:?}"
        );
        assert!(t.forwarded_packets > 20, "and sent it back: {t:?}");
        assert!(
            t.forwarded_packets <= t.received_packets,
            "never more back than in: {t:?}"
        );
    }

    // What came back is the peer's own media, by content, on a stream named after
    // the participant (the SFU's leg of its own track).
    let back = outcome
        .stats
        .stream(&defendant.participant_id.to_string())
        .unwrap_or_else(|| panic!("the stream came back: {:?}", outcome.stats.streams.keys()));
    eprintln!(
        "came back: video {} packets, {} frames ({} matched); audio {} packets ({} matched)",
        back.video.rtp_packets,
        back.video.frames,
        back.video.frames_matched,
        back.audio.rtp_packets,
        back.audio.frames_matched
    );
    assert!(
        back.video.frames_matched > 10,
        "own video frames back: {back:?}"
    );
    assert!(
        back.audio.frames_matched > 50,
        "own audio packets back: {back:?}"
    );
    assert_eq!(
        back.video.frames_matched, back.video.frames,
        "nothing but the peer's own frames came back: {back:?}"
    );

    // The hearing never saw the defendant: not present, nobody told, nothing of the
    // test forwarded to the judge.
    assert!(
        judge.events().iter().all(|m| !matches!(m,
            ServerMessage::ParticipantJoined { participant }
            | ServerMessage::ParticipantUpdated { participant }
                if participant.id == defendant.participant_id && participant.present)),
        "the judge was told the defendant is present"
    );
    assert_eq!(
        packets_from(&judge, defendant.participant_id),
        (0, 0),
        "the judge received the test stream"
    );
    // The test's connection and its port are gone after the report.
    eventually(WAIT, "the self-test's media port is freed", || {
        server.sfu.ports_in_use() <= ports_before
    })
    .await;

    // The link still joins normally afterwards (the test left no seat behind).
    let joined = join(&server, &hearing, "defendant", true).await;
    assert_eq!(joined.id(), defendant.participant_id);
    let _ = joined.leave().await;
    let _ = judge.leave().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_self_tests_are_refused_with_clear_errors() {
    init_tracing();
    let server = TestServer::start(44230, 44259).await;
    let hearing = server.hearing_of(&[JUDGE, DEFENDANT]).await;
    let other = server.hearing_of(&[JUDGE, DEFENDANT]).await;
    let url = server.ws_url(hearing.hearing_id);
    let token = hearing.by_role("defendant").token();

    let (code, message, close) = refused(&url, "").await;
    assert_eq!(code, ErrorCode::TokenMissing, "{message}");
    assert_eq!(close.map(|c| c.0), Some(4401));

    let (code, message, _) = refused(&url, "not-a-jwt").await;
    assert_eq!(code, ErrorCode::TokenMalformed, "{message}");

    // A valid link of another hearing.
    let (code, message, close) = refused(&url, &other.by_role("defendant").token()).await;
    assert_eq!(code, ErrorCode::TokenWrongHearing, "{message}");
    assert_eq!(close.map(|c| c.0), Some(4401));
    let (code, _, _) = refused(&server.ws_url(Uuid::new_v4()), &token).await;
    assert_eq!(code, ErrorCode::TokenWrongHearing);

    // One self-test at a time per participant: a second one while the first runs is
    // refused, the first goes on, and once it ended the next one is accepted.
    let mut first = SignalingClient::connect(&url).await.expect("socket opens");
    let seconds = first
        .self_test(&token, Some(4), WAIT)
        .await
        .expect("first accepted");
    assert_eq!(seconds, 4);
    let (code, message, close) = refused(&url, &token).await;
    assert_eq!(code, ErrorCode::SelfTestBusy, "{message}");
    assert!(message.contains("already running"), "{message}");
    assert_eq!(close.map(|c| c.0), Some(4409));
    // Another participant's test is not affected.
    let mut judges = SignalingClient::connect(&url).await.expect("socket opens");
    judges
        .self_test(&hearing.by_role("presiding_judge").token(), Some(1), WAIT)
        .await
        .expect("another participant tests at the same time");

    // Messages that are not part of a self-test are refused without ending it.
    first
        .send(&ClientMessage::Admit {
            participant_id: Uuid::nil(),
        })
        .expect("sent");
    first
        .send(&ClientMessage::Answer { sdp: "v=0".into() })
        .expect("sent");
    let mut codes = Vec::new();
    let mut report = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while tokio::time::Instant::now() < deadline {
        match first.recv_timeout(Duration::from_secs(1)).await {
            Ok(ServerMessage::Error { code, fatal, .. }) => {
                assert!(!fatal, "{code} ends the self-test");
                codes.push(code);
            }
            Ok(ServerMessage::SelfTestReport(r)) => report = Some(r),
            Ok(_) => {}
            Err(ClientError::Closed) => break,
            Err(_) => {}
        }
    }
    assert_eq!(
        codes,
        vec![ErrorCode::NotApplicable, ErrorCode::NoOfferPending]
    );
    // The client never offered: the server still reports at the end, honestly.
    let report = report.expect("the first self-test reported at its end");
    assert!(!report.connected, "{report:?}");
    assert!(report.tracks.is_empty(), "{report:?}");
    assert!(report.duration_ms >= 4000, "{report:?}");
    assert_eq!(first.close_info().map(|c| c.0), Some(1000));

    // The slot is free again.
    let mut again = SignalingClient::connect(&url).await.expect("socket opens");
    again
        .self_test(&token, Some(1), WAIT)
        .await
        .expect("accepted once the first ended");
    // Leaving ends a self-test at once, without a report.
    again.send(&ClientMessage::Leave).expect("sent");
    let mut after_leave = Vec::new();
    while let Ok(m) = again.recv_timeout(Duration::from_secs(3)).await {
        after_leave.push(m);
    }
    assert!(
        after_leave
            .iter()
            .all(|m| !matches!(m, ServerMessage::SelfTestReport(_))),
        "{after_leave:?}"
    );
    server.stop().await;
}
