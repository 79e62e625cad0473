//! `policy-file`: the policy file a state directory belongs to (its
//! canonical path), so that two policy files with the same stem in
//! different directories do not share lastrun and the spool unnoticed.

use std::io::ErrorKind;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use super::{StateError, io};

/// The marker's name under the policy's state directory.
pub(crate) const FILE: &str = "policy-file";

/// Fails if the directory at `root` belongs to a policy file other than
/// `policy` (canonical). A directory without a marker (new, or from a
/// version before it) is taken: the marker is written if `write`.
pub(crate) fn claim(root: &Path, policy: &Path, write: bool) -> Result<(), StateError> {
    let path = root.join(FILE);
    let owner = match read(&path)? {
        Some(owner) => owner,
        None if !write => return Ok(()),
        None if create(&path, policy)? => return Ok(()),
        // Another process wrote it meanwhile: it must name this policy too.
        None => read(&path)?.unwrap_or_else(|| policy.to_owned()),
    };
    if owner == policy || std::fs::canonicalize(&owner).is_ok_and(|o| o == policy) {
        return Ok(());
    }
    Err(StateError::OtherPolicy {
        root: root.to_owned(),
        owner,
        policy: policy.to_owned(),
    })
}

/// The policy file the marker at `path` names, if there is one.
fn read(path: &Path) -> Result<Option<PathBuf>, StateError> {
    let mut bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    if bytes.last() == Some(&b'\n') {
        bytes.pop();
    }
    if bytes.is_empty() || bytes.contains(&b'\n') {
        return Err(StateError::Corrupt {
            path: path.to_owned(),
            reason: "expected the path of the policy file this state belongs to, on one line"
                .to_owned(),
        });
    }
    Ok(Some(PathBuf::from(std::ffi::OsString::from_vec(bytes))))
}

/// Writes the marker unless one exists (false then), atomically: two
/// processes taking a new directory at once cannot both win.
fn create(path: &Path, policy: &Path) -> Result<bool, StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(io(dir))?;
    let mut line = policy.as_os_str().as_bytes().to_vec();
    line.push(b'\n');
    std::io::Write::write_all(&mut tmp, &line).map_err(io(path))?;
    tmp.as_file().sync_all().map_err(io(path))?;
    match tmp.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(io(path)(e.error)),
    }
}

/// `path` as a shell word (quoted where it must be), for a command to copy.
pub(crate) fn shell_word(path: &Path) -> String {
    let text = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+:@,=%".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        text.into_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_directory_is_taken_and_then_refused_to_another_policy() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (
            Path::new("/etc/wattson/a/site.toml"),
            Path::new("/etc/wattson/b/site.toml"),
        );
        claim(dir.path(), a, false).unwrap();
        assert!(!dir.path().join(FILE).exists(), "a check writes nothing");
        claim(dir.path(), a, true).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(FILE)).unwrap(),
            "/etc/wattson/a/site.toml\n"
        );
        claim(dir.path(), a, true).unwrap();
        for write in [false, true] {
            match claim(dir.path(), b, write) {
                Err(StateError::OtherPolicy { owner, policy, .. }) => {
                    assert_eq!((owner.as_path(), policy.as_path()), (a, b));
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_marker_naming_a_symlink_to_the_policy_is_the_policy() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("site.toml");
        std::fs::write(&real, "").unwrap();
        let link = dir.path().join("link.toml");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let state = dir.path().join("state");
        std::fs::create_dir(&state).unwrap();
        std::fs::write(state.join(FILE), format!("{}\n", link.display())).unwrap();
        claim(&state, &real.canonicalize().unwrap(), true).unwrap();
    }

    #[test]
    fn an_empty_marker_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(FILE), "\n").unwrap();
        assert!(matches!(
            claim(dir.path(), Path::new("/p.toml"), true),
            Err(StateError::Corrupt { .. })
        ));
    }

    #[test]
    fn odd_paths_are_quoted_for_the_shell() {
        assert_eq!(shell_word(Path::new("/var/lib/x")), "/var/lib/x");
        assert_eq!(shell_word(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }
}
