//! Replays the fuzz targets' committed corpora (`fuzz/corpus/<target>/`) through the same entry
//! points `cargo fuzz` drives, so every test run checks what the fuzzer once found interesting —
//! on the stable toolchain, without libFuzzer.

use std::path::PathBuf;
use switchboard_server::fuzzing;

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 10, "{target}: the corpus is committed");
    files
        .into_iter()
        .map(|path| {
            let data = std::fs::read(&path).unwrap();
            (path, data)
        })
        .collect()
}

#[test]
fn the_native_frame_corpus_decodes_without_a_panic() {
    for (_, data) in corpus("native_frame") {
        fuzzing::native_frame(&data);
    }
}

#[test]
fn the_socket_io_event_corpus_decodes_without_a_panic() {
    for (_, data) in corpus("socketio_event") {
        fuzzing::socketio_event(&data);
    }
}

#[test]
fn the_cable_frame_corpus_decodes_without_a_panic() {
    for (_, data) in corpus("cable_frame") {
        fuzzing::cable_frame(&data);
    }
}

#[test]
fn the_rest_request_corpus_is_answered_without_a_server_error() {
    let target = fuzzing::RestTarget::new();
    for (path, data) in corpus("rest_request") {
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            target.request(&data);
        }));
        assert!(outcome.is_ok(), "{}", path.display());
    }
}
