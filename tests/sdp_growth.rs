//! A connection's SDP grows by a media section for every track it was ever sent: each
//! rejoin of a publisher adds two to every other participant's connection. The 30-min
//! soak (BENCHMARKS.md, "Soak") lost one observer in ~900 sessions this way: after
//! some 140 rejoins its answer passed the 64 KiB message limit, the server refused it
//! (`message_too_large`) and, still waiting for an answer, dropped the session 20 s
//! later with `negotiation_timeout`. An `offer`/`answer` now has its own, larger limit
//! (`signaling.max_sdp_bytes`).
//!
//! Reproduced small: `max_message_bytes` is set to 4 KiB, so a few rejoins make the
//! observer's answer larger than it; the observer must still take every renegotiation
//! and receive the publisher who rejoined last. Every other message is still held to
//! `max_message_bytes`, and an SDP message to `max_sdp_bytes`.

mod common;

use std::time::Duration;

use common::cast::*;
use common::*;
use openhearing_signaling::ErrorCode;

const SMALL_LIMIT: usize = 4096;
const SDP_LIMIT: usize = 65536;

async fn local_sdp_len(p: &openhearing_peer::Participant) -> usize {
    p.peer()
        .pc()
        .local_description()
        .await
        .map(|d| d.sdp.len())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_larger_than_the_message_limit_are_taken_after_many_rejoins() {
    let server = TestServer::start_with(
        48000,
        48099,
        &format!(
            "[signaling]\nmax_message_bytes = {SMALL_LIMIT}\nmax_sdp_bytes = {SDP_LIMIT}\n\
             join_burst_per_participant = 100\njoins_per_minute_per_participant = 1000\n"
        ),
    )
    .await;
    let hearing = server.hearing_of(&[JUDGE, DEFENDANT, OBSERVER]).await;
    let judge = join(&server, &hearing, "presiding_judge", true).await;
    let observer = join(&server, &hearing, "observer", false).await;
    assert_eq!(observer.welcome().max_message_bytes, SMALL_LIMIT);
    assert_eq!(observer.welcome().max_sdp_bytes, SDP_LIMIT);
    convene(&judge, &[&observer]).await;
    publish(&[&judge]).await;

    // The defendant joins, publishes and leaves, again and again: every round adds an
    // audio and a video section to the judge's and the observer's connections.
    let mut defendant = join(&server, &hearing, "defendant", true).await;
    let mut rounds = 0;
    loop {
        if !sees_self(&defendant, openhearing_signaling::Admission::Admitted) {
            admit(&judge, &defendant).await;
        }
        let before = [&observer, &judge].map(|rx| received_from(rx, defendant.id()));
        publish(&[&defendant]).await;
        // This round's tracks reached both (so their renegotiations completed).
        eventually(MEDIA_WAIT, "this round's media arrives", || {
            [&observer, &judge]
                .iter()
                .zip(before)
                .all(|(rx, (v0, a0))| {
                    let (v, a) = received_from(rx, defendant.id());
                    v >= v0 + 5 && a >= a0 + 10
                })
        })
        .await;
        rounds += 1;
        let answer = local_sdp_len(&observer).await;
        if answer > SMALL_LIMIT + 2048 || rounds >= 12 {
            eprintln!("after {rounds} rounds the observer's answer is {answer} bytes");
            assert!(
                answer > SMALL_LIMIT,
                "the test must make the observer's answer ({answer} bytes) larger than max_message_bytes ({SMALL_LIMIT}); {rounds} rounds"
            );
            break;
        }
        defendant.leave().await.expect("the defendant leaves");
        defendant = join(&server, &hearing, "defendant", true).await;
    }

    for p in [&judge, &observer] {
        assert!(
            !error_codes(p).contains(&ErrorCode::MessageTooLarge),
            "{}'s answers were refused: {:?}",
            p.welcome().you.role,
            error_codes(p)
        );
        assert!(!p.is_closed(), "{} was dropped", p.welcome().you.role);
        assert!(p.failures().is_empty(), "{:?}", p.failures());
        assert_integrity(p);
    }

    // Any other message is still held to max_message_bytes ...
    let before = error_codes(&observer).len();
    let big_ping =
        serde_json::json!({"type": "ping", "id": 7, "pad": "x".repeat(SMALL_LIMIT + 16)})
            .to_string();
    observer.send_text(big_ping).expect("send");
    eventually(Duration::from_secs(10), "the big ping is refused", || {
        error_codes(&observer)[before..].contains(&ErrorCode::MessageTooLarge)
    })
    .await;
    // ... and an SDP message to max_sdp_bytes.
    let before = error_codes(&observer).len();
    let huge_offer =
        serde_json::json!({"type": "offer", "sdp": "v=0\r\n".repeat(SDP_LIMIT / 5 + 16)})
            .to_string();
    assert!(huge_offer.len() > SDP_LIMIT);
    observer.send_text(huge_offer).expect("send");
    eventually(Duration::from_secs(10), "the huge offer is refused", || {
        error_codes(&observer)[before..].contains(&ErrorCode::MessageTooLarge)
    })
    .await;
    assert!(!observer.is_closed(), "a refused message is not fatal");

    defendant.leave().await.expect("leave");
    observer.leave().await.expect("leave");
    judge.leave().await.expect("leave");
    server.stop().await;
}
