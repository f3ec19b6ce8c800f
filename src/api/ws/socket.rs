//! One client socket's task: the writer that drains its [`Outbox`], the first message
//! (`join` or `resume`), handing the socket to a new [`Session`] or to the kept one it
//! resumes, and the bounded drain before the socket goes.
//!
//! Apart from `ws.rs` (a session's life) because a socket and a session are no longer
//! one: a resumed session outlives the socket it was joined on, and a resuming socket
//! serves a session another task runs.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{FromRef, Path, State};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use openhearing_signaling::ErrorCode;
use tokio::sync::mpsc;

use super::join::{await_join, JoinRefused, Opening, SeenDevice};
use super::outbox::{Out, Outbox, OUTBOX};
use super::resume::Resumption;
use super::{Session, SignalingState};
use crate::hearing::Device;

pub async fn handler<S>(
    ws: WebSocketUpgrade,
    Path(hearing): Path<String>,
    SeenDevice(device): SeenDevice,
    State(state): State<S>,
) -> Response
where
    SignalingState: FromRef<S>,
{
    let st = SignalingState::from_ref(&state);
    // Frames up to 4x the protocol limit (2x the SDP limit, if more) are read so that
    // an oversize message gets a clear `message_too_large` instead of a dropped
    // connection; beyond that the WebSocket layer closes with 1009.
    let cap = frame_cap(&st.limits);
    ws.max_message_size(cap)
        .max_frame_size(cap)
        .on_upgrade(move |socket| run_session(socket, hearing, device, st))
}

async fn run_session(socket: WebSocket, hearing: String, device: Device, st: SignalingState) {
    let (mut sink, mut stream) = socket.split();
    let (out_tx, mut out_rx) = mpsc::channel::<Out>(OUTBOX);
    let out = Outbox::new(out_tx);
    let linger = out.linger();
    let writer = tokio::spawn(async move {
        while let Some(o) = out_rx.recv().await {
            match o {
                Out::Msg(m) => {
                    let text = match serde_json::to_string(&m) {
                        Ok(t) => t,
                        Err(e) => {
                            tracing::error!("cannot encode {}: {e}", m.kind());
                            continue;
                        }
                    };
                    if sink.send(Message::Text(text.into())).await.is_err() {
                        break;
                    }
                }
                Out::Close(code, reason) => {
                    let _ = sink
                        .send(Message::Close(Some(CloseFrame {
                            code,
                            reason: reason.into(),
                        })))
                        .await;
                    break;
                }
            }
        }
        let _ = sink.close().await;
    });

    let joined = match tokio::time::timeout(
        st.limits.join_timeout,
        await_join(&mut stream, &hearing, &st, &out, device),
    )
    .await
    {
        Ok(Ok(j)) => Some(j),
        Ok(Err(JoinRefused(r, retry))) => {
            out.fatal_retry(r.code, r.message, retry);
            None
        }
        Err(_) => {
            out.fatal(
                ErrorCode::JoinTimeout,
                format!(
                    "no join message within {} s",
                    st.limits.join_timeout.as_secs()
                ),
            );
            None
        }
    };
    let mut stream = Some(stream);
    match joined {
        Some(Opening::Join(auth)) => {
            if let Some(mut socket) = stream.take() {
                let session = Session::start(auth, &mut socket, &st, out.clone()).await;
                match session {
                    Ok(mut s) => {
                        let reason = s.run(&mut socket, &st).await;
                        s.finish(reason).await;
                    }
                    Err(Some(r)) => out.fatal(r.code, r.message),
                    Err(None) => {} // told already (kicked while waiting, or gone)
                }
                stream = Some(socket);
            }
        }
        Some(Opening::SelfTest { auth, seconds }) => {
            if let Some(mut socket) = stream.take() {
                super::selftest::run(auth, seconds, &mut socket, &st, &out).await;
                stream = Some(socket);
            }
        }
        Some(Opening::Resume { target, received }) => {
            // The session takes this socket over; it hands the stream back when it is
            // done with it, for the drain below.
            if let Some(socket) = stream.take() {
                let (done, back) = tokio::sync::oneshot::channel();
                let handover = Resumption {
                    stream: socket,
                    out: out.clone(),
                    received,
                    done,
                };
                match target.send(handover).await {
                    Ok(()) => stream = back.await.ok(),
                    Err(mpsc::error::SendError(r)) => {
                        out.fatal(ErrorCode::ResumeFailed, "the session ended meanwhile");
                        stream = Some(r.stream);
                    }
                }
            }
        }
        None => {}
    }
    drop(out);
    // Let the writer flush the last error and close frame while we keep reading
    // (and discarding) what the client still sends: dropping a socket with unread
    // input makes the kernel answer with a reset, and the client would lose the
    // error it is being told. Bounded, so a client that never closes cannot hold us.
    let drain = async {
        while let Some(Ok(m)) = match stream.as_mut() {
            Some(s) => s.next().await,
            None => None,
        } {
            if matches!(m, Message::Close(_)) {
                break;
            }
        }
        if linger.load(std::sync::atomic::Ordering::Relaxed) {
            // The stream failed on an oversize frame and cannot be read any further:
            // give the client a moment to read our close frame before the socket
            // goes and its unread input turns into a reset that would discard it.
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let _ = tokio::join!(writer, drain);
    })
    .await;
}

/// The largest WebSocket frame read (PROTOCOL.md, *Size limit*): 4 x
/// `max_message_bytes` or 2 x `max_sdp_bytes`, whichever is more, at least 64 KiB.
pub(super) fn frame_cap(limits: &super::SignalingLimits) -> usize {
    limits
        .max_message_bytes
        .saturating_mul(4)
        .max(limits.max_sdp_bytes.saturating_mul(2))
        .max(64 * 1024)
}
