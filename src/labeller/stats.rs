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
        /// The cache folder (the labeller's cache_dir); default <user cache>/atgen-lab/labels.
        #[arg(long, value_name = "DIR")]
        cache: Option<PathBuf>,
    },
}

pub fn run(args: LabelsArgs) -> Result<()> {
    match args.command {
        LabelsCommand::Stats { cache } => {
            let dir = cache.unwrap_or_else(default_dir);
            let summary = summarize(&dir)?;
            print!("{}", render(&dir.display().to_string(), &summary));
            Ok(())
        }
    }
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
    let rate = match s.hit_rate() {
        Some(r) => format!("{:.1}%", 100.0 * r),
        None => "n/a".to_string(),
    };
    out.push_str(&format!(
        "hit rate:    {rate} ({} hits, {} misses)\n",
        s.counts.hits, s.counts.misses
    ));
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
    fn report_shows_spend_and_hit_rate() {
        let s = CacheSummary {
            entries: 3,
            total_cost: 0.0125,
            input_tokens: 300,
            output_tokens: 30,
            counts: HitCounts { hits: 1, misses: 3 },
            by_model: vec![("openai".into(), "gpt-x".into(), 3, 0.0125)],
        };
        let r = render("/c", &s);
        assert!(r.contains("entries:     3"), "{r}");
        assert!(r.contains("total spend: $0.012500"), "{r}");
        assert!(r.contains("hit rate:    25.0% (1 hits, 3 misses)"), "{r}");
        assert!(r.contains("openai:gpt-x: 3 entries"), "{r}");
    }
}
