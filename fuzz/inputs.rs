//! The fuzz inputs kept in the repository, for the replay tests of `core` and `server-ref`
//! (each includes this file with `#[path]`): every file of `fuzz/seeds/<target>` and
//! `fuzz/regressions/<target>`, dotfiles skipped.

use std::path::Path;

/// Every kept input of `target`; panics when there is none (the seeds always exist).
pub fn inputs(target: &str) -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    let mut files = Vec::new();
    for dir in ["seeds", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("listing fuzz inputs").path();
            if !path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')) {
                files.push(std::fs::read(&path).expect("reading a fuzz input"));
            }
        }
    }
    assert!(!files.is_empty(), "no fuzz inputs found for {target}");
    files
}
