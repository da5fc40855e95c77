//! Consent persisted across starts (issue 20): `<spool_dir>/consent` holds `opted_out` while
//! the user has opted out, and is removed on opt-in. Without a `spool_dir` the choice lives
//! in memory only (the application persists it and calls `opt_out()` at start). A file
//! that cannot be read counts as opted out: the safe side of a consent question.

use std::path::Path;

use crate::error::Error;

/// The file's name inside `spool_dir`.
const FILE: &str = "consent";
/// What the file holds while opted out.
const OPTED_OUT: &str = "opted_out";

/// Whether the user opted out in an earlier run.
pub(crate) fn load(dir: Option<&Path>) -> bool {
    let Some(dir) = dir else { return false };
    match std::fs::read_to_string(dir.join(FILE)) {
        Ok(text) => {
            if text.trim() != OPTED_OUT {
                tracing::warn!(file = %dir.join(FILE).display(), "unreadable consent file; treated as opted out");
            }
            true
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::warn!(file = %dir.join(FILE).display(), "cannot read the consent file ({e}); treated as opted out");
            true
        }
    }
}

/// Persists the choice (nothing to do without a `spool_dir`). Errors: `spool_error` naming
/// the file.
pub(crate) fn store(dir: Option<&Path>, opted_out: bool) -> Result<(), Error> {
    let Some(dir) = dir else { return Ok(()) };
    let path = dir.join(FILE);
    let written = if opted_out {
        std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, OPTED_OUT))
    } else {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    };
    written.map_err(|e| Error::Spool(format!("cannot record consent in {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_a_restart_and_fails_safe() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!load(Some(dir.path())));
        store(Some(dir.path()), true).unwrap();
        assert!(load(Some(dir.path())));
        store(Some(dir.path()), false).unwrap();
        assert!(!load(Some(dir.path())));
        std::fs::write(dir.path().join(FILE), "garbage").unwrap();
        assert!(load(Some(dir.path())), "unreadable: opted out");
        assert!(!load(None));
        store(None, true).unwrap();
    }
}
