//! The report's files (report.md, summary.csv, figures) are written atomically beside each
//! other in `results/<experiment>/`, through `.tmp*` files that a kill between temporary and
//! rename leaves there for good: cells clean only their own folders, so every report write
//! (`lab run`, `lab bench`, `lab report`) removes them first.
use anyhow::Result;
use std::path::Path;
use std::time::Duration;

/// How old a `.tmp*` file in an experiment folder must be to be a kill's leftover: a report
/// writes each file in well under a second, and the folder has no lock (two `lab run
/// --strategy` processes or a `lab report` may write the report at once), so a younger one
/// may be in use.
const REPORT_TEMPORARY_AGE: Duration = Duration::from_secs(600);

/// Remove what a kill while writing the report left in the experiment folder `dir`.
pub fn remove_stale_report_temporaries(dir: &Path) -> Result<()> {
    crate::util::atomic::remove_stale_temporaries(dir, REPORT_TEMPORARY_AGE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_report_temporaries_older_than_any_report_write_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let left_by_a_kill = dir.join(".tmpOld123");
        let being_written = dir.join(".tmpNew456");
        for path in [&left_by_a_kill, &being_written, &dir.join("report.md")] {
            std::fs::write(path, "x").unwrap();
        }
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        std::fs::File::options()
            .write(true)
            .open(&left_by_a_kill)
            .unwrap()
            .set_modified(an_hour_ago)
            .unwrap();
        remove_stale_report_temporaries(dir).unwrap();
        assert!(!left_by_a_kill.exists());
        // Another process may be writing the report right now.
        assert!(being_written.exists() && dir.join("report.md").exists());
    }
}
