//! The decision log of two-phase commit.
//!
//! A transaction that wrote to several shards is prepared on each of them
//! (`PREPARE TRANSACTION 'gid'`); the router then records its decision to
//! commit here, durably (appended and fsynced), before it sends any
//! `COMMIT PREPARED`. A transaction prepared on a shard whose gid is not
//! in the log was never decided, so recovery rolls it back; one whose gid
//! is in the log is committed. Once every shard has committed, a `done`
//! record (not synced: losing it only repeats a harmless check) lets the
//! log forget the gid; [`DecisionLog::compact`] rewrites the file with the
//! gids still open.
//!
//! The file is a line per record: `C <gid>` (decided: commit) or `D <gid>`
//! (done). A torn last line (a crash mid-append) is ignored: its record was
//! never synced, so no commit was sent for it.

use crate::MetaError;
use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// An append-only, fsynced log of commit decisions.
pub struct DecisionLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl DecisionLog {
    /// Open (or create) the log at `path`.
    ///
    /// # Errors
    /// The file cannot be opened.
    pub fn open(path: impl AsRef<Path>) -> Result<DecisionLog, MetaError> {
        let path = path.as_ref().to_path_buf();
        // Cut a torn last line, so that the next record starts a line.
        if let Ok(bytes) = std::fs::read(&path)
            && !bytes.is_empty()
            && !bytes.ends_with(b"\n")
        {
            let keep = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            OpenOptions::new()
                .write(true)
                .open(&path)
                .and_then(|f| f.set_len(keep as u64).and_then(|_| f.sync_all()))
                .map_err(|e| io(&path, e))?;
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        Ok(DecisionLog {
            path,
            file: Mutex::new(file),
        })
    }

    /// The gids decided (commit) and not yet done.
    ///
    /// # Errors
    /// The file cannot be read.
    pub fn open_commits(&self) -> Result<BTreeSet<String>, MetaError> {
        let _g = self.file.lock().map_err(|_| MetaError::Poisoned)?;
        let mut text = String::new();
        File::open(&self.path)
            .and_then(|mut f| f.read_to_string(&mut text))
            .map_err(|e| io(&self.path, e))?;
        let mut open = BTreeSet::new();
        for line in text.split_inclusive('\n') {
            // A line without its newline was torn by a crash mid-append.
            let Some(line) = line.strip_suffix('\n') else {
                break;
            };
            match line.split_once(' ') {
                Some(("C", gid)) => {
                    open.insert(gid.to_string());
                }
                Some(("D", gid)) => {
                    open.remove(gid);
                }
                _ => {}
            }
        }
        Ok(open)
    }

    /// Record, durably, the decision to commit `gid`. Returns once the
    /// record is on disk.
    ///
    /// # Errors
    /// Writing or syncing failed: the decision is not made.
    pub fn commit(&self, gid: &str) -> Result<(), MetaError> {
        let mut f = self.file.lock().map_err(|_| MetaError::Poisoned)?;
        let before = f.metadata().map_err(|e| io(&self.path, e))?.len();
        let r = f
            .write_all(format!("C {gid}\n").as_bytes())
            .and_then(|_| f.sync_data());
        if let Err(e) = r {
            // Leave no part of the record behind: the caller rolls the
            // transaction back, and a later record must start a line.
            let _ = f.set_len(before).and_then(|_| f.sync_data());
            return Err(io(&self.path, e));
        }
        Ok(())
    }

    /// Record that every shard committed `gid` (not synced).
    ///
    /// # Errors
    /// Writing failed.
    pub fn done(&self, gid: &str) -> Result<(), MetaError> {
        let mut f = self.file.lock().map_err(|_| MetaError::Poisoned)?;
        f.write_all(format!("D {gid}\n").as_bytes())
            .map_err(|e| io(&self.path, e))
    }

    /// Rewrite the log with only the decisions in `keep`. The caller makes
    /// sure no decision is recorded meanwhile that `keep` lacks. Atomic: a
    /// temporary file is written, synced and renamed over the log.
    ///
    /// # Errors
    /// I/O errors; the old log is then left as it was.
    pub fn compact(&self, keep: &BTreeSet<String>) -> Result<(), MetaError> {
        let mut f = self.file.lock().map_err(|_| MetaError::Poisoned)?;
        let tmp = self.path.with_extension("tmp");
        let mut text = String::new();
        for gid in keep {
            text.push_str(&format!("C {gid}\n"));
        }
        let write = || -> std::io::Result<File> {
            let mut t = File::create(&tmp)?;
            t.write_all(text.as_bytes())?;
            t.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            if let Some(dir) = self.path.parent()
                && let Ok(d) = File::open(dir)
            {
                let _ = d.sync_all();
            }
            OpenOptions::new().append(true).open(&self.path)
        };
        *f = write().map_err(|e| io(&self.path, e))?;
        Ok(())
    }
}

fn io(path: &Path, e: std::io::Error) -> MetaError {
    MetaError::Io(path.display().to_string(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_survive_reopening_and_compaction() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.log");
        let log = DecisionLog::open(&path).unwrap();
        log.commit("sg_a_1").unwrap();
        log.commit("sg_a_2").unwrap();
        log.done("sg_a_1").unwrap();
        drop(log);
        let log = DecisionLog::open(&path).unwrap();
        let open = log.open_commits().unwrap();
        assert_eq!(open.into_iter().collect::<Vec<_>>(), vec!["sg_a_2"]);
        log.compact(&BTreeSet::from(["sg_a_2".to_string()]))
            .unwrap();
        log.commit("sg_a_3").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, "C sg_a_2\nC sg_a_3\n");
        // A torn last line (no newline) was never synced: cut off.
        std::fs::write(&path, "C sg_a_2\nC sg_a_4").unwrap();
        let log = DecisionLog::open(&path).unwrap();
        log.commit("sg_a_5").unwrap();
        assert_eq!(
            log.open_commits().unwrap().into_iter().collect::<Vec<_>>(),
            vec!["sg_a_2", "sg_a_5"]
        );
    }
}
