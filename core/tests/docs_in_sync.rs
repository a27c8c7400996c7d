//! The reject codes documented in docs/POLICY.md are exactly the ones the code returns.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use confab_core::policy::DenyCode;
use confab_core::validate::RejectCode;

fn documented_codes() -> Vec<String> {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/POLICY.md"))
        .expect("docs/POLICY.md is readable");
    text.lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_reject_code_is_documented_once_and_nothing_else() {
    let documented = documented_codes();
    let mut actual: Vec<String> = RejectCode::VALIDATION
        .iter()
        .map(|c| c.as_str().to_owned())
        .chain(DenyCode::ALL.iter().map(|c| c.as_str().to_owned()))
        .collect();
    let mut sorted_doc = documented.clone();
    sorted_doc.sort();
    actual.sort();
    assert_eq!(sorted_doc, actual);
    let mut dedup = sorted_doc.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), documented.len(), "a code is documented twice");
}

#[test]
fn every_protocol_error_code_is_in_protocol_md() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md is readable");
    for code in confab_core::protocol::ErrorCode::ALL {
        let row = format!("| `{}` | {} |", code.as_str(), code.describe());
        assert!(text.contains(&row), "PROTOCOL.md lacks the row {row}");
    }
    for code in RejectCode::VALIDATION {
        assert!(
            text.contains(&format!("`{}`", code.as_str())),
            "PROTOCOL.md lacks {}",
            code.as_str()
        );
    }
}
