//! Backup and restore (issue 20): a consistent copy of the store while it runs, and bringing one
//! back.
//!
//! A backup is a directory: a fresh sled database holding every tree, the recording files under
//! `audio/`, and `BACKUP.json` (when, what it holds). It is made from the running store:
//!
//! - first everything written so far is flushed;
//! - the trees derived from records (`calls`, then `index` and `words`) are copied before the
//!   rest, so no record in the copy is newer than the events it was built from. A call that ends
//!   while the copy runs is still live in the copied record and complete in the copied events:
//!   on restore, opening the store rebuilds it from its events (as after a crash), and it reads
//!   as it ended;
//! - recordings are copied as they stand: an ended call's file is whole and never written
//!   again, so it is copied byte for byte;
//! - then the journal's generations ([`crate::journal`]), which may hold writes acknowledged
//!   while the trees were copied: restore replays them as an open after a crash does (a
//!   generation a checkpoint removed meanwhile is skipped: what it held was in sled, and the
//!   copy is consistent without the writes made after its tree was copied);
//! - the console token is not copied (a secret; a restored server makes a new one).
//!
//! Restore copies a backup into an empty data directory (the server stopped: sled locks its
//! directory), then the store opens as usual.

use std::path::{Path, PathBuf};

use crate::{Store, StoreError, unix_ms};

/// What a backup holds (`BACKUP.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BackupReport {
    /// When it was made, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// Trees copied.
    pub trees: usize,
    /// Keys copied, over all trees.
    pub entries: u64,
    /// Recording files copied.
    pub recordings: usize,
    /// Their bytes.
    pub recording_bytes: u64,
}

/// The manifest's file name in a backup.
pub const MANIFEST: &str = "BACKUP.json";

/// Trees copied first, in this order: records, then what is derived from them.
const FIRST: [&str; 3] = ["calls", "index", "words"];

/// Why a backup or a restore could not be made.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The destination exists and is not empty.
    #[error("{0} is not empty: a backup or a restore goes into a new or empty directory")]
    NotEmpty(String),
    /// The source is not a backup (no manifest).
    #[error("{0} is not a Watchfloor backup (no {MANIFEST})")]
    NotABackup(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Reading or writing files failed.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// sled failed on the copy.
    #[error("the copy's database: {0}")]
    Sled(#[from] sled::Error),
}

fn io(p: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |e| BackupError::Io(p.display().to_string(), e)
}

/// An empty (or new) directory at `dir`, mode 0700.
fn empty_dir(dir: &Path) -> Result<(), BackupError> {
    if dir.exists() && std::fs::read_dir(dir).map_err(io(dir))?.next().is_some() {
        return Err(BackupError::NotEmpty(dir.display().to_string()));
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io(dir))
}

/// Copies every file of `from` into `to` (flat; created), fsyncing each; returns (files, bytes).
fn copy_files(from: &Path, to: &Path) -> Result<(usize, u64), BackupError> {
    std::fs::create_dir_all(to).map_err(io(to))?;
    let (mut n, mut bytes) = (0, 0);
    let Ok(entries) = std::fs::read_dir(from) else { return Ok((0, 0)) };
    for e in entries {
        let e = e.map_err(io(from))?;
        if !e.file_type().map_err(io(from))?.is_file() {
            continue;
        }
        let dst = to.join(e.file_name());
        match std::fs::copy(e.path(), &dst) {
            Ok(b) => bytes += b,
            // Removed since it was listed (a journal generation a checkpoint was done with).
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue,
            Err(err) => return Err(io(&dst)(err)),
        }
        std::fs::File::open(&dst).and_then(|f| f.sync_all()).map_err(io(&dst))?;
        n += 1;
    }
    Ok((n, bytes))
}

impl Store {
    /// Makes a backup of the running store in `dest` (new or empty; see the module docs). The
    /// copy runs on the blocking pool; calls go on meanwhile.
    ///
    /// # Errors
    /// [`BackupError`]: `dest` not empty, the store or the files failed.
    pub async fn backup(&self, dest: &Path) -> Result<BackupReport, BackupError> {
        self.flush().await?;
        let (store, dest) = (self.clone(), dest.to_path_buf());
        tokio::task::spawn_blocking(move || store.backup_blocking(&dest)).await.map_err(|e| BackupError::Io("backup task".into(), std::io::Error::other(e.to_string())))?
    }

    fn backup_blocking(&self, dest: &Path) -> Result<BackupReport, BackupError> {
        empty_dir(dest)?;
        let copy = sled::Config::new().path(dest).mode(sled::Mode::HighThroughput).open()?;
        let mut names: Vec<Vec<u8>> = self.db.tree_names().into_iter().map(|n| n.to_vec()).filter(|n| n.as_slice() != b"__sled__default").collect();
        names.sort_by_key(|n| FIRST.iter().position(|f| f.as_bytes() == n.as_slice()).unwrap_or(FIRST.len()));
        let mut entries = 0u64;
        for name in &names {
            let (src, dst) = (self.db.open_tree(name)?, copy.open_tree(name)?);
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            for kv in src.iter() {
                let (k, v) = kv?;
                batch.insert(k, v);
                in_batch += 1;
                entries += 1;
                if in_batch == 10_000 {
                    dst.apply_batch(std::mem::take(&mut batch))?;
                    in_batch = 0;
                }
            }
            dst.apply_batch(batch)?;
        }
        copy.flush()?;
        drop(copy);
        // sled's flush is not a full fsync (spacejam/sled#1452): the copy's files are synced here.
        for e in std::fs::read_dir(dest).map_err(io(dest))?.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                std::fs::File::open(e.path()).and_then(|f| f.sync_all()).map_err(io(&e.path()))?;
            }
        }
        let (recordings, recording_bytes) = copy_files(self.files.dir(), &dest.join(crate::audio::AUDIO_DIR))?;
        copy_files(&self.dir.join(crate::journal::JOURNAL_DIR), &dest.join(crate::journal::JOURNAL_DIR))?;
        let report = BackupReport { created_at_ms: unix_ms(), trees: names.len(), entries, recordings, recording_bytes };
        let manifest = dest.join(MANIFEST);
        // Invariant: the report is plain data and serialises.
        std::fs::write(&manifest, serde_json::to_vec_pretty(&report).expect("report serialises")).map_err(io(&manifest))?;
        std::fs::File::open(dest).and_then(|d| d.sync_all()).map_err(io(dest))?;
        Ok(report)
    }
}

/// Brings the backup `src` back into the data directory `dest` (new or empty; the server
/// stopped), then opens it once (live calls of the backup are marked interrupted and rebuilt
/// from their events, as after a crash). Returns the backup's report.
///
/// # Errors
/// [`BackupError`]: `src` is not a backup, `dest` is not empty, copying or opening failed.
pub fn restore(src: &Path, dest: &Path) -> Result<BackupReport, BackupError> {
    let manifest = src.join(MANIFEST);
    let report: BackupReport = match std::fs::read(&manifest) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| BackupError::Io(manifest.display().to_string(), std::io::Error::other(e)))?,
        Err(_) => return Err(BackupError::NotABackup(src.display().to_string())),
    };
    empty_dir(dest)?;
    copy_tree(src, dest)?;
    let _ = std::fs::remove_file(dest.join(MANIFEST));
    let (store, _) = Store::open(dest)?;
    drop(store);
    Ok(report)
}

/// Copies the directory tree `from` into `to`.
fn copy_tree(from: &Path, to: &Path) -> Result<(), BackupError> {
    let mut stack: Vec<(PathBuf, PathBuf)> = vec![(from.to_path_buf(), to.to_path_buf())];
    while let Some((f, t)) = stack.pop() {
        std::fs::create_dir_all(&t).map_err(io(&t))?;
        for e in std::fs::read_dir(&f).map_err(io(&f))? {
            let e = e.map_err(io(&f))?;
            let dst = t.join(e.file_name());
            if e.file_type().map_err(io(&f))?.is_dir() {
                stack.push((e.path(), dst));
            } else {
                std::fs::copy(e.path(), &dst).map_err(io(&dst))?;
                std::fs::File::open(&dst).and_then(|x| x.sync_all()).map_err(io(&dst))?;
            }
        }
    }
    Ok(())
}
