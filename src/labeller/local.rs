//! A local model as the labeller (`labeller.kind = "local"`): any model the host can load
//! (e.g. Gemma 3 270M from `lab setup --with-gemma`) writes the labels, batched, for free.
use crate::data::render::render_input;
use crate::data::Example;
use crate::labeller::{Label, LabelOutcome, Labeller};
use crate::models::lm::{GenerateOptions, LanguageModel, ModelSource};
use crate::runner::prompting::strip_reasoning;
use anyhow::{Context, Result};

pub struct LocalLabeller {
    lm: LanguageModel,
    name: String,
    system_prompt: Option<String>,
    input_template: String,
    max_new_tokens: usize,
    max_input_tokens: usize,
    batch_size: usize,
}

impl LocalLabeller {
    pub fn load(
        model: &str,
        system_prompt: Option<String>,
        input_template: String,
        max_new_tokens: usize,
        max_input_tokens: usize,
    ) -> Result<Self> {
        let lm = LanguageModel::load(&ModelSource::parse(model)).with_context(|| {
            format!("labeller.model = {model:?}: cannot load the local labeller")
        })?;
        Ok(Self::from_model(
            lm,
            model,
            system_prompt,
            input_template,
            max_new_tokens,
            max_input_tokens,
        ))
    }

    pub fn from_model(
        lm: LanguageModel,
        name: &str,
        system_prompt: Option<String>,
        input_template: String,
        max_new_tokens: usize,
        max_input_tokens: usize,
    ) -> Self {
        Self {
            lm,
            name: format!("local:{name}"),
            system_prompt,
            input_template,
            max_new_tokens,
            max_input_tokens,
            batch_size: 8,
        }
    }
}

impl Labeller for LocalLabeller {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn label(&mut self, items: &[Example], _few_shot: &[Example]) -> Result<LabelOutcome> {
        let started = std::time::Instant::now();
        let prompts = items
            .iter()
            .map(|e| {
                let user = render_input(&self.input_template, &e.input, None);
                self.lm.render_prompt_within(
                    self.system_prompt.as_deref(),
                    &user,
                    self.max_input_tokens,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let opts = GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            batch_size: self.batch_size,
            ..GenerateOptions::default()
        };
        let out = self.lm.generate(&prompts, &opts)?;
        let per_item = started.elapsed().as_secs_f64() / items.len().max(1) as f64;
        let labels = items
            .iter()
            .zip(out)
            .map(|(e, gens)| {
                let (text, tokens) = gens
                    .into_iter()
                    .next()
                    .map_or((String::new(), 0), |g| (g.text, g.token_ids.len() as u64));
                let text = strip_reasoning(&text);
                let output = text
                    .lines()
                    .map(str::trim)
                    .find(|l| !l.is_empty())
                    .unwrap_or("")
                    .to_string();
                Label {
                    id: e.id,
                    output,
                    cost: 0.0,
                    input_tokens: 0,
                    output_tokens: tokens,
                    seconds: per_item,
                    edits: 0,
                }
            })
            .collect();
        Ok(LabelOutcome::Complete(labels))
    }

    fn spent(&self) -> f64 {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::decoder_config::Family;

    #[test]
    fn labels_every_item_in_order_for_free() {
        let lm = LanguageModel::tiny_random(3, Family::Llama).unwrap();
        let mut labeller =
            LocalLabeller::from_model(lm, "tiny", Some("Label.".into()), "{input}".into(), 4, 64);
        let items: Vec<Example> = (0..3)
            .map(|i| Example {
                id: 10 + i,
                input: format!("email number {i}"),
                output: String::new(),
                references: vec![],
            })
            .collect();
        let out = labeller.label(&items, &[]).unwrap();
        let LabelOutcome::Complete(labels) = out else {
            panic!("a local labeller has no budget")
        };
        assert_eq!(
            labels.iter().map(|l| l.id).collect::<Vec<_>>(),
            vec![10, 11, 12]
        );
        assert!(labels
            .iter()
            .all(|l| l.cost == 0.0 && !l.output.contains('\n')));
        assert!(labels.iter().all(|l| l.output_tokens <= 4));
        assert_eq!(labeller.spent(), 0.0);
    }
}
