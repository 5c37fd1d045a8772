//! `fledge quickstart`, the README's first command, tells its whole story.

/// A healthy release is promoted, a faulty one rolled back, and the summary says so.
#[test]
fn quickstart_promotes_the_healthy_release_and_rolls_back_the_faulty_one() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fledge"))
        .arg("quickstart")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("version 2: promoted"), "{stdout}");
    assert!(stdout.contains("version 3: rolled back"), "{stdout}");
    assert!(
        stdout.contains("the alias `live` now serves: version 2 (no routing)"),
        "{stdout}"
    );
}
