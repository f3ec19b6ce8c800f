//! The process under test: the OpenHearing release binary with a generated
//! configuration, or the UDP relay (the floor), each a child process whose
//! /proc/<pid>/stat the load generator reads.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};

/// How to get an OpenHearing server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The `openhearing` binary to start.
    pub bin: PathBuf,
    /// Media UDP ports for the started server.
    pub port_min: u16,
    pub port_max: u16,
    /// Attach to a running server instead: its base URL (http://...) and pid.
    pub attach_url: Option<String>,
    pub attach_pid: Option<u32>,
    pub admin_key: String,
    /// Extra TOML appended to the generated configuration.
    pub extra_config: String,
    /// The started server's `[log] filter` (tracing directives, e.g.
    /// `warn,openhearing::api::ws=debug`).
    pub log_filter: String,
    /// Write the started server's log here instead of into its temporary directory
    /// (which is removed when the run ends).
    pub log_file: Option<PathBuf>,
}

impl Default for ServerOptions {
    fn default() -> Self {
        ServerOptions {
            bin: default_server_bin(),
            port_min: 43000,
            port_max: 44999,
            attach_url: None,
            attach_pid: None,
            admin_key: "loadgen-admin-key-0123456789abcdef".into(),
            extra_config: String::new(),
            log_filter: "warn".into(),
            log_file: None,
        }
    }
}

/// `openhearing` next to this executable (both in the same cargo target directory).
pub fn default_server_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(|p| p.to_owned()).unwrap_or_default();
    // Test binaries live in target/<profile>/deps.
    for d in [
        dir.clone(),
        dir.parent().map(|p| p.to_owned()).unwrap_or_default(),
    ] {
        let c = d.join("openhearing");
        if c.is_file() {
            return c;
        }
    }
    dir.join("openhearing")
}

/// A running process under test.
pub struct Server {
    pub pid: u32,
    pub base_url: String,
    pub admin_key: String,
    /// For the relay: where to send the feed.
    pub relay_addr: Option<SocketAddr>,
    child: Option<Child>,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    _dir: Option<tempfile::TempDir>,
    /// The started server's log (empty when attached or for the relay).
    log_path: PathBuf,
}

fn free_tcp_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl Server {
    /// Starts `openhearing serve` (or attaches) and waits until it answers /healthz.
    pub async fn start(opts: &ServerOptions) -> Result<Server> {
        if let Some(url) = &opts.attach_url {
            let pid = opts
                .attach_pid
                .ok_or_else(|| anyhow!("attaching to {url} needs the server's pid"))?;
            return Ok(Server {
                pid,
                base_url: url.trim_end_matches('/').to_owned(),
                admin_key: opts.admin_key.clone(),
                relay_addr: None,
                child: None,
                stdin: tokio::sync::Mutex::new(None),
                _dir: None,
                log_path: PathBuf::new(),
            });
        }
        if !opts.bin.is_file() {
            bail!(
                "server binary {} not found (build it: cargo build --release --bin openhearing)",
                opts.bin.display()
            );
        }
        // The port is free when chosen but not held: an outgoing connection of another
        // test may take it (the same ephemeral range) before the server binds it. A
        // server that could not listen there is started again on another port.
        let mut attempts = 0;
        loop {
            attempts += 1;
            let port = free_tcp_port()?;
            match Self::spawn_on(opts, port).await {
                Err(e) if attempts < 5 && e.to_string().contains("Address already in use") => {
                    tracing::warn!(port, "the server's port was taken meanwhile; another");
                }
                r => return r,
            }
        }
    }

    /// Starts `openhearing serve` listening on `port`, waits for /healthz.
    async fn spawn_on(opts: &ServerOptions, port: u16) -> Result<Server> {
        let dir = tempfile::tempdir()?;
        let config = format!(
            r#"[server]
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
shutdown_grace_seconds = 1
[server.tls]
enabled = false
[data]
dir = "{dir}"
[auth]
admin_api_key = "{key}"
[media]
bind_address = "127.0.0.1"
udp_port_min = {pmin}
udp_port_max = {pmax}
[signaling]
# The load generator's judge admits hundreds of participants in a burst.
rate_limit_per_second = 100000
rate_limit_burst = 100000
# ... and joins them from one address, rejoining on churn.
join_burst_per_source = 100000
joins_per_minute_per_source = 1000000
join_burst_per_participant = 100000
joins_per_minute_per_participant = 1000000
[log]
filter = "{log_filter}"
{extra}
"#,
            dir = dir.path().display(),
            key = opts.admin_key,
            pmin = opts.port_min,
            pmax = opts.port_max,
            extra = opts.extra_config,
            log_filter = opts.log_filter.replace(['"', '\\'], ""),
        );
        let cfg_path = dir.path().join("loadgen.toml");
        std::fs::write(&cfg_path, config)?;
        let log_path = opts
            .log_file
            .clone()
            .unwrap_or_else(|| dir.path().join("server.log"));
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating the server log {}", log_path.display()))?;
        let child = Command::new(&opts.bin)
            .arg("serve")
            .arg("--config")
            .arg(&cfg_path)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", opts.bin.display()))?;
        let pid = child.id().ok_or_else(|| anyhow!("server exited at once"))?;
        let base_url = format!("http://127.0.0.1:{port}");
        let mut s = Server {
            pid,
            base_url,
            admin_key: opts.admin_key.clone(),
            relay_addr: None,
            child: Some(child),
            stdin: tokio::sync::Mutex::new(None),
            _dir: Some(dir),
            log_path,
        };
        s.wait_healthy().await?;
        Ok(s)
    }

    async fn wait_healthy(&mut self) -> Result<()> {
        let client = reqwest::Client::new();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Some(c) = self.child.as_mut() {
                if let Some(status) = c.try_wait()? {
                    let log = std::fs::read_to_string(&self.log_path).unwrap_or_default();
                    bail!("the server exited ({status}): {log}");
                }
            }
            if let Ok(r) = client
                .get(format!("{}/healthz", self.base_url))
                .send()
                .await
            {
                if r.status().is_success() {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("the server did not answer /healthz within 30 s")
    }

    /// Starts the UDP relay (`openhearing-loadgen relay`, this same executable).
    pub async fn start_relay(expected_destinations: usize, batch: bool) -> Result<Server> {
        let exe = relay_exe()?;
        // The relay binds port 0 itself and prints the address: a port picked here
        // and released could be taken again by one of the receivers' sockets bound
        // right after (it was, at N = 300), and the feed would go straight to it.
        let mut child = Command::new(exe)
            .arg("relay")
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--expect")
            .arg(expected_destinations.to_string())
            .args(batch.then_some("--batch"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("starting the UDP relay")?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| anyhow!("relay without stdout"))?;
        let mut line = String::new();
        tokio::time::timeout(
            Duration::from_secs(10),
            tokio::io::BufReader::new(stdout).read_line(&mut line),
        )
        .await
        .map_err(|_| anyhow!("the relay did not say its address within 10 s"))??;
        let addr: SocketAddr = line
            .trim()
            .parse()
            .with_context(|| format!("the relay's address line {line:?}"))?;
        let pid = child.id().ok_or_else(|| anyhow!("relay exited at once"))?;
        let stdin = child.stdin.take();
        Ok(Server {
            pid,
            base_url: String::new(),
            admin_key: String::new(),
            relay_addr: Some(addr),
            child: Some(child),
            stdin: tokio::sync::Mutex::new(stdin),
            _dir: None,
            log_path: PathBuf::new(),
        })
    }

    /// Gives the relay its destinations (one address per line, then EOF).
    pub async fn send_destinations(&self, addrs: &[SocketAddr]) -> Result<()> {
        let mut g = self.stdin.lock().await;
        let mut stdin = g
            .take()
            .ok_or_else(|| anyhow!("relay stdin already used"))?;
        let text: String = addrs.iter().map(|a| format!("{a}\n")).collect();
        stdin.write_all(text.as_bytes()).await?;
        stdin.shutdown().await?;
        drop(stdin);
        Ok(())
    }

    /// Stops the child (SIGTERM, then kill after 5 s).
    pub async fn stop(mut self) {
        if let Some(mut c) = self.child.take() {
            if let Some(pid) = c.id() {
                // SAFETY: plain kill(2) on our own child's pid.
                unsafe {
                    libc::kill(pid as i32, libc::SIGTERM);
                }
            }
            if tokio::time::timeout(Duration::from_secs(5), c.wait())
                .await
                .is_err()
            {
                let _ = c.kill().await;
            }
        }
    }
}

/// The load generator executable (for the relay): this process, unless it is a test
/// binary, then the `openhearing-loadgen` binary next to it.
fn relay_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    if exe
        .file_name()
        .is_some_and(|n| n.to_string_lossy() == "openhearing-loadgen")
    {
        return Ok(exe);
    }
    let dir = exe.parent().map(|p| p.to_owned()).unwrap_or_default();
    for d in [
        dir.clone(),
        dir.parent().map(|p| p.to_owned()).unwrap_or_default(),
    ] {
        let c = d.join("openhearing-loadgen");
        if c.is_file() {
            return Ok(c);
        }
    }
    bail!(
        "openhearing-loadgen binary not found next to {}",
        exe.display()
    )
}

/// The relay itself: receive each packet on `listen`, send it to every destination.
/// Blocking, one thread, one socket each way: the syscalls and nothing else. With
/// `batch`, [`relay_batched`] instead.
pub fn relay_main(listen: SocketAddr, expect: usize, batch: bool) -> Result<()> {
    use std::io::BufRead;
    use std::io::Write;
    let input = UdpSocket::bind(listen)?;
    // The address actually bound (port 0 picks one), for whoever started us.
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{}", input.local_addr()?)?;
    stdout.flush()?;
    drop(stdout);
    let mut dests: Vec<SocketAddr> = Vec::with_capacity(expect);
    for line in std::io::stdin().lock().lines() {
        let line = line?;
        let line = line.trim();
        if !line.is_empty() {
            dests.push(line.parse()?);
        }
    }
    let out = UdpSocket::bind("127.0.0.1:0")?;
    if batch {
        return relay_batched(&input, &out, &dests);
    }
    let mut buf = [0u8; 2048];
    let mut errors = 0u64;
    loop {
        let n = input.recv(&mut buf)?;
        for d in &dests {
            if out.send_to(&buf[..n], d).is_err() {
                errors += 1;
                if errors == 1 || errors.is_multiple_of(10_000) {
                    eprintln!("relay: {errors} send errors");
                }
            }
        }
    }
}

/// Packets read per `recvmmsg`, and messages per `sendmmsg`.
const RELAY_RECV_BATCH: usize = 16;
const RELAY_SEND_BATCH: usize = 64;

/// The batched floor (`relay --batch`): wait for the socket, read what is there in
/// `recvmmsg` calls (quinn-udp), and send every packet to every destination in
/// `sendmmsg` calls of up to 64 messages, each destination's packets together (as
/// the media engine drains each connection's output in one go). No copies: the
/// messages point into the receive buffers. The floor the engine's batching is
/// measured against; the plain relay is one `recv` and one `sendto` per copy.
fn relay_batched(input: &UdpSocket, out: &UdpSocket, dests: &[SocketAddr]) -> Result<()> {
    use rustix::event::{poll, PollFd, PollFlags};
    use rustix::net::addr::SocketAddrArg;
    use rustix::net::{sendmmsg, MMsgHdr, SendAncillaryBuffer, SendFlags, SocketAddrAny};
    use std::io::{IoSlice, IoSliceMut};

    input.set_nonblocking(true)?;
    let state = quinn_udp::UdpSocketState::new(input.into())?;
    let mut bufs = vec![vec![0u8; 2048]; RELAY_RECV_BATCH];
    let mut meta = vec![quinn_udp::RecvMeta::default(); RELAY_RECV_BATCH];
    let addrs: Vec<SocketAddrAny> = dests.iter().map(|d| d.as_any()).collect();
    let mut errors = 0u64;
    loop {
        let mut fds = [PollFd::new(input, PollFlags::IN)];
        match poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
        let n = {
            let mut slices: Vec<IoSliceMut<'_>> =
                bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            match state.recv(input.into(), &mut slices, &mut meta) {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(e.into()),
            }
        };
        let packets: Vec<&[u8]> = meta[..n]
            .iter()
            .zip(&bufs)
            .flat_map(|(m, b)| b[..m.len].chunks(m.stride.max(1)))
            .collect();
        let copies: Vec<(&SocketAddrAny, [IoSlice<'_>; 1])> = addrs
            .iter()
            .flat_map(|a| packets.iter().map(move |p| (a, [IoSlice::new(p)])))
            .collect();
        let mut at = 0;
        while at < copies.len() {
            let chunk = &copies[at..copies.len().min(at + RELAY_SEND_BATCH)];
            let mut ctrls: Vec<SendAncillaryBuffer<'_, '_, '_>> = chunk
                .iter()
                .map(|_| SendAncillaryBuffer::default())
                .collect();
            let mut msgs: Vec<MMsgHdr<'_>> = chunk
                .iter()
                .zip(ctrls.iter_mut())
                .map(|((a, iov), c)| MMsgHdr::new_with_addr(a, iov, c))
                .collect();
            match sendmmsg(out, &mut msgs, SendFlags::empty()) {
                Ok(sent) => at += sent.max(1),
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => {
                    // The first message failed: it goes, the rest are retried.
                    at += 1;
                    errors += 1;
                    if errors == 1 || errors.is_multiple_of(10_000) {
                        eprintln!("relay: {errors} send errors");
                    }
                }
            }
        }
    }
}
