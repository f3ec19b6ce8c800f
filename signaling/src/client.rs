//! A Rust signaling client over tokio-tungstenite, used by the integration tests, the
//! CLI and the load generator.
//!
//! The socket is driven by two small tasks (reader, writer) so that `send` never waits
//! on `recv` and vice versa. Incoming frames are decoded into [`ServerMessage`]s; the
//! close frame the server sent (code and reason) is kept for [`SignalingClient::close_info`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
pub use tokio_tungstenite::Connector;

use crate::protocol::{ClientMessage, ErrorCode, ServerMessage, Welcome, PROTOCOL_VERSION};

/// What can go wrong on the client side.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("could not connect to {url}: {source}")]
    Connect {
        url: String,
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    #[error("the connection is closed")]
    Closed,
    #[error("timed out after {0:?} waiting for the server")]
    Timeout(Duration),
    #[error("the server refused: {code}: {message}")]
    Refused { code: ErrorCode, message: String },
    #[error("unexpected message from the server: {0}")]
    Unexpected(String),
}

/// One signaling connection.
pub struct SignalingClient {
    out_tx: mpsc::UnboundedSender<Message>,
    in_rx: mpsc::UnboundedReceiver<ServerMessage>,
    close: Arc<Mutex<Option<(u16, String)>>>,
    /// `join.resumable`: ask the server to keep the session for a `resume`.
    resumable: bool,
}

impl SignalingClient {
    /// Connects to a `ws://` or `wss://` URL (certificates checked against the web PKI).
    pub async fn connect(url: &str) -> Result<Self, ClientError> {
        Self::connect_with(url, None).await
    }

    /// Connects with an explicit TLS connector (e.g. one that trusts a self-signed
    /// server certificate).
    pub async fn connect_with(
        url: &str,
        connector: Option<Connector>,
    ) -> Result<Self, ClientError> {
        let (ws, _resp) =
            tokio_tungstenite::connect_async_tls_with_config(url, None, false, connector)
                .await
                .map_err(|e| ClientError::Connect {
                    url: url.to_owned(),
                    source: Box::new(e),
                })?;
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let close = Arc::new(Mutex::new(None));

        tokio::spawn(async move {
            while let Some(msg) = out_rx.recv().await {
                let is_close = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() || is_close {
                    break;
                }
            }
            let _ = sink.close().await;
        });

        let close_slot = close.clone();
        tokio::spawn(async move {
            while let Some(frame) = stream.next().await {
                match frame {
                    Ok(Message::Text(text)) => {
                        match serde_json::from_str::<ServerMessage>(text.as_str()) {
                            Ok(m) => {
                                if in_tx.send(m).is_err() {
                                    break;
                                }
                            }
                            Err(e) => {
                                tracing::warn!("undecodable server frame ({e}): {text}");
                            }
                        }
                    }
                    Ok(Message::Close(frame)) => {
                        if let Ok(mut slot) = close_slot.lock() {
                            *slot = Some(
                                frame
                                    .map(|f| (u16::from(f.code), f.reason.to_string()))
                                    .unwrap_or((1005, String::new())),
                            );
                        }
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        });

        Ok(SignalingClient {
            out_tx,
            in_rx,
            close,
            resumable: false,
        })
    }

    /// Whether the next `join` asks the server to keep the session for a `resume`.
    pub fn set_resumable(&mut self, resumable: bool) {
        self.resumable = resumable;
    }

    /// Sends `resume` (the token of `welcome.resume`, `received` messages seen after
    /// `welcome`) and waits for `resumed`; returns how many messages the server replays
    /// (they follow). A refusal is [`ClientError::Refused`].
    pub async fn resume(
        &mut self,
        token: &str,
        received: u64,
        timeout: Duration,
    ) -> Result<u64, ClientError> {
        self.send(&ClientMessage::Resume {
            v: PROTOCOL_VERSION,
            resume: token.to_owned(),
            received,
        })?;
        match self.recv_timeout(timeout).await? {
            ServerMessage::Resumed { replayed } => Ok(replayed),
            ServerMessage::Error { code, message, .. } => {
                Err(ClientError::Refused { code, message })
            }
            other => Err(ClientError::Unexpected(other.kind().to_owned())),
        }
    }

    /// Sends `join` and waits (up to `timeout`) for `welcome`. Other messages that
    /// arrive first are an error; a refusal is [`ClientError::Refused`].
    pub async fn join(&mut self, token: &str, timeout: Duration) -> Result<Welcome, ClientError> {
        self.join_from(token, None, timeout).await
    }

    /// [`Self::join`] from the browser tab (or client instance) `tab`: a reconnect
    /// with the same `tab` takes its seat back at once instead of waiting for the
    /// court as a second device (see PROTOCOL.md, `join.tab`).
    pub async fn join_from(
        &mut self,
        token: &str,
        tab: Option<&str>,
        timeout: Duration,
    ) -> Result<Welcome, ClientError> {
        self.send(&ClientMessage::Join {
            v: PROTOCOL_VERSION,
            token: token.to_owned(),
            tab: tab.map(str::to_owned),
            resumable: self.resumable,
        })?;
        match self.recv_timeout(timeout).await? {
            ServerMessage::Welcome(w) => Ok(*w),
            ServerMessage::Error { code, message, .. } => {
                Err(ClientError::Refused { code, message })
            }
            other => Err(ClientError::Unexpected(other.kind().to_owned())),
        }
    }

    /// Sends `self_test` instead of `join` (a pre-join network test lasting `seconds`)
    /// and waits for `self_test_ready`; returns the seconds the server granted. A
    /// refusal is [`ClientError::Refused`].
    pub async fn self_test(
        &mut self,
        token: &str,
        seconds: Option<u32>,
        timeout: Duration,
    ) -> Result<u32, ClientError> {
        self.send(&ClientMessage::SelfTest {
            v: PROTOCOL_VERSION,
            token: token.to_owned(),
            seconds,
        })?;
        match self.recv_timeout(timeout).await? {
            ServerMessage::SelfTestReady { seconds } => Ok(seconds),
            ServerMessage::Error { code, message, .. } => {
                Err(ClientError::Refused { code, message })
            }
            other => Err(ClientError::Unexpected(other.kind().to_owned())),
        }
    }

    /// Sends one typed message.
    pub fn send(&self, msg: &ClientMessage) -> Result<(), ClientError> {
        let text =
            serde_json::to_string(msg).map_err(|e| ClientError::Unexpected(e.to_string()))?;
        self.send_text(text)
    }

    /// Sends a raw text frame (tests use this for malformed input).
    pub fn send_text(&self, text: String) -> Result<(), ClientError> {
        self.out_tx
            .send(Message::text(text))
            .map_err(|_| ClientError::Closed)
    }

    /// Sends a raw binary frame (not part of the protocol; for tests).
    pub fn send_binary(&self, data: Vec<u8>) -> Result<(), ClientError> {
        self.out_tx
            .send(Message::binary(data))
            .map_err(|_| ClientError::Closed)
    }

    /// A clone of the sending half, for use from another task.
    pub fn sender(&self) -> SignalingSender {
        SignalingSender {
            out_tx: self.out_tx.clone(),
        }
    }

    /// The next message, or `None` once the connection is closed.
    pub async fn recv(&mut self) -> Option<ServerMessage> {
        self.in_rx.recv().await
    }

    /// The next message within `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<ServerMessage, ClientError> {
        match tokio::time::timeout(timeout, self.in_rx.recv()).await {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout(timeout)),
        }
    }

    /// The close code and reason the server sent, once the connection has closed.
    pub fn close_info(&self) -> Option<(u16, String)> {
        self.close.lock().ok().and_then(|g| g.clone())
    }

    /// Closes the socket politely.
    pub fn close(&self) {
        let _ = self.out_tx.send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "bye".into(),
        })));
    }
}

/// The sending half of a [`SignalingClient`], cloneable across tasks (for example into
/// a WebRTC event handler that trickles candidates).
#[derive(Clone)]
pub struct SignalingSender {
    out_tx: mpsc::UnboundedSender<Message>,
}

impl SignalingSender {
    /// Sends one typed message.
    pub fn send(&self, msg: &ClientMessage) -> Result<(), ClientError> {
        let text =
            serde_json::to_string(msg).map_err(|e| ClientError::Unexpected(e.to_string()))?;
        self.out_tx
            .send(Message::text(text))
            .map_err(|_| ClientError::Closed)
    }
}
