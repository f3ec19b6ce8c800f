//! What the soak reads about the server process from /proc: resident memory, open
//! file descriptors, threads, and the UDP sockets it holds in its media port range.
//!
//! Why sockets are matched by inode rather than by port: the soak's own peers run on
//! the same host and their ephemeral ports can fall inside the server's media range,
//! so a port number alone does not say whose socket it is. The server's descriptors
//! (`/proc/<pid>/fd`, `socket:[inode]`) are joined with the UDP tables
//! (`/proc/<pid>/net/udp`, `udp6`) on the inode.

use std::collections::HashSet;
use std::io;
use std::time::Instant;

use serde::Serialize;

/// One reading of the server.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Sample {
    /// Seconds since the soak started.
    pub at_s: f64,
    pub rss_kb: u64,
    pub fds: usize,
    /// Of `fds`, those on the SQLite database and its WAL/journal: the server's pool
    /// (at most a few connections) opens them lazily, so their number follows how
    /// many connections are open, not how many sessions there were.
    pub db_fds: usize,
    pub threads: u64,
    /// UDP sockets of the server bound to a port in its media range.
    pub media_ports: usize,
}

/// Reads one process.
#[derive(Debug, Clone)]
pub struct Probe {
    pub pid: u32,
    pub port_min: u16,
    pub port_max: u16,
    pub started: Instant,
}

impl Probe {
    pub fn sample(&self) -> io::Result<Sample> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let field = |name: &str| -> io::Result<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .ok_or_else(|| io::Error::other(format!("no {name} in /proc/<pid>/status")))
        };
        let (fds, db_fds, sockets) = self.descriptors()?;
        Ok(Sample {
            at_s: self.started.elapsed().as_secs_f64(),
            rss_kb: field("VmRSS:")?,
            fds,
            db_fds,
            threads: field("Threads:")?,
            media_ports: self.media_ports(&sockets)?,
        })
    }

    /// Open descriptors, how many of them are on database files, and the inodes of
    /// those that are sockets.
    fn descriptors(&self) -> io::Result<(usize, usize, HashSet<u64>)> {
        let mut count = 0;
        let mut db = 0;
        let mut sockets = HashSet::new();
        for entry in std::fs::read_dir(format!("/proc/{}/fd", self.pid))? {
            let Ok(entry) = entry else { continue };
            count += 1;
            // A descriptor closed between read_dir and read_link is simply skipped.
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.to_string_lossy();
            if [".db", ".db-wal", ".db-shm", ".db-journal"]
                .iter()
                .any(|end| target.ends_with(end))
            {
                db += 1;
            }
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|s| s.strip_suffix(']'))
                .and_then(|s| s.parse().ok())
            {
                sockets.insert(inode);
            }
        }
        Ok((count, db, sockets))
    }

    fn media_ports(&self, sockets: &HashSet<u64>) -> io::Result<usize> {
        let mut n = 0;
        for table in ["udp", "udp6"] {
            let Ok(text) = std::fs::read_to_string(format!("/proc/{}/net/{table}", self.pid))
            else {
                continue; // no IPv6 in this namespace
            };
            n += udp_table_ports(&text)
                .filter(|(port, inode)| {
                    (self.port_min..=self.port_max).contains(port) && sockets.contains(inode)
                })
                .count();
        }
        Ok(n)
    }
}

/// (local port, inode) of each row of a /proc/net/udp table.
fn udp_table_ports(text: &str) -> impl Iterator<Item = (u16, u64)> + '_ {
    text.lines().skip(1).filter_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let port = cols.get(1)?.rsplit_once(':')?.1;
        let port = u16::from_str_radix(port, 16).ok()?;
        let inode = cols.get(9)?.parse().ok()?;
        Some((port, inode))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_udp_table() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n\
          5: 0100007F:A7F8 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 123456 2 0000000000000000 0\n\
          6: 00000000:0044 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 99 2 0000000000000000 0\n";
        let rows: Vec<_> = udp_table_ports(text).collect();
        assert_eq!(rows, vec![(0xA7F8, 123456), (0x44, 99)]);
    }

    #[test]
    fn samples_this_process() {
        let sock = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let port = sock.local_addr().expect("addr").port();
        let probe = Probe {
            pid: std::process::id(),
            port_min: port,
            port_max: port,
            started: Instant::now(),
        };
        let s = probe.sample().expect("sample");
        assert_eq!(s.media_ports, 1);
        assert!(s.fds > 0 && s.rss_kb > 0 && s.threads > 0);
        drop(sock);
        assert_eq!(probe.sample().expect("sample").media_ports, 0);
    }
}
