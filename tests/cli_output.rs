//! `--json` means JSON for every outcome, usage errors included (issue 8,
//! DESIGN "Command-line contracts"): one object on standard output, exit
//! code 2 as without `--json`.

use std::process::Command;

fn vouch(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vouch"))
        .args(args)
        .output()
        .expect("run vouch");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_json_usage_errors_are_one_json_object() {
    for args in [
        &["lookup", "--json"][..],
        &[
            "issue",
            "--json",
            "--order-id",
            "A",
            "--units",
            "1",
            "--unit-price",
            "abc",
            "--mobile",
            "13800001234",
        ][..],
        &["--json", "no-such-command"][..],
        &[
            "lookup",
            "12345678",
            "--last4",
            "1234",
            "--json",
            "--no-such-flag",
        ][..],
    ] {
        let (code, stdout, _) = vouch(args);
        assert_eq!(code, Some(2), "{args:?}");
        let v: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("{args:?}: stdout is not JSON ({e}): {stdout}"));
        assert_eq!(v["ok"], false, "{args:?}");
        assert_eq!(v["error"]["kind"], "usage", "{args:?}");
        let message = v["error"]["message"].as_str().expect("a message");
        assert!(
            !message.is_empty() && !message.starts_with("error:"),
            "{message}"
        );
    }
}

#[test]
fn cli_usage_errors_without_json_stay_text_on_stderr() {
    let (code, stdout, stderr) = vouch(&["lookup"]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.contains("error:"), "{stderr}");
}
