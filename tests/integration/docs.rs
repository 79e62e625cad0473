//! The project's own spec, `docs/ENERGY.md`, is what the WIT, the code, the
//! policies and the docs cite: every reference to one of its sections
//! (`docs/ENERGY.md#anchor`, or `ENERGY.md "Title"` in the frozen WIT files)
//! names a section that exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use super::support::standin::repo;

/// GitHub's anchor of a heading: lower case, spaces to `-`, other
/// punctuation dropped.
fn anchor(title: &str) -> String {
    title
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// Every file under `dir` (recursively) whose name ends in one of `exts`,
/// build output left out.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if !matches!(name.as_str(), "target" | "book" | "node_modules" | ".git") {
                files(&path, exts, out);
            }
        } else if exts.iter().any(|e| name.ends_with(e)) {
            out.push(path);
        }
    }
}

#[test]
fn every_reference_to_docs_energy_md_names_a_section() {
    let root = repo();
    let spec = std::fs::read_to_string(root.join("docs/ENERGY.md")).unwrap();
    let anchors: BTreeSet<String> = spec
        .lines()
        .filter_map(|l| l.strip_prefix("## ").or_else(|| l.strip_prefix("### ")))
        .map(anchor)
        .collect();
    assert!(anchors.contains("idle-power") && anchors.contains("live-migration"));

    let mut sources = Vec::new();
    for dir in [
        "host/src",
        "plugins",
        "policies",
        "wit",
        "docs",
        "examples",
        "tests/integration",
    ] {
        files(
            &root.join(dir),
            &[".rs", ".toml", ".wit", ".md", ".py", ".js"],
            &mut sources,
        );
    }
    sources.push(root.join("README.md"));
    let by_anchor = regex::Regex::new(r"docs/ENERGY\.md#([A-Za-z0-9_-]+)").unwrap();
    let by_title = regex::Regex::new(r#"ENERGY\.md,? \(?"([^"]+)""#).unwrap();
    let mut cited = 0;
    let mut missing = Vec::new();
    for path in &sources {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        for (n, line) in text.lines().enumerate() {
            let found = by_anchor
                .captures_iter(line)
                .map(|c| c[1].to_owned())
                .chain(by_title.captures_iter(line).map(|c| anchor(&c[1])));
            // This file's own doc comment cites the two forms.
            for section in found.filter(|s| s != "anchor" && s != "title") {
                cited += 1;
                if !anchors.contains(&section) {
                    missing.push(format!("{}:{}: #{section}", path.display(), n + 1));
                }
            }
        }
    }
    assert!(
        cited > 40,
        "only {cited} references found: is the scan right?"
    );
    assert!(
        missing.is_empty(),
        "references to missing sections:\n{}",
        missing.join("\n")
    );
}

/// The book's policy reference is what `wattson policy reference` says of
/// the code: a key added to a config type without its doc line, or a page
/// edited by hand, fails here.
#[test]
fn the_policy_reference_page_is_what_the_code_says() {
    let generated = super::wattson::command()
        .args(["policy", "reference", "--format", "markdown"])
        .output()
        .unwrap();
    super::support::ok(&generated);
    let generated = String::from_utf8(generated.stdout).unwrap();
    let page = repo().join("docs/book/src/reference/policy.md");
    let committed = std::fs::read_to_string(&page).unwrap_or_default();
    assert!(
        generated.trim_end() == committed.trim_end(),
        "{} is not what the code says: regenerate it with\n  \
         cargo run -q -- policy reference --format markdown > docs/book/src/reference/policy.md\n\
         and check each key has its doc comment",
        page.display()
    );
    // Every table and key of the config types is on it, with a description.
    for needle in [
        "## `[nova]`",
        "## `[[outputs]]`",
        "`idle_horizon_secs`",
        "`type = \"ssm\"`",
    ] {
        assert!(committed.contains(needle), "{needle} missing");
    }
    let undocumented: Vec<&str> = committed
        .lines()
        .filter(|l| l.starts_with("| `") && l.trim_end().ends_with("|  |"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys without a description:\n{}",
        undocumented.join("\n")
    );
}
