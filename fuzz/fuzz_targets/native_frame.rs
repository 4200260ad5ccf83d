#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| switchboard_server::fuzzing::native_frame(data));
