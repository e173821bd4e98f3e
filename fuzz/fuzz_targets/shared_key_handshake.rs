#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| netchan::fuzz::shared_key_handshake(data));
