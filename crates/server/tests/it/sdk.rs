//! The TypeScript SDK (`sdk/typescript`): built with its pinned TypeScript, then its tests run
//! under `node --test` against the real `switchboard` binary, which they start, stop and
//! restart themselves (`SWITCHBOARD_BIN`).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_builds_and_passes_its_tests_against_the_real_server() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../sdk/typescript");
    crate::common::npm_ci_if_missing(&dir, &["typescript", "ws"]);
    let built = std::process::Command::new("npm")
        .args(["run", "build", "--silent"])
        .current_dir(&dir)
        .output()
        .expect("npm runs");
    assert!(
        built.status.success(),
        "the SDK does not build:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let env = vec![(
        "SWITCHBOARD_BIN".to_string(),
        env!("CARGO_BIN_EXE_switchboard").to_string(),
    )];
    let tests: Vec<String> = std::fs::read_dir(dir.join("test"))
        .unwrap()
        .filter_map(|entry| {
            let name = entry.ok()?.file_name().into_string().ok()?;
            name.ends_with(".test.mjs").then(|| format!("test/{name}"))
        })
        .collect();
    let tests: Vec<&str> = tests.iter().map(String::as_str).collect();
    crate::common::run_node_tests(dir, &tests, env).await;
}
