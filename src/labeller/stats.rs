//! `lab labels stats`: what a label cache holds, what it cost, and how often it saved a call.
use super::cache::{default_dir, summarize, CacheSummary};
use anyhow::Result;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct LabelsArgs {
    #[command(subcommand)]
    pub command: LabelsCommand,
}

#[derive(clap::Subcommand, Debug)]
pub enum LabelsCommand {
    /// Entries, total spend and hit rate of a label cache.
    Stats {
        /// The cache folder; default $LAB_LABEL_CACHE, else <user cache>/atgen-lab/labels
        /// (where runs cache their LLM labels).
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
    },
}

pub fn run(args: LabelsArgs) -> Result<()> {
    match args.command {
        LabelsCommand::Stats { cache } => {
            // The default folder before any LLM labelling is simply empty; a folder named
            // with --cache that holds no cache is more likely a wrong path, so that errs.
            let dir = match cache {
                Some(path) => cache_folder(path)?,
                None => {
                    let dir = default_dir();
                    if !dir.join(super::cache::LABELS_FILE).exists() {
                        println!(
                            "label cache: {}\nentries:     0 (no LLM labels cached yet)",
                            dir.display()
                        );
                        return Ok(());
                    }
                    dir
                }
            };
            let summary = summarize(&dir)?;
            print!("{}", render(&dir.display().to_string(), &summary));
            Ok(())
        }
    }
}

/// The folder `--cache` names: the cache's own labels.jsonl stands for its folder; another
/// file is refused (it was reported as 'no label cache at FILE (no labels.jsonl)').
fn cache_folder(path: PathBuf) -> Result<PathBuf> {
    if !path.is_file() {
        return Ok(path);
    }
    if path.file_name() == Some(std::ffi::OsStr::new(super::cache::LABELS_FILE)) {
        return Ok(match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        });
    }
    anyhow::bail!(
        "--cache {} is a file; pass the folder that holds the cache's {}",
        path.display(),
        super::cache::LABELS_FILE
    )
}

/// The report `lab labels stats` prints.
pub fn render(dir: &str, s: &CacheSummary) -> String {
    let mut out = format!("label cache: {dir}\n");
    out.push_str(&format!("entries:     {}\n", s.entries));
    out.push_str(&format!("total spend: ${:.6}\n", s.total_cost));
    out.push_str(&format!(
        "tokens:      {} input, {} output\n",
        s.input_tokens, s.output_tokens
    ));
    match (&s.counts_unreadable, s.hit_rate()) {
        (Some(why), _) => out.push_str(&format!("hit rate:    unknown: {why}\n")),
        (None, rate) => {
            let rate = match rate {
                Some(r) => format!("{:.1}%", 100.0 * r),
                None => "n/a".to_string(),
            };
            out.push_str(&format!(
                "hit rate:    {rate} ({} hits, {} misses)\n",
                s.counts.hits, s.counts.misses
            ));
        }
    }
    for (provider, model, n, cost) in &s.by_model {
        out.push_str(&format!("  {provider}:{model}: {n} entries, ${cost:.6}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::labeller::cache::HitCounts;

    #[test]
    fn cache_takes_its_labels_file_as_its_folder_and_refuses_other_files() {
        let dir = tempfile::tempdir().unwrap();
        let labels = dir.path().join("labels.jsonl");
        std::fs::write(&labels, "").unwrap();
        assert_eq!(cache_folder(labels.clone()).unwrap(), dir.path());
        assert!(run(LabelsArgs {
            command: LabelsCommand::Stats {
                cache: Some(labels)
            }
        })
        .is_ok());
        let other = dir.path().join("notes.txt");
        std::fs::write(&other, "").unwrap();
        let err = cache_folder(other.clone()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "--cache {} is a file; pass the folder that holds the cache's labels.jsonl",
                other.display()
            )
        );
    }

    #[test]
    fn report_shows_spend_and_hit_rate() {
        let s = CacheSummary {
            entries: 3,
            total_cost: 0.0125,
            input_tokens: 300,
            output_tokens: 30,
            counts: HitCounts { hits: 1, misses: 3 },
            counts_unreadable: None,
            by_model: vec![("openai".into(), "gpt-x".into(), 3, 0.0125)],
        };
        let r = render("/c", &s);
        assert!(r.contains("entries:     3"), "{r}");
        assert!(r.contains("total spend: $0.012500"), "{r}");
        assert!(r.contains("hit rate:    25.0% (1 hits, 3 misses)"), "{r}");
        assert!(r.contains("openai:gpt-x: 3 entries"), "{r}");
    }

    /// A damaged stats.json (the hit counts) stopped `lab labels stats` with nothing shown.
    /// Now the entries and spend, which come from labels.jsonl, are shown, and the hit rate
    /// line names the damaged file and what to do.
    #[test]
    fn a_damaged_stats_file_still_shows_the_spend_and_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let reply = |key: &str, model: &str| crate::labeller::cache::CachedReply {
            key: key.into(),
            provider: "openai".into(),
            model: model.into(),
            text: "label".into(),
            input_tokens: 10,
            output_tokens: 2,
            cost: 0.5,
        };
        {
            let cache = crate::labeller::cache::LabelCache::open(dir.path()).unwrap();
            cache.insert(reply("a", "gpt-x")).unwrap();
            cache.insert(reply("b", "gpt-y")).unwrap();
        }
        let stats = dir.path().join("stats.json");
        std::fs::write(&stats, "{\"hits\": 3, \"mis").unwrap();
        let summary = summarize(dir.path()).unwrap();
        let r = render("/c", &summary);
        assert!(r.contains("entries:     2"), "{r}");
        assert!(r.contains("total spend: $1.000000"), "{r}");
        assert!(
            r.contains("openai:gpt-x: 1 entries") && r.contains("openai:gpt-y: 1 entries"),
            "{r}"
        );
        assert!(
            r.contains(&format!(
                "hit rate:    unknown: {} is damaged",
                stats.display()
            )) && r.contains("delete it"),
            "{r}"
        );
        assert!(run(LabelsArgs {
            command: LabelsCommand::Stats {
                cache: Some(dir.path().to_path_buf())
            }
        })
        .is_ok());
    }
}
