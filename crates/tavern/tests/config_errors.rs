//! Configuration mistakes found at start: exit 2 with one line saying what is wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

/// `tavern check` against nothing: it ends by itself whatever the configuration.
fn tavern_check() -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_tavern"));
    command
        .arg("check")
        .env("TAVERN_REDIS_URL", "redis://127.0.0.1:9/")
        .env("TAVERN_DATABASE_URL", "postgres://nobody@127.0.0.1:9/none");
    command
}

#[test]
fn a_log_filter_that_does_not_parse_exits_2_naming_the_directive() {
    let out = tavern_check()
        .env("TAVERN_LOG", "warn,tavern=loud")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("TAVERN_LOG") && stderr.contains("`tavern=loud`"),
        "{stderr}"
    );
}

#[test]
fn a_variable_that_is_not_utf8_is_named_if_it_is_taverns_and_ignored_otherwise() {
    let not_utf8 = OsStr::from_bytes(b"/srv/\xff");
    // Someone else's variable: no panic, the check runs (and cannot reach the stores).
    let out = tavern_check()
        .env("TAVERN_LOG", "error")
        .env("SOMEONE_ELSES", not_utf8)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("the check could not run"), "{stderr}");

    let out = tavern_check()
        .env("TAVERN_LOG", "error")
        .env("TAVERN_DATA_DIR", not_utf8)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("configuration error: TAVERN_DATA_DIR")
            && stderr.contains("not valid UTF-8"),
        "{stderr}"
    );
}

#[test]
fn a_store_url_with_a_port_out_of_range_exits_2_naming_the_setting_and_the_port() {
    for (var, url) in [
        ("TAVERN_REDIS_URL", "redis://:hunter2@127.0.0.1:99999/0"),
        (
            "TAVERN_DATABASE_URL",
            "postgres://tavern:hunter2@127.0.0.1:99999/tavern",
        ),
    ] {
        let out = tavern_check()
            .env("TAVERN_LOG", "error")
            .env(var, url)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(
            stderr.contains(&format!("configuration error: {var}"))
                && stderr.contains("port 99999 is out of range 1-65535"),
            "{stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{stderr}");
    }
}
