#![no_main]

use std::sync::LazyLock;
use switchboard_server::fuzzing::RestTarget;

/// One server for the whole run: starting one per input would measure startup, not parsing.
static TARGET: LazyLock<RestTarget> = LazyLock::new(RestTarget::new);

libfuzzer_sys::fuzz_target!(|data: &[u8]| TARGET.request(data));
