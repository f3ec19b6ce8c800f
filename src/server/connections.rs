//! The accept loop: every TCP connection the server takes, with TLS or without, and
//! how long and how many of them it keeps.
//!
//! An HTTP server that only reacts to requests cannot defend itself against clients
//! that never finish one: 1,100 connections that completed the TLS handshake and then
//! sent nothing used to fill a 1,024-descriptor server until `/healthz` stopped
//! answering. `axum::serve` has no knobs for this, so the loop is our own, after
//! axum's `serve-with-hyper` and `low-level-rustls` examples, with four defences:
//!
//! - **Caps.** [`Admission`] counts open connections in total and per source address;
//!   a connection beyond either cap is closed at once, and [`Throttle`] keeps the
//!   warning about it to one line per interval whatever the flood.
//! - **Handshake timeout.** The TLS handshake must finish within
//!   `tls_handshake_timeout_seconds`.
//! - **Header-read timeout.** hyper's HTTP/1.1 `header_read_timeout`: a request head
//!   trickled in a byte at a time, or none at all on a kept-alive connection, ends the
//!   connection.
//! - **Idle timeout.** [`Watched`] wraps the socket under TLS and HTTP and fails its
//!   reads and writes once no byte moved either way for the idle time: idle HTTP/2 and
//!   TLS connections, the protocol-detection phase, stalled responses, and (with the
//!   longer WebSocket idle time, switched to when a request is answered `101`) a
//!   signaling socket whose client is gone. Living below hyper, it stays in force
//!   after the upgrade, when hyper no longer sees the connection.
//!
//! Each request carries the peer address as axum's `ConnectInfo<SocketAddr>`.
//! Graceful stop: accepting ends, hyper-util's `GracefulShutdown` lets requests in
//! flight finish (bounded by `server.shutdown_grace_seconds`).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_rustls::TlsAcceptor;

use crate::config::ConnectionsConfig;

/// At most one warning line per this interval for each kind of refusal.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// How long the loop pauses after `accept` fails (out of descriptors, typically), so
/// that it does not spin while the condition lasts.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// The bounds `[server.connections]` sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_total: usize,
    pub max_per_address: usize,
    pub tls_handshake: Duration,
    pub header_read: Duration,
    pub idle: Duration,
    pub websocket_idle: Duration,
}

impl Limits {
    pub fn from_config(c: &ConnectionsConfig) -> Limits {
        Limits {
            max_total: c.max_total as usize,
            max_per_address: c.max_per_address as usize,
            tls_handshake: Duration::from_secs(c.tls_handshake_timeout_seconds),
            header_read: Duration::from_secs(c.header_read_timeout_seconds),
            idle: Duration::from_secs(c.idle_timeout_seconds),
            websocket_idle: Duration::from_secs(c.websocket_idle_timeout_seconds),
        }
    }

    /// The limits with `max_total` (and `max_per_address` under it) lowered so that
    /// the connections plus `reserve` other descriptors fit in `fd_limit` (`None`:
    /// unlimited). At least half the descriptors stay for connections whatever the
    /// reserve, so a tiny limit still serves something.
    pub fn fit_to(mut self, fd_limit: Option<u64>, reserve: u64) -> Limits {
        if let Some(fds) = fd_limit {
            let room = fds.saturating_sub(reserve.min(fds / 2)).max(1);
            let room = usize::try_from(room).unwrap_or(usize::MAX);
            self.max_total = self.max_total.min(room);
            self.max_per_address = self.max_per_address.min(self.max_total);
        }
        self
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cap {
    Total(usize),
    PerAddress(usize),
}

impl std::fmt::Display for Cap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cap::Total(n) => write!(
                f,
                "{n} connections open in total (server.connections.max_total)"
            ),
            Cap::PerAddress(n) => write!(
                f,
                "{n} connections open from this address (server.connections.max_per_address)"
            ),
        }
    }
}

/// Open connections, in total and by source address.
#[derive(Clone)]
pub struct Admission {
    counts: Arc<Mutex<Counts>>,
    max_total: usize,
    max_per_address: usize,
}

#[derive(Default)]
struct Counts {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

/// One admitted connection's slot, given back when dropped.
pub struct Permit {
    admission: Admission,
    address: IpAddr,
}

impl Admission {
    pub fn new(max_total: usize, max_per_address: usize) -> Admission {
        Admission {
            counts: Arc::default(),
            max_total,
            max_per_address,
        }
    }

    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for a connection from `address`, unless a cap is reached. An
    /// IPv4-mapped IPv6 address counts as the IPv4 address it is.
    pub fn admit(&self, address: IpAddr) -> Result<Permit, Cap> {
        let address = address.to_canonical();
        let mut c = self.counts();
        if c.total >= self.max_total {
            return Err(Cap::Total(self.max_total));
        }
        let n = c.by_address.entry(address).or_insert(0);
        if *n >= self.max_per_address {
            return Err(Cap::PerAddress(self.max_per_address));
        }
        *n += 1;
        c.total += 1;
        Ok(Permit {
            admission: self.clone(),
            address,
        })
    }

    /// Open connections: (total, from `address`).
    pub fn open(&self, address: IpAddr) -> (usize, usize) {
        let c = self.counts();
        let from = c.by_address.get(&address.to_canonical()).copied();
        (c.total, from.unwrap_or(0))
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut c = self.admission.counts();
        c.total = c.total.saturating_sub(1);
        if let Some(n) = c.by_address.get_mut(&self.address) {
            *n -= 1;
            if *n == 0 {
                c.by_address.remove(&self.address);
            }
        }
    }
}

/// Lets a repeated warning through at most once per interval, counting what it held
/// back in between.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            last: None,
            held_back: 0,
        }
    }

    /// `Some(n)` when a line may be written at `now`, `n` being how many were held
    /// back since the last one; `None` (and counted) otherwise.
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.held_back += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.held_back))
            }
        }
    }
}

/// The tail of a throttled line: how many were held back since the last one.
fn since_last(held: u64, what: &str) -> String {
    if held == 0 {
        String::new()
    } else {
        format!(" ({held} more {what} since the last such line)")
    }
}

/// The idle time of one connection, shared by its socket wrapper and its service
/// (which lengthens it when the connection becomes a WebSocket).
#[derive(Debug)]
pub struct IdleTime(AtomicU64);

impl IdleTime {
    pub fn new(d: Duration) -> Arc<IdleTime> {
        Arc::new(IdleTime(AtomicU64::new(millis(d))))
    }

    pub fn set(&self, d: Duration) {
        self.0.store(millis(d), Ordering::Relaxed);
    }

    pub fn get(&self) -> Duration {
        Duration::from_millis(self.0.load(Ordering::Relaxed))
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A socket whose reads and writes fail with `TimedOut` once nothing moved either way
/// for its [`IdleTime`]. The timer is re-armed only when it fires (then from the last
/// activity), not on every read, so busy connections cost no timer churn.
pub struct Watched<S> {
    inner: S,
    idle: Arc<IdleTime>,
    last: Instant,
    timer: Pin<Box<Sleep>>,
}

impl<S> Watched<S> {
    pub fn new(inner: S, idle: Arc<IdleTime>) -> Watched<S> {
        let now = Instant::now();
        let timer = Box::pin(tokio::time::sleep_until(now + idle.get()));
        Watched {
            inner,
            idle,
            last: now,
            timer,
        }
    }

    /// Called when the inner socket is not ready: an error once the idle time passed,
    /// else `Pending` with the timer registered to wake this task.
    fn expired(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        loop {
            if self.timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let deadline = self.last + self.idle.get();
            if Instant::now() >= deadline {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("no data either way for {:?}", self.idle.get()),
                ));
            }
            self.timer.as_mut().reset(deadline);
        }
    }

    fn pending_or_expired<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        self.expired(cx).map(Err)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.pending_or_expired(cx),
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_write(cx, buf) {
            Poll::Ready(r) => {
                if matches!(r, Ok(n) if n > 0) {
                    this.last = Instant::now();
                }
                Poll::Ready(r)
            }
            Poll::Pending => this.pending_or_expired(cx),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Pending => this.pending_or_expired(cx),
            ready => ready,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.inner).poll_shutdown(cx) {
            Poll::Pending => this.pending_or_expired(cx),
            ready => ready,
        }
    }
}

/// Serves `app` on `listener` (TLS when `tls` is given) within `limits` until
/// `shutdown` completes, then lets open requests finish for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    grace: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let admission = Admission::new(limits.max_total, limits.max_per_address);
    let tls = tls.map(TlsAcceptor::from);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read);
    builder.http2().timer(TokioTimer::new());
    let shared = Arc::new(Shared {
        app,
        tls,
        builder,
        limits,
    });
    let graceful = GracefulShutdown::new();
    let mut refused_log = Throttle::new(LOG_EVERY);
    let mut accept_error_log = Throttle::new(LOG_EVERY);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                if let Some(held) = accept_error_log.hit(Instant::now()) {
                    tracing::error!(
                        "cannot accept connections: {e}{}",
                        since_last(held, "failed")
                    );
                }
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        match admission.admit(peer.ip()) {
            Ok(permit) => {
                let watcher = graceful.watcher();
                tokio::spawn(connection(stream, peer, permit, shared.clone(), watcher));
            }
            Err(cap) => {
                drop(stream);
                if let Some(held) = refused_log.hit(Instant::now()) {
                    tracing::warn!(
                        address = %peer.ip(),
                        "refused a connection: {cap}{}",
                        since_last(held, "refused")
                    );
                }
            }
        }
    }
    drop(listener);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            "connections still open after the {} s shutdown grace; closing them",
            grace.as_secs()
        );
    }
}

/// What every connection task shares.
struct Shared {
    app: Router,
    tls: Option<TlsAcceptor>,
    builder: auto::Builder<TokioExecutor>,
    limits: Limits,
}

/// One connection, from the TLS handshake to its close. `_permit` holds its slot.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    _permit: Permit,
    shared: Arc<Shared>,
    watcher: Watcher,
) {
    let idle = IdleTime::new(shared.limits.idle);
    let stream = Watched::new(stream, idle.clone());
    match &shared.tls {
        None => http(stream, peer, &shared, idle, watcher).await,
        Some(acceptor) => {
            match tokio::time::timeout(shared.limits.tls_handshake, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => http(tls, peer, &shared, idle, watcher).await,
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake not finished in time"),
            }
        }
    }
}

/// HTTP/1.1 or HTTP/2 on `io`, WebSocket upgrades included.
async fn http<I>(io: I, peer: SocketAddr, shared: &Shared, idle: Arc<IdleTime>, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = shared.app.clone();
    let websocket_idle = shared.limits.websocket_idle;
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        let mut app = app.clone();
        let idle = idle.clone();
        async move {
            let response = tower_service::Service::call(&mut app, req).await;
            if matches!(&response, Ok(r) if r.status() == StatusCode::SWITCHING_PROTOCOLS) {
                idle.set(websocket_idle);
            }
            response
        }
    });
    let conn = shared
        .builder
        .serve_connection_with_upgrades(TokioIo::new(io), service);
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%peer, "connection ended: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn caps_in_total_and_per_address() {
        let a: IpAddr = "127.0.0.2".parse().unwrap();
        let b: IpAddr = "127.0.0.3".parse().unwrap();
        let adm = Admission::new(3, 2);
        let a1 = adm.admit(a).unwrap();
        let _a2 = adm.admit(a).unwrap();
        assert_eq!(adm.admit(a).err(), Some(Cap::PerAddress(2)));
        // The same address written as IPv4-mapped IPv6 is the same source.
        let mapped: IpAddr = "::ffff:127.0.0.2".parse().unwrap();
        assert_eq!(adm.admit(mapped).err(), Some(Cap::PerAddress(2)));
        let _b1 = adm.admit(b).unwrap();
        assert_eq!(adm.admit(b).err(), Some(Cap::Total(3)));
        assert_eq!(adm.open(a), (3, 2));
        drop(a1);
        assert_eq!(adm.open(a), (2, 1));
        let _a3 = adm.admit(a).unwrap();
        assert_eq!(adm.open(b), (3, 1));
    }

    #[test]
    fn limits_fit_the_descriptor_limit() {
        let l = Limits::from_config(&crate::config::ConnectionsConfig {
            max_total: 4096,
            max_per_address: 256,
            tls_handshake_timeout_seconds: 1,
            header_read_timeout_seconds: 1,
            idle_timeout_seconds: 1,
            websocket_idle_timeout_seconds: 1,
        });
        assert_eq!(l.clone().fit_to(None, 2000).max_total, 4096);
        assert_eq!(l.clone().fit_to(Some(65536), 2000).max_total, 4096);
        let small = l.clone().fit_to(Some(5000), 2000);
        assert_eq!((small.max_total, small.max_per_address), (3000, 256));
        // A reserve larger than the limit still leaves half of it to connections.
        let tiny = l.fit_to(Some(200), 2000);
        assert_eq!((tiny.max_total, tiny.max_per_address), (100, 100));
    }

    #[test]
    fn throttle_lets_one_line_through_per_interval() {
        let mut t = Throttle::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(t.hit(t0), Some(0));
        for s in 1..=5 {
            assert_eq!(t.hit(t0 + Duration::from_secs(s)), None);
        }
        assert_eq!(t.hit(t0 + Duration::from_secs(10)), Some(5));
        assert_eq!(t.hit(t0 + Duration::from_secs(11)), None);
        assert_eq!(t.hit(t0 + Duration::from_secs(30)), Some(1));
    }

    /// Real time, scaled down: idle 400 ms, traffic every 200 ms.
    #[tokio::test]
    async fn watched_socket_times_out_only_when_nothing_moves() {
        let ms = Duration::from_millis;
        let (mut client, server) = tokio::io::duplex(1024);
        let idle = IdleTime::new(ms(400));
        let mut server = Watched::new(server, idle.clone());
        let start = Instant::now();
        // Traffic every 200 ms keeps it open well past the idle time.
        let mut buf = [0u8; 16];
        for _ in 0..5 {
            tokio::time::sleep(ms(200)).await;
            client.write_all(b"x").await.unwrap();
            assert_eq!(server.read(&mut buf).await.unwrap(), 1);
        }
        assert!(start.elapsed() >= ms(1000));
        // A longer time set meanwhile (the WebSocket case) counts from the last byte.
        idle.set(ms(800));
        let last = Instant::now();
        let e = server.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        let waited = last.elapsed();
        assert!(waited >= ms(790) && waited < ms(1500), "{waited:?}");
        // Writes that the peer never reads time out too.
        let (_reader, stalled) = tokio::io::duplex(8);
        let mut stalled = Watched::new(stalled, IdleTime::new(ms(300)));
        let e = stalled.write_all(&[0u8; 64]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
    }
}
