//! Replacing a source's small state file (a ledger, a cursor, a journal) so that a crash at any
//! moment leaves either the old file or the new one, never a torn one.

use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `<path>.tmp`, fsyncs it, renames it over `path` and fsyncs the directory,
/// so the rename itself survives a power loss. A `.tmp` left by a crash is simply overwritten.
pub fn replace(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = std::path::PathBuf::from(tmp);
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replaced_file_holds_the_new_bytes_and_no_temporary_file_is_left() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("cursor.json");
        replace(&path, b"old").expect("first");
        std::fs::write(dir.path().join("cursor.json.tmp"), b"torn").expect("a crash's leftover");
        replace(&path, b"new").expect("second");
        assert_eq!(std::fs::read(&path).expect("read"), b"new");
        assert!(!dir.path().join("cursor.json.tmp").exists());
    }
}
