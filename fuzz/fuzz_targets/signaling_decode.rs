//! The signaling decoder (`decode_client`), fed every WebSocket text frame a client
//! sends before and after `join`. Text frames are UTF-8 by the WebSocket protocol,
//! so only valid UTF-8 reaches it. Besides "never panics", a message it accepts must
//! survive a round trip through the encoder (what the Rust client sends).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openhearing_signaling::decode_client;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode_client(text) {
        Ok(msg) => {
            let _ = msg.kind();
            let again = serde_json::to_string(&msg).expect("a decoded message encodes");
            let back = decode_client(&again).expect("an encoded message decodes");
            assert_eq!(back, msg, "round trip changed the message");
        }
        Err(e) => {
            let code = e.code();
            let _ = (code.is_fatal(), code.close_code(), e.to_string());
        }
    }
});
