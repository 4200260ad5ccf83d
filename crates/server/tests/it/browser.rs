//! The web UI in a real browser: the widget, the dashboard and the demo page, built from
//! `web/src` (the committed assets must be what the sources build to), then driven in headless
//! Chromium (Debian's `/usr/bin/chromium`, through `playwright-core`) against a real server by
//! `web/test/e2e.test.mjs`. Screenshots of each step go to `target/screenshots/`.

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_widget_dashboard_and_demo_page_work_in_a_browser() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "the browser tests need Debian's chromium: apt-get install -y chromium (bash scripts/test \
         installs it)"
    );
    let manifest = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let web = manifest.join("../../web");
    npm_ci_if_missing(&web, &["esbuild", "playwright-core"]);
    let built = std::process::Command::new("node")
        .args(["build.mjs", "--check"])
        .current_dir(&web)
        .output()
        .expect("node runs");
    assert!(
        built.status.success(),
        "the embedded web assets are stale or over budget:\n{}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    eprintln!("{}", String::from_utf8_lossy(&built.stdout));

    let server = TestServer::start().await;
    let screenshots = manifest.join("../../target/screenshots");
    let env = vec![
        (
            "SWITCHBOARD_BASE".to_string(),
            format!("http://{}", server.base),
        ),
        ("SWITCHBOARD_DEMO".to_string(), server.demo.to_string()),
        ("SCREENSHOTS".to_string(), screenshots.display().to_string()),
    ];
    run_node_tests(web, &["test/e2e.test.mjs"], env).await;
    eprintln!("screenshots of each step: {}", screenshots.display());
}
