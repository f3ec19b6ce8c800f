//! A subscriber of Janus's streaming plugin over its HTTP API, with the same media side
//! (a webrtc 0.21 peer or a lite observer, same receive tap) as the OpenHearing
//! subscribers: create a session,
//! attach `janus.plugin.streaming`, `watch`, answer Janus's offer, `start`, trickle our
//! candidates. A long-poll task per session keeps the session alive (Janus expires a
//! session nobody polls) and delivers events.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use openhearing_peer::{MediaPeer, ReceiveOptions, RtpTap};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::lite::{LiteHost, LiteId};
use crate::metrics::ReceiverTap;
use crate::run::JanusOptions;

pub struct JanusSubscriber {
    client: reqwest::Client,
    session_url: String,
    media: Media,
    poller: JoinHandle<()>,
    trickle: JoinHandle<()>,
}

/// The subscriber's media side.
enum Media {
    Full(Arc<MediaPeer>),
    Lite(LiteHost, LiteId),
}

fn tx() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

async fn post(client: &reqwest::Client, url: &str, body: Value) -> Result<Value> {
    let v: Value = client
        .post(url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("POST {url}"))?
        .json()
        .await?;
    if v["janus"] == "error" {
        bail!("janus error: {}", v["error"]);
    }
    Ok(v)
}

/// The `a=candidate` lines of `sdp`, with the mid and index of their m-section.
fn sdp_candidates(sdp: &str) -> Vec<webrtc::peer_connection::RTCIceCandidateInit> {
    let mut out = Vec::new();
    let mut index: Option<u16> = None;
    let mut mid: Option<String> = None;
    for line in sdp.lines().map(str::trim_end) {
        if line.starts_with("m=") {
            index = Some(index.map_or(0, |i| i + 1));
            mid = None;
        } else if let Some(m) = line.strip_prefix("a=mid:") {
            mid = Some(m.to_owned());
        } else if let Some(c) = line.strip_prefix("a=") {
            if c.starts_with("candidate:") {
                out.push(webrtc::peer_connection::RTCIceCandidateInit {
                    candidate: c.to_owned(),
                    sdp_mid: mid.clone(),
                    sdp_mline_index: index,
                    username_fragment: None,
                    url: None,
                });
            }
        }
    }
    out
}

impl JanusSubscriber {
    /// Watches the mountpoint with a full peer, or on `lite`'s thread.
    pub async fn watch(
        opts: &JanusOptions,
        tap: Arc<ReceiverTap>,
        lite: Option<&LiteHost>,
    ) -> Result<JanusSubscriber> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(40))
            .build()?;
        let base = opts.url.trim_end_matches('/').to_owned();
        let created = post(
            &client,
            &base,
            json!({"janus": "create", "transaction": tx()}),
        )
        .await?;
        let session = created["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no session id in {created}"))?;
        let session_url = format!("{base}/{session}");
        let attached = post(
            &client,
            &session_url,
            json!({"janus": "attach", "plugin": "janus.plugin.streaming", "transaction": tx()}),
        )
        .await?;
        let handle = attached["data"]["id"]
            .as_u64()
            .ok_or_else(|| anyhow!("no handle id in {attached}"))?;
        let handle_url = format!("{session_url}/{handle}");

        // Long poll: every event of this session goes to `events`.
        let (ev_tx, mut events) = mpsc::unbounded_channel::<Value>();
        let poll_client = client.clone();
        let poll_url = format!("{session_url}?maxev=10");
        let poller = tokio::spawn(async move {
            loop {
                let r = poll_client.get(&poll_url).send().await;
                let Ok(r) = r else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let Ok(v) = r.json::<Value>().await else {
                    continue;
                };
                let list = match v {
                    Value::Array(a) => a,
                    other => vec![other],
                };
                for e in list {
                    if e["janus"] == "error" && e["error"]["code"] == 458 {
                        return; // session gone
                    }
                    let _ = ev_tx.send(e);
                }
            }
        });

        post(
            &client,
            &handle_url,
            json!({"janus": "message", "transaction": tx(),
                   "body": {"request": "watch", "id": opts.mountpoint}}),
        )
        .await?;
        let offer = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(e) = events.recv().await {
                if let Some(sdp) = e["jsep"]["sdp"].as_str() {
                    return Ok(sdp.to_owned());
                }
                if e["plugindata"]["data"]["error"].is_string() {
                    bail!("watch refused: {}", e["plugindata"]["data"]);
                }
            }
            bail!("event stream ended")
        })
        .await
        .map_err(|_| anyhow!("no offer from Janus within 20 s"))??;

        let (media, answer, mut candidates) = match lite {
            None => {
                let peer = Arc::new(
                    MediaPeer::with_receive(ReceiveOptions {
                        tap: Some(tap as Arc<dyn RtpTap>),
                        tap_only: true,
                        bind_ip: Some(opts.peer_ip),
                    })
                    .await
                    .map_err(|e| anyhow!("{e}"))?,
                );
                let candidates = peer
                    .take_candidates()
                    .ok_or_else(|| anyhow!("candidates taken"))?;
                let answer = peer
                    .answer_offer(offer.clone())
                    .await
                    .map_err(|e| anyhow!("answering Janus's offer: {e}"))?;
                // webrtc 0.21 pairs nothing with candidates that arrive inside a remote
                // description (it only uses trickled ones), and Janus puts its
                // candidates in the offer: hand them over one by one.
                for c in sdp_candidates(&offer) {
                    peer.add_remote_candidate(c)
                        .await
                        .map_err(|e| anyhow!("Janus's candidate: {e}"))?;
                }
                (Media::Full(peer), answer, candidates)
            }
            Some(host) => {
                let local = host.answer(tap, Arc::default(), offer.clone()).await?;
                // The same core: the offer's candidates go in one by one here too.
                for c in sdp_candidates(&offer) {
                    host.add_candidate(local.id, c)?;
                }
                let (tx, rx) = mpsc::unbounded_channel();
                let _ = tx.send(local.candidate);
                (Media::Lite(host.clone(), local.id), local.sdp, rx)
            }
        };
        post(
            &client,
            &handle_url,
            json!({"janus": "message", "transaction": tx(),
                   "body": {"request": "start"},
                   "jsep": {"type": "answer", "sdp": answer}}),
        )
        .await?;
        let trickle_client = client.clone();
        let trickle_url = handle_url.clone();
        let trickle = tokio::spawn(async move {
            while let Some(c) = candidates.recv().await {
                let body = json!({"janus": "trickle", "transaction": tx(),
                    "candidate": {"candidate": c.candidate,
                                  "sdpMid": c.sdp_mid.filter(|m| !m.is_empty()).unwrap_or_else(|| "0".into()),
                                  "sdpMLineIndex": c.sdp_mline_index.unwrap_or(0)}});
                if let Err(e) = post(&trickle_client, &trickle_url, body).await {
                    tracing::warn!("trickle to Janus failed: {e}");
                }
            }
        });
        // Drain later events so the channel does not grow.
        tokio::spawn(async move { while events.recv().await.is_some() {} });
        Ok(JanusSubscriber {
            client,
            session_url,
            media,
            poller,
            trickle,
        })
    }

    /// Destroys the session (Janus hangs up the PeerConnection).
    pub async fn destroy(self) {
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            post(
                &self.client,
                &self.session_url,
                json!({"janus": "destroy", "transaction": tx()}),
            ),
        )
        .await;
        self.poller.abort();
        self.trickle.abort();
        match self.media {
            Media::Full(peer) => {
                let _ = peer.close().await;
            }
            Media::Lite(host, id) => host.close(id),
        }
    }
}
