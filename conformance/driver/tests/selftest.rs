//! The driver judges: cases with wrong expectations turn the matrix red,
//! each for its own reason, while the control case stays green.
//!
//! Runs the real driver, the Rust runner (built by `cargo build --workspace
//! --bins`, as `make test` does first) and a real server on SQLite.

use std::process::Command;

use serde_json::Value;

#[test]
fn wrong_expectations_turn_the_matrix_red() {
    let out = tempfile::tempdir().expect("temp dir");
    let output = Command::new(env!("CARGO_BIN_EXE_chirpy-conformance"))
        .args(["--sdk", "rust", "--storage", "sqlite", "--no-build", "--cases", "conformance/selftest", "--out"])
        .arg(out.path())
        .output()
        .expect("run chirpy-conformance");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "the matrix is red, not broken:\n{stdout}\n{stderr}");
    assert!(stdout.contains("RED"), "{stdout}");

    let matrix: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("matrix.json")).expect("matrix.json"))
            .expect("JSON");
    assert_eq!(matrix["green"], false);
    let result = |case: &str| {
        let cases = matrix["cases"].as_array().expect("cases");
        let case = cases.iter().find(|c| c["name"] == case).unwrap_or_else(|| panic!("no case {case}"));
        case["results"]["rust"]["sqlite"].clone()
    };
    assert_eq!(result("selftest/right")["status"], "passed", "{stdout}");
    for (case, reason) in [
        ("selftest/wrong-state", r#"state: expected "SUCCEEDED", got "PENDING""#),
        ("selftest/wrong-error-code", r#"code: expected "INVALID_ARGUMENT", got "NOT_FOUND""#),
        ("selftest/error-expected", "expected an error"),
        ("selftest/never-true", "after 500 ms"),
        ("selftest/unknown-step", "does not support"),
    ] {
        let result = result(case);
        assert_eq!(result["status"], "failed", "{case}: {result}");
        let message = result["message"].as_str().unwrap_or_default();
        assert!(message.contains(reason), "{case}: {message:?} does not say {reason:?}");
    }
}
