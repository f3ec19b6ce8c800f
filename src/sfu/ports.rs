//! Media port allocation from the configured range.
//!
//! webrtc 0.21 has no UDP mux: every PeerConnection binds its own socket, and when a
//! bind fails it only logs and skips that address. So we hand out ports ourselves: a
//! port is reserved in-process while a connection holds it ([`PortLease`] returns it on
//! drop) and probed with a real bind first, so that ports taken by other programs are
//! skipped instead of producing a connection with no socket.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};
use std::sync::{Arc, Mutex};

/// Hands out ports from `[min, max]`, round robin, each to one holder at a time.
#[derive(Debug)]
pub struct PortAllocator {
    ip: IpAddr,
    min: u16,
    max: u16,
    also_tcp: bool,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    next: u16,
    leased: HashSet<u16>,
}

/// A port held by one connection; released when dropped.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    owner: Arc<PortAllocator>,
}

impl PortLease {
    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for PortLease {
    fn drop(&mut self) {
        if let Ok(mut st) = self.owner.state.lock() {
            st.leased.remove(&self.port);
        }
    }
}

impl PortAllocator {
    /// `also_tcp`: the port must be free for TCP too (ICE-TCP listens on the same number).
    pub fn new(ip: IpAddr, min: u16, max: u16, also_tcp: bool) -> Arc<Self> {
        Arc::new(PortAllocator {
            ip,
            min,
            max,
            also_tcp,
            state: Mutex::new(State {
                next: min,
                leased: HashSet::new(),
            }),
        })
    }

    /// How many ports the range holds.
    pub fn capacity(&self) -> usize {
        usize::from(self.max - self.min) + 1
    }

    /// How many ports are leased now.
    pub fn in_use(&self) -> usize {
        self.state.lock().map(|s| s.leased.len()).unwrap_or(0)
    }

    /// Leases the next free port, or `None` when every port of the range is taken.
    /// Port 0 as both bounds means "let the OS choose" (used by tests).
    pub fn lease(self: &Arc<Self>) -> Option<PortLease> {
        if self.min == 0 && self.max == 0 {
            return Some(PortLease {
                port: 0,
                owner: self.clone(),
            });
        }
        let mut st = self.state.lock().ok()?;
        let span = self.capacity();
        for _ in 0..span {
            let port = st.next;
            st.next = if port >= self.max { self.min } else { port + 1 };
            if st.leased.contains(&port) || !self.probe(port) {
                continue;
            }
            st.leased.insert(port);
            return Some(PortLease {
                port,
                owner: self.clone(),
            });
        }
        None
    }

    fn probe(&self, port: u16) -> bool {
        let addr = SocketAddr::new(self.ip, port);
        let udp_ok = UdpSocket::bind(addr).is_ok();
        udp_ok && (!self.also_tcp || TcpListener::bind(addr).is_ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn free_range(n: u16) -> (u16, u16) {
        // Find a run of free ports by asking the OS for one and scanning upward.
        for _ in 0..50 {
            let base = UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .map(|a| a.port())
                .unwrap_or(40000);
            if base > 65000 {
                continue;
            }
            if (base..base + n).all(|p| UdpSocket::bind(("127.0.0.1", p)).is_ok()) {
                return (base, base + n - 1);
            }
        }
        panic!("no free port range");
    }

    #[test]
    fn leases_are_unique_and_released_on_drop() {
        let (min, max) = free_range(3);
        let a = PortAllocator::new("127.0.0.1".parse().unwrap(), min, max, false);
        let l1 = a.lease().unwrap();
        let l2 = a.lease().unwrap();
        let l3 = a.lease().unwrap();
        let mut ports = vec![l1.port(), l2.port(), l3.port()];
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 3);
        assert!(a.lease().is_none(), "range exhausted");
        assert_eq!(a.in_use(), 3);
        let freed = l2.port();
        drop(l2);
        assert_eq!(a.lease().unwrap().port(), freed);
    }

    #[test]
    fn ports_taken_by_other_programs_are_skipped() {
        let (min, max) = free_range(2);
        let _squatter = UdpSocket::bind(("127.0.0.1", min)).unwrap();
        let a = PortAllocator::new("127.0.0.1".parse().unwrap(), min, max, false);
        let held = a.lease().unwrap();
        assert_eq!(held.port(), max);
        assert!(a.lease().is_none());
    }
}
