//! Evaluation of the current model on the fixed test subset: greedy generation, the
//! experiment's metrics (corpus value for the curve, per-example values for browsing).
use crate::data::Example;
use crate::labeller::factory::Judge;
use crate::metrics;
use crate::metrics::bertscore::TokenEmbedder;
use crate::models::lm::{GenerateOptions, LanguageModel};
use crate::runner::persist::GenerationRecord;
use crate::runner::prompting::Prompter;
use anyhow::{Context, Result};

#[derive(Clone, Debug)]
pub struct Evaluation {
    /// `(metric, corpus value)` in the experiment's metric order.
    pub scores: Vec<(String, f64)>,
    pub records: Vec<GenerationRecord>,
    pub seconds: f64,
}

pub fn evaluate(
    lm: &LanguageModel,
    prompter: &Prompter<'_>,
    test: &[Example],
    metric_names: &[String],
    embedder: Option<&dyn TokenEmbedder>,
    judge: Option<&Judge>,
) -> Result<Evaluation> {
    let started = std::time::Instant::now();
    let exp = prompter.exp;
    let prompts = prompter.prompts(lm, test)?;
    let options = GenerateOptions {
        max_new_tokens: exp.model.max_new_tokens,
        temperature: 0.0,
        top_p: 1.0,
        n: 1,
        seed: 0,
        batch_size: exp.eval.batch_size,
        max_input_tokens: None,
    };
    let generations = lm
        .generate(&prompts, &options)
        .context("generating test-set outputs for evaluation")?;
    let predictions: Vec<String> = generations
        .iter()
        .map(|g| {
            g.first()
                .map(|g| prompter.postprocess(&g.text))
                .unwrap_or_default()
        })
        .collect();
    let references: Vec<Vec<String>> = test.iter().map(|e| e.references.clone()).collect();
    let mut scores = Vec::with_capacity(metric_names.len());
    let mut per_example = Vec::with_capacity(metric_names.len());
    for name in metric_names {
        let s = if name == "llm_judge" {
            let judge = judge
                .context("metric `llm_judge` needs an [eval.judge] table naming the judge LLM")?;
            let inputs: Vec<String> = test.iter().map(|e| e.input.clone()).collect();
            let per_example = judge
                .score(&inputs, &predictions, &references)
                .context("scoring the test subset with the LLM judge")?;
            metrics::MetricScores {
                corpus: per_example.iter().sum::<f64>() / per_example.len().max(1) as f64,
                per_example,
            }
        } else {
            metrics::compute(name, &predictions, &references, embedder)
                .with_context(|| format!("computing metric `{name}` on the test subset"))?
        };
        scores.push((name.clone(), s.corpus));
        per_example.push(s.per_example);
    }
    let records = test
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let values: Vec<(&str, f64)> = metric_names
                .iter()
                .zip(&per_example)
                .map(|(n, v)| (n.as_str(), v.get(i).copied().unwrap_or(f64::NAN)))
                .collect();
            GenerationRecord::new(e.id, predictions[i].clone(), e.references.clone(), &values)
        })
        .collect();
    Ok(Evaluation {
        scores,
        records,
        seconds: started.elapsed().as_secs_f64(),
    })
}
