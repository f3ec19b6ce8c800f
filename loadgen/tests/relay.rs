//! The UDP-relay floor, plain and batched: every packet reaches every destination,
//! in order and unchanged.

use std::io::Write;
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the relay however the test ends (it would wait for packets forever).
struct Relay(std::process::Child);

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn relays_every_packet_to_every_destination(batch: bool) {
    let receivers: Vec<UdpSocket> = (0..3)
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_openhearing-loadgen"));
    // Port 0: the relay picks it and says which on stdout (no port picked here and
    // released, which a socket bound meanwhile could take).
    cmd.args(["relay", "--listen", "127.0.0.1:0", "--expect", "3"]);
    if batch {
        cmd.arg("--batch");
    }
    let mut relay = Relay(
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("relay started"),
    );
    let listen: std::net::SocketAddr = {
        use std::io::BufRead;
        let stdout = relay.0.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the relay prints its address");
        line.trim().parse().expect("an address")
    };
    assert_eq!(listen.ip().to_string(), "127.0.0.1");
    assert_ne!(listen.port(), 0);
    {
        let mut stdin = relay.0.stdin.take().expect("stdin");
        for r in &receivers {
            writeln!(stdin, "{}", r.local_addr().expect("addr")).expect("written");
        }
    } // EOF: the relay starts relaying
    let sender = UdpSocket::bind("127.0.0.1:0").expect("bind");
    for r in &receivers {
        r.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
    }
    // The relay may still be starting: send until a packet comes back (bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 2048];
    loop {
        sender.send_to(&[0xff; 8], listen).expect("sent");
        if receivers[0].recv(&mut buf).is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the relay never answered");
    }
    // What the warm-up left behind, then a numbered run of 50.
    for r in &receivers {
        while r.recv(&mut buf).is_ok() {}
    }
    let packet = |i: u8| vec![i; 100 + usize::from(i)];
    for i in 0..50u8 {
        sender.send_to(&packet(i), listen).expect("sent");
        std::thread::sleep(Duration::from_millis(1));
    }
    for r in &receivers {
        r.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        for i in 0..50u8 {
            let n = r.recv(&mut buf).expect("relayed");
            assert_eq!(
                buf[..n],
                packet(i)[..],
                "packet {i}, unchanged and in order"
            );
        }
    }
}

#[test]
fn the_plain_relay_forwards_every_packet_to_every_destination() {
    relays_every_packet_to_every_destination(false);
}

#[test]
fn the_batched_relay_forwards_every_packet_to_every_destination() {
    relays_every_packet_to_every_destination(true);
}
