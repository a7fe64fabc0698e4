//! An append-only JSONL file that threads and processes share: each line is appended under
//! the file's OS lock and synced before `append` returns, and a last line cut short by a crash
//! is cut off when the file is opened. The label cache, the remembered refusals and the cells'
//! spend logs are such files.
use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub struct AppendLog {
    path: PathBuf,
    file: Mutex<File>,
}

impl AppendLog {
    /// Open (or create) `path` and read its entries. An unreadable line other than a torn last
    /// one is an error naming the file and line, followed by `advice`.
    pub fn open<T: DeserializeOwned>(path: &Path, advice: &str) -> Result<(Self, Vec<T>)> {
        if let Some(folder) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder)
                .with_context(|| format!("cannot create the folder {}", folder.display()))?;
        }
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        // Another process may be appending right now: its half-written line is not a torn
        // one to cut off. The OS lock makes reading and repairing wait for its append.
        // (A file system without locks just runs unguarded.)
        let _ = file.lock();
        let read = read_entries(&file, path, advice).and_then(|(entries, complete_len)| {
            let len = file.metadata()?.len();
            if complete_len < len {
                // Appending after a torn line would glue the next entry onto it.
                file.set_len(complete_len).with_context(|| {
                    format!("cannot repair the torn last line of {}", path.display())
                })?;
                file.seek(SeekFrom::End(0))?;
            }
            Ok(entries)
        });
        let _ = file.unlock();
        let log = AppendLog {
            path: path.to_path_buf(),
            file: Mutex::new(file),
        };
        Ok((log, read?))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Append `entry` as one line, synced to disk before returning.
    pub fn append<T: Serialize>(&self, entry: &T) -> Result<()> {
        let mut line = serde_json::to_string(entry)
            .with_context(|| format!("cannot encode a line of {}", self.path.display()))?;
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        // Held across the append so a process opening the file meanwhile waits.
        let _ = f.lock();
        let before = f.metadata().map(|m| m.len());
        let written = f
            .write_all(line.as_bytes())
            .with_context(|| format!("cannot append to {}", self.path.display()))
            .and_then(|()| {
                f.sync_data()
                    .with_context(|| format!("cannot sync {}", self.path.display()))
            });
        if written.is_err() {
            // A short write (disk full) would leave a torn line that the next append glues
            // onto, making one unreadable line in the middle: cut it back off.
            if let Ok(len) = before {
                let _ = f.set_len(len);
            }
        }
        let _ = f.unlock();
        written
    }
}

/// Every complete entry of `file`, with the byte length of the complete lines. A last line
/// without its newline was cut short by a crash and is left out. Lines are read as bytes: a
/// line cut inside a character (labels are UTF-8, not escaped) is not valid text, and must
/// not make the whole file unreadable.
pub fn read_entries<T: DeserializeOwned>(
    file: &File,
    path: &Path,
    advice: &str,
) -> Result<(Vec<T>, u64)> {
    let mut reader = BufReader::new(file);
    let mut entries = Vec::new();
    let mut complete_len = 0u64;
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            break;
        }
        complete_len += n as u64;
        if line.trim_ascii().is_empty() {
            continue;
        }
        let entry = serde_json::from_slice(&line)
            .with_context(|| format!("{}:{number}: {advice}", path.display()))?;
        entries.push(entry);
    }
    Ok((entries, complete_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_survive_reopening_and_a_torn_last_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/log.jsonl");
        let (log, none) = AppendLog::open::<u32>(&path, "fix it").unwrap();
        assert!(none.is_empty());
        log.append(&1u32).unwrap();
        log.append(&2u32).unwrap();
        drop(log);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"3").unwrap();
        drop(f);
        let (log, read) = AppendLog::open::<u32>(&path, "fix it").unwrap();
        assert_eq!(read, vec![1, 2]);
        log.append(&4u32).unwrap();
        let (_, read) = AppendLog::open::<u32>(&path, "fix it").unwrap();
        assert_eq!(read, vec![1, 2, 4], "the torn line was not glued to");
        std::fs::write(&path, "1\nx\n2\n").unwrap();
        let err = format!(
            "{:#}",
            AppendLog::open::<u32>(&path, "fix it").err().unwrap()
        );
        assert!(err.contains("log.jsonl:2: fix it"), "{err}");
    }

    /// A crash can cut the last line inside a character (serde_json writes UTF-8 as it is).
    /// Such a file could not be read at all ("stream did not contain valid UTF-8"): the label
    /// cache, a cell's spend log or the refusals stopped every run until edited by hand.
    #[test]
    fn a_last_line_torn_inside_a_character_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.jsonl");
        let (log, _) = AppendLog::open::<String>(&path, "fix it").unwrap();
        log.append(&"café".to_string()).unwrap();
        drop(log);
        let whole = serde_json::to_string("naïve").unwrap();
        let torn = &whole.as_bytes()[..whole.find('ï').unwrap() + 1];
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(torn).unwrap();
        drop(f);
        let (log, read) = AppendLog::open::<String>(&path, "fix it").unwrap();
        assert_eq!(read, vec!["café".to_string()]);
        log.append(&"naïve".to_string()).unwrap();
        let (_, read) = AppendLog::open::<String>(&path, "fix it").unwrap();
        assert_eq!(read, vec!["café".to_string(), "naïve".to_string()]);
        // Not valid text in the middle of the file is a bad line like any other.
        std::fs::write(&path, b"\"a\"\n\"\xff\"\n\"b\"\n").unwrap();
        let err = format!(
            "{:#}",
            AppendLog::open::<String>(&path, "fix it").err().unwrap()
        );
        assert!(err.contains("log.jsonl:2: fix it"), "{err}");
    }
}
