//! Two MediaPeers wired to each other in-process (no server): offer, answer and ICE
//! candidates are passed by hand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use openhearing_peer::fixtures::default_dir;
use openhearing_peer::{EndSignal, MediaFixtures, MediaPeer};

const STREAM_A: &str = "0b6c3c1e-7e0a-4f57-9d55-5a1b8a0c0a11";

fn fixtures() -> Arc<MediaFixtures> {
    Arc::new(MediaFixtures::generate(&default_dir()).expect("fixtures (is ffmpeg installed?)"))
}

/// Forwards each peer's local candidates to the other.
fn pump_candidates(from: &Arc<MediaPeer>, to: &Arc<MediaPeer>) {
    let mut rx = from.take_candidates().expect("candidates");
    let to = to.clone();
    tokio::spawn(async move {
        while let Some(c) = rx.recv().await {
            if let Err(e) = to.add_remote_candidate(c).await {
                eprintln!("candidate refused: {e}");
            }
        }
    });
}

/// A publishes (stream id STREAM_A), B only receives; both connected.
async fn connected_pair(fx: &Arc<MediaFixtures>) -> (Arc<MediaPeer>, Arc<MediaPeer>) {
    let a = Arc::new(MediaPeer::new().await.expect("peer a"));
    let b = Arc::new(MediaPeer::new().await.expect("peer b"));
    pump_candidates(&a, &b);
    pump_candidates(&b, &a);
    a.add_media_tracks(STREAM_A).await.expect("tracks");
    let offer = a.create_offer().await.expect("offer");
    let answer = b.answer_offer(offer).await.expect("answer");
    a.apply_answer(answer).await.expect("apply answer");
    a.wait_connected(Duration::from_secs(10))
        .await
        .expect("a connected");
    b.wait_connected(Duration::from_secs(10))
        .await
        .expect("b connected");
    b.set_known_hashes(fx.hashes());
    a.start_publishing(fx.clone()).await.expect("publish");
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publishes_b_receives_the_same_frames() {
    let fx = fixtures();
    let (a, b) = connected_pair(&fx).await;
    let started = Instant::now();
    let stats = b
        .wait_until(
            |s| {
                s.stream(STREAM_A).is_some_and(|st| {
                    st.video.frames_matched >= 30 && st.audio.frames_matched >= 50
                })
            },
            Duration::from_secs(10),
        )
        .await
        .expect("B receives A's frames");
    let st = stats.stream(STREAM_A).expect("stream");
    eprintln!(
        "after {:?}: video {} pkts, {} frames ({} key, {} matched, {} discarded); audio {} pkts, {} matched; lifecycle video {:?}",
        started.elapsed(),
        st.video.rtp_packets,
        st.video.frames,
        st.video.keyframes,
        st.video.frames_matched,
        st.video.frames_discarded,
        st.audio.rtp_packets,
        st.audio.frames_matched,
        st.video.lifecycle,
    );
    // Everything B assembled is something A sent: no corrupted frames.
    let sent = a.sent_hashes();
    for h in st
        .video
        .recent_frame_hashes
        .iter()
        .chain(&st.audio.recent_frame_hashes)
    {
        assert!(sent.contains(h), "received a frame A never sent");
    }
    assert_eq!(st.video.frames, st.video.frames_matched);
    assert_eq!(st.video.packets_per_ssrc.len(), 1);
    assert!(st.video.first_packet_at.is_some());
    assert!(st.video.ended.is_none() && st.audio.ended.is_none());
    a.close().await.expect("close a");
    b.close().await.expect("close b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_video_and_renegotiating_ends_the_track_on_the_receiver() {
    let fx = fixtures();
    let (a, b) = connected_pair(&fx).await;
    b.wait_until(
        |s| {
            s.stream(STREAM_A)
                .is_some_and(|st| st.video.frames_matched >= 5)
        },
        Duration::from_secs(10),
    )
    .await
    .expect("video flows first");

    a.remove_video().await.expect("remove video");
    let removed_at = Instant::now();
    let offer = a.create_offer().await.expect("re-offer");
    let answer = b.answer_offer(offer).await.expect("re-answer");
    a.apply_answer(answer).await.expect("apply re-answer");

    let stats = b
        .wait_until(
            |s| s.stream(STREAM_A).is_some_and(|st| st.video.is_ended()),
            Duration::from_secs(5),
        )
        .await
        .expect("B sees the video track end");
    let ended_after = removed_at.elapsed();
    // Give webrtc a moment to deliver any native event too, to report what it does.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let later = b.stats();
    let st = later.stream(STREAM_A).expect("stream");
    eprintln!(
        "video ended after {ended_after:?} via {:?}; lifecycle video {:?}, audio {:?}; audio ended: {:?}",
        stats.stream(STREAM_A).and_then(|s| s.video.ended),
        st.video.lifecycle,
        st.audio.lifecycle,
        st.audio.ended,
    );
    assert!(st.video.ended.is_some());
    assert_eq!(st.audio.ended, None, "audio is still sent");
    // Audio keeps flowing after the renegotiation.
    let audio_before = st.audio.rtp_packets;
    b.wait_until(
        |s| {
            s.stream(STREAM_A)
                .is_some_and(|st| st.audio.rtp_packets > audio_before + 20)
        },
        Duration::from_secs(5),
    )
    .await
    .expect("audio continues");
    // After close, poll() ends: the remaining track reports PollNone.
    b.close().await.expect("close b");
    let closed = b
        .wait_until(
            |s| s.stream(STREAM_A).is_some_and(|st| st.audio.is_ended()),
            Duration::from_secs(5),
        )
        .await
        .expect("audio track ends when the connection closes");
    eprintln!(
        "after close: audio ended via {:?}",
        closed.stream(STREAM_A).and_then(|s| s.audio.ended)
    );
    assert!(matches!(
        closed.stream(STREAM_A).and_then(|s| s.audio.ended),
        Some(EndSignal::PollNone | EndSignal::OnEnded)
    ));
    a.close().await.expect("close a");
}
