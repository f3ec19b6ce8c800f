//! Test 1 of the foundation: three webrtc 0.21 participants and an observer in one
//! hearing, through the real server. Real VP8 and Opus (encoded by ffmpeg) are sent;
//! what arrives is depacketized and compared with what was sent.

mod common;

use std::time::Duration;

use common::cast::*;
use common::*;
use openhearing_signaling::{ErrorCode, ServerMessage};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_publishers_and_an_observer_exchange_real_media() {
    let server = TestServer::start(42000, 42199).await;
    let hearing = server
        .hearing_of(&[JUDGE, DEFENDANT, COUNSEL, OBSERVER])
        .await;

    let judge = join(&server, &hearing, "presiding_judge", true).await;
    let defendant = join(&server, &hearing, "defendant", true).await;
    let counsel = join(&server, &hearing, "defence_counsel", true).await;
    let observer = join(&server, &hearing, "observer", false).await;
    assert!(judge.welcome().can_publish);
    assert!(!observer.welcome().can_publish);
    convene(&judge, &[&defendant, &counsel, &observer]).await;
    publish(&[&judge, &defendant, &counsel]).await;

    let publishers = [&judge, &defendant, &counsel];
    let everyone = [&judge, &defendant, &counsel, &observer];
    // Every participant decodes at least 20 video frames and 50 audio packets equal to
    // the sent ones from every publisher other than itself.
    wait_exchange(&everyone, &publishers, 20, 50).await;
    for rx in everyone {
        assert_integrity(rx);
        assert!(
            rx.stats().stream(&rx.id().to_string()).is_none(),
            "nobody receives their own media back"
        );
    }

    // The observer may not publish: an offer that sends media is refused, and no
    // stream of the observer's ever reaches anyone.
    let intruder = openhearing_peer::MediaPeer::new().await.expect("peer");
    intruder
        .add_media_tracks(&observer.id().to_string())
        .await
        .expect("tracks");
    let sending_offer = intruder.create_offer().await.expect("offer");
    let refused = async {
        for _ in 0..50 {
            observer
                .send_text(serde_json::json!({"type": "offer", "sdp": sending_offer}).to_string())
                .expect("send");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let codes: Vec<ErrorCode> = observer
                .events()
                .into_iter()
                .filter_map(|e| match e {
                    ServerMessage::Error { code, .. } => Some(code),
                    _ => None,
                })
                .collect();
            if codes.contains(&ErrorCode::PublishNotAllowed) {
                return true;
            }
        }
        false
    };
    assert!(
        refused.await,
        "the observer's sending offer is refused with publish_not_allowed"
    );
    let _ = intruder.close().await;
    for rx in [&judge, &defendant, &counsel] {
        assert!(
            rx.stats().stream(&observer.id().to_string()).is_none(),
            "no media from the observer reaches {}",
            rx.id()
        );
    }

    // Counsel leaves: the others' tracks from counsel end, and the rest keeps flowing.
    let counsel_id = counsel.id();
    counsel.leave().await.expect("leave");
    for rx in [&judge, &defendant, &observer] {
        eventually(MEDIA_WAIT, "tracks of the participant who left end", || {
            rx.stats()
                .stream(&counsel_id.to_string())
                .is_some_and(|s| s.audio.is_ended() && s.video.is_ended())
        })
        .await;
        assert!(rx.events().iter().any(|e| matches!(
            e,
            ServerMessage::ParticipantLeft { participant_id, .. } if participant_id == &counsel_id
        )));
    }
    let before = received_from(&defendant, judge.id());
    eventually(
        MEDIA_WAIT,
        "media keeps flowing after a participant left",
        || {
            let now = received_from(&defendant, judge.id());
            now.0 >= before.0 + 10 && now.1 >= before.1 + 25
        },
    )
    .await;

    assert_eq!(
        server.sfu.ports_in_use(),
        3,
        "one media port per connected participant"
    );
    for p in [&judge, &defendant, &observer] {
        let _ = p.leave().await;
    }
    eventually(
        MEDIA_WAIT,
        "leaving frees every participant's media port",
        || server.sfu.ports_in_use() == 0,
    )
    .await;
    server.stop().await;
}
