//! The DTLS handshake survives the loss pattern that stalled one lossy join in four
//! (issue 13, "Joining on a lossy link"; `vendor/rtc-dtls/PATCHED.md`).
//!
//! The server is the DTLS client towards a browser. When part of its flight 5 is lost,
//! the browser (DTLS server) repeats its flight 4 before the client's own retransmit
//! timer fires. The unpatched rtc-dtls disarmed that timer on the repeated flight and
//! never sent flight 5 again. Driven here sans-IO with two rtc-dtls endpoints and an
//! explicit clock, so the pattern is exact and the test needs no network.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::dtls::cipher_suite::CipherSuiteId;
use rtc::dtls::config::ConfigBuilder;
use rtc::dtls::crypto::Certificate;
use rtc::dtls::endpoint::{Endpoint, EndpointEvent};
use rtc::shared::TransportProtocol;

fn client_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40001))
}

fn server_addr() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40002))
}

fn endpoints() -> (Endpoint, Endpoint) {
    let provider = rtc::crypto::default_provider().expect("a crypto provider");
    let suite = vec![CipherSuiteId::Tls_Ecdhe_Ecdsa_With_Aes_128_Gcm_Sha256];
    let client_cfg = ConfigBuilder::default()
        .with_crypto_provider(provider.clone())
        .with_cipher_suites(suite.clone())
        .with_insecure_skip_verify(true)
        .with_certificates(vec![Certificate::generate_self_signed(
            vec!["client".to_owned()],
            provider.crypto(),
        )
        .expect("client certificate")])
        .build(true, None)
        .expect("client config");
    let server_cfg = ConfigBuilder::default()
        .with_crypto_provider(provider.clone())
        .with_cipher_suites(suite)
        .with_insecure_skip_verify(true)
        .with_certificates(vec![Certificate::generate_self_signed(
            vec!["server".to_owned()],
            provider.crypto(),
        )
        .expect("server certificate")])
        .build(false, None)
        .expect("server config");
    let client = Endpoint::new(client_addr(), TransportProtocol::UDP, None);
    let server = Endpoint::new(
        server_addr(),
        TransportProtocol::UDP,
        Some(Arc::new(server_cfg)),
    );
    let mut client = client;
    client
        .connect(Instant::now(), server_addr(), Arc::new(client_cfg), None)
        .expect("client connects");
    (client, server)
}

/// Everything `from` has queued, as datagrams.
fn drain(from: &mut Endpoint) -> Vec<bytes::BytesMut> {
    std::iter::from_fn(|| from.poll_transmit().map(|t| t.message)).collect()
}

/// Delivers `datagrams` to `to` at `now` (from `source`); whether `to` completed.
fn deliver(
    to: &mut Endpoint,
    source: SocketAddr,
    now: Instant,
    datagrams: Vec<bytes::BytesMut>,
) -> bool {
    let mut done = false;
    for d in datagrams {
        if let Ok(events) = to.read(now, source, None, d) {
            done |= events
                .iter()
                .any(|e| matches!(e, EndpointEvent::HandshakeComplete));
        }
    }
    done
}

#[test]
fn a_repeated_flight_4_does_not_silence_the_client_after_its_flight_5_was_lost() {
    let (mut client, mut server) = endpoints();
    let t0 = Instant::now();
    // Flights 1-4 cross unharmed: ClientHello, HelloVerifyRequest, ClientHello with the
    // cookie, ServerHello..ServerHelloDone.
    for _ in 0..2 {
        let c = drain(&mut client);
        assert!(!c.is_empty(), "the client sent nothing");
        deliver(&mut server, client_addr(), t0, c);
        let s = drain(&mut server);
        assert!(!s.is_empty(), "the server sent nothing");
        deliver(&mut client, server_addr(), t0, s);
    }
    // Flight 5: its last datagram (the one with Finished) is lost.
    let mut flight5 = drain(&mut client);
    assert!(!flight5.is_empty(), "no flight 5");
    flight5.pop();
    deliver(&mut server, client_addr(), t0, flight5);
    assert!(
        client.poll_timeout(&server_addr()).is_some(),
        "the client waits for flight 6 with a retransmit timer"
    );

    // The server's timer fires first (a browser's first DTLS retransmission comes after
    // ~50 ms): it repeats flight 4, which reaches the client before the client's timer.
    let far = t0 + Duration::from_secs(30);
    server
        .handle_timeout(client_addr(), far)
        .expect("server timeout");
    let repeat = drain(&mut server);
    assert!(!repeat.is_empty(), "the server did not repeat flight 4");
    deliver(
        &mut client,
        server_addr(),
        t0 + Duration::from_millis(50),
        repeat,
    );
    assert!(
        client.poll_timeout(&server_addr()).is_some(),
        "a repeated flight 4 disarmed the client's retransmit timer: it would never resend flight 5"
    );

    // The client's timer fires: flight 5 again, complete this time, and the handshake ends.
    let mut now = t0 + Duration::from_secs(2);
    let mut server_done = false;
    let mut client_done = false;
    for _ in 0..8 {
        if let Some(at) = client.poll_timeout(&server_addr()) {
            now = now.max(at);
            client
                .handle_timeout(server_addr(), now)
                .expect("client timeout");
        }
        server_done |= deliver(&mut server, client_addr(), now, drain(&mut client));
        client_done |= deliver(&mut client, server_addr(), now, drain(&mut server));
        if server_done && client_done {
            break;
        }
        now += Duration::from_secs(1);
    }
    assert!(server_done, "the server never completed the handshake");
    assert!(client_done, "the client never completed the handshake");
}
