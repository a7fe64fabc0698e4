//! `lab metrics`: score a file of predictions against a file of references.
use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

use super::input::{read_predictions, read_references};
use super::registry::{self, MetricScores};

#[derive(Args, Debug)]
#[command(
    override_usage = "lab metrics --predictions <FILE> --references <FILE> --metrics <NAME,...> [OPTIONS]\n       lab metrics --list",
    after_help = "Example:\n  lab metrics --predictions data/aeslc/dev.jsonl --prediction-field subject \\\n    --references data/aeslc/dev.jsonl --reference-fields annotations.0 \\\n    --metrics rouge1,rouge2,rougeL,sacrebleu"
)]
pub struct MetricsArgs {
    /// Predictions: .jsonl, .json (array of records), .csv, or .txt (one per line).
    #[arg(long, value_name = "FILE", required_unless_present = "list")]
    pub predictions: Option<PathBuf>,
    /// References, matched to predictions by position (same formats).
    #[arg(long, value_name = "FILE", required_unless_present = "list")]
    pub references: Option<PathBuf>,
    /// Comma-separated metric names (`--list` shows them).
    #[arg(long, value_delimiter = ',', required_unless_present = "list")]
    pub metrics: Vec<String>,
    /// Field holding the prediction; dotted paths and list indexes allowed (`out.text`,
    /// `answers.0`). Default: `prediction`, or the only field of each record.
    #[arg(long, value_name = "PATH")]
    pub prediction_field: Option<String>,
    /// Comma-separated fields holding references (each a string or a list of strings).
    /// Default: `references`, or the only field of each record.
    #[arg(long, value_delimiter = ',', value_name = "PATH,...")]
    pub reference_fields: Vec<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also write every example's scores to this JSONL file.
    #[arg(long, value_name = "FILE")]
    pub per_example: Option<PathBuf>,
    /// List the metrics with their scales and exit.
    #[arg(long)]
    pub list: bool,
}

fn metric_list() -> String {
    let mut out = String::new();
    for name in registry::names() {
        let info = registry::info_of(name).expect("every registered name has info");
        out.push_str(&format!("{name:<20} {:<6} {}\n", info.scale, info.about));
    }
    out
}

/// Run `lab metrics`.
pub fn run(args: &MetricsArgs) -> Result<()> {
    if args.list {
        print!("{}", metric_list());
        return Ok(());
    }
    let mut names: Vec<&str> = Vec::new();
    for name in args.metrics.iter().map(|m| m.trim()) {
        // A name given twice is computed and printed once.
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        bail!(
            "--metrics is empty; name at least one of: {}",
            registry::names().join(", ")
        );
    }
    for name in &names {
        if !registry::is_known(name) {
            bail!(
                "unknown metric `{name}` in --metrics; did you mean `{}`? (lab metrics --list shows all)",
                registry::nearest_name(name)
            );
        }
    }
    let (Some(predictions_path), Some(references_path)) = (&args.predictions, &args.references)
    else {
        bail!("both --predictions and --references are needed");
    };
    for (flag, path) in [
        ("--predictions", predictions_path),
        ("--references", references_path),
    ] {
        if !path.is_file() {
            let what = if path.exists() {
                "is not a file"
            } else {
                "does not exist"
            };
            bail!(
                "{flag} {}: {what}; pass a .jsonl, .json, .csv or .txt file",
                path.display()
            );
        }
    }
    if let Some(out) = &args.per_example {
        let same = |input: &PathBuf| match (out.canonicalize(), input.canonicalize()) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        for (flag, input) in [
            ("--predictions", predictions_path),
            ("--references", references_path),
        ] {
            if same(input) {
                bail!(
                    "--per-example {} is the {flag} file: writing the scores there would \
                     replace it; name another file",
                    out.display()
                );
            }
        }
    }
    let predictions = read_predictions(predictions_path, args.prediction_field.as_deref())?;
    if predictions.is_empty() {
        bail!(
            "{} has no predictions (no rows); a score over zero examples means nothing, so \
             check that --predictions names the file the model's outputs were written to",
            predictions_path.display()
        );
    }
    let references = read_references(references_path, &args.reference_fields)?;
    if predictions.len() != references.len() {
        bail!(
            "{} has {} predictions but {} has {} reference rows; rows are matched by position, \
             so the counts must be equal",
            predictions_path.display(),
            predictions.len(),
            references_path.display(),
            references.len()
        );
    }
    // The encoder `lab setup` fetched (fetched now when missing), as runs use by default.
    let encoder = if names.contains(&"bertscore_minilm") {
        Some(
            crate::models::encoder::SentenceEncoder::load_default()
                .context("bertscore_minilm needs the MiniLM encoder")?,
        )
    } else {
        None
    };
    let embedder = encoder
        .as_ref()
        .map(|e| e as &dyn crate::metrics::bertscore::TokenEmbedder);
    let bar = crate::util::progress::bar(names.len() as u64, "metrics");
    let mut results: Vec<(&str, MetricScores)> = Vec::with_capacity(names.len());
    for name in &names {
        bar.set_message(name.to_string());
        let scores = registry::compute(name, &predictions, &references, embedder)
            .with_context(|| format!("computing `{name}`"))?;
        results.push((name, scores));
        bar.inc(1);
    }
    bar.finish_and_clear();

    if let Some(path) = &args.per_example {
        let mut lines = String::new();
        for row in 0..predictions.len() {
            let mut object = Map::new();
            object.insert("row".into(), json!(row));
            for (name, scores) in &results {
                object.insert(name.to_string(), json!(scores.per_example[row]));
            }
            lines.push_str(&Value::Object(object).to_string());
            lines.push('\n');
        }
        crate::util::atomic_write_string(path, &lines)?;
    }

    if args.json {
        let mut metrics = Map::new();
        for (name, scores) in &results {
            let info = registry::info_of(name).expect("checked above");
            metrics.insert(
                name.to_string(),
                json!({ "value": scores.corpus, "scale": info.scale }),
            );
        }
        let out = json!({ "examples": predictions.len(), "metrics": metrics });
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        print!("{}", table(&results, predictions.len()));
    }
    Ok(())
}

fn table(results: &[(&str, MetricScores)], examples: usize) -> String {
    let width = results
        .iter()
        .map(|(n, _)| n.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = format!("{:<width$}  {:>10}  scale\n", "metric", "value");
    for (name, scores) in results {
        let scale = registry::info_of(name).map_or("", |i| i.scale);
        out.push_str(&format!(
            "{name:<width$}  {:>10.4}  {scale}\n",
            scores.corpus
        ));
    }
    out.push_str(&format!("({examples} examples)\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(predictions: PathBuf, references: PathBuf, metrics: &[&str]) -> MetricsArgs {
        MetricsArgs {
            predictions: Some(predictions),
            references: Some(references),
            metrics: metrics.iter().map(|m| m.to_string()).collect(),
            prediction_field: Some("out".into()),
            reference_fields: vec!["gold".into()],
            json: true,
            per_example: None,
            list: false,
        }
    }

    #[test]
    fn scores_files_and_writes_per_example() {
        let dir = tempfile::tempdir().unwrap();
        let preds = dir.path().join("p.jsonl");
        let refs = dir.path().join("r.csv");
        std::fs::write(&preds, "{\"out\": \"the cat\"}\n{\"out\": \"a dog\"}\n").unwrap();
        std::fs::write(&refs, "gold\nthe cat\nno match\n").unwrap();
        let mut a = args(preds.clone(), refs.clone(), &["exact_match", "rouge1"]);
        let out = dir.path().join("scores.jsonl");
        a.per_example = Some(out.clone());
        run(&a).unwrap();
        let lines: Vec<Value> = std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["exact_match"], 1.0);
        assert_eq!(lines[1]["rouge1"], 0.0);

        let short = dir.path().join("short.csv");
        std::fs::write(&short, "gold\nthe cat\n").unwrap();
        let err = run(&args(preds.clone(), short, &["rouge1"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("2 predictions but"), "{err}");
        assert!(err.contains("has 1 reference rows"), "{err}");
        let err = run(&args(preds, refs, &["rouge_l"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("did you mean `rougeL`"), "{err}");
    }

    #[test]
    fn empty_predictions_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.jsonl");
        std::fs::write(&empty, "").unwrap();
        let err = run(&args(empty.clone(), empty.clone(), &["rouge1"]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no predictions"), "{err}");
        assert!(err.contains(&empty.display().to_string()), "{err}");
        assert!(err.contains("--predictions"), "{err}");
    }

    #[test]
    fn a_missing_file_is_named_with_its_flag() {
        let dir = tempfile::tempdir().unwrap();
        let refs = dir.path().join("r.txt");
        std::fs::write(&refs, "x\n").unwrap();
        let missing = dir.path().join("p.jsonl");
        let err = run(&args(missing.clone(), refs.clone(), &["rouge1"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "--predictions {}: does not exist",
                missing.display()
            )),
            "{err}"
        );
        let err = run(&args(refs, dir.path().to_path_buf(), &["rouge1"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("--references ") && err.contains("is not a file"),
            "{err}"
        );
    }

    /// `--per-example` naming an input file replaced it with the scores.
    #[test]
    fn per_example_never_overwrites_an_input_and_names_are_computed_once() {
        let dir = tempfile::tempdir().unwrap();
        let preds = dir.path().join("p.jsonl");
        let refs = dir.path().join("r.jsonl");
        std::fs::write(&preds, "{\"out\": \"the cat\"}\n").unwrap();
        std::fs::write(&refs, "{\"gold\": \"the cat\"}\n").unwrap();
        for target in [&preds, &refs] {
            let mut a = args(preds.clone(), refs.clone(), &["rouge1"]);
            a.per_example = Some(target.clone());
            let err = run(&a).unwrap_err().to_string();
            assert!(err.contains("would replace it"), "{err}");
        }
        assert_eq!(
            std::fs::read_to_string(&preds).unwrap(),
            "{\"out\": \"the cat\"}\n"
        );
        let mut a = args(preds, refs, &["rouge1", "rouge1", "exact_match"]);
        let out = dir.path().join("scores.jsonl");
        a.per_example = Some(out.clone());
        run(&a).unwrap();
        let line = std::fs::read_to_string(&out).unwrap();
        assert_eq!(line, "{\"row\":0,\"rouge1\":1.0,\"exact_match\":1.0}\n");
    }

    #[test]
    fn table_is_aligned() {
        let results = vec![
            (
                "rouge1",
                MetricScores {
                    corpus: 0.5,
                    per_example: vec![],
                },
            ),
            (
                "sacrebleu",
                MetricScores {
                    corpus: 12.34567,
                    per_example: vec![],
                },
            ),
        ];
        let t = table(&results, 3);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "rouge1         0.5000  0-1");
        assert_eq!(lines[2], "sacrebleu     12.3457  0-100");
        assert_eq!(lines[3], "(3 examples)");
    }
}
