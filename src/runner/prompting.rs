//! One place that turns an example into the model's prompt, so selection, training and
//! evaluation all see exactly the same text.
use crate::config::Experiment;
use crate::data::render::render_input;
use crate::data::Example;
use crate::models::lm::LanguageModel;
use anyhow::Result;

/// Renders examples with the experiment's input template, system prompt and the model's own
/// chat template, cutting the user text so the prompt fits in `model.max_input_tokens`.
pub struct Prompter<'a> {
    pub exp: &'a Experiment,
}

impl<'a> Prompter<'a> {
    pub fn new(exp: &'a Experiment) -> Self {
        Self { exp }
    }

    pub fn prompt(&self, lm: &LanguageModel, example: &Example) -> Result<String> {
        let data = &self.exp.data;
        let user = render_input(&data.input_template, &example.input, data.max_input_chars);
        let system = data.system_prompt.as_deref();
        match self.exp.model.prompt_format {
            crate::config::schema::PromptFormat::Chat => {
                lm.render_prompt_within(system, &user, self.exp.model.max_input_tokens)
            }
            crate::config::schema::PromptFormat::Plain => {
                lm.render_plain_within(system, &user, self.exp.model.max_input_tokens)
            }
        }
    }

    pub fn prompts(&self, lm: &LanguageModel, examples: &[Example]) -> Result<Vec<String>> {
        examples.iter().map(|e| self.prompt(lm, e)).collect()
    }

    /// The model's raw output as the stored prediction: trimmed, and cut to its first
    /// non-empty line when `model.first_line_only` (subject lines, short answers).
    pub fn postprocess(&self, text: &str) -> String {
        let text = strip_reasoning(text);
        if self.exp.model.first_line_only {
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or("")
                .to_string()
        } else {
            text.trim().to_string()
        }
    }
}

/// Reasoning models wrap their thoughts in `<think>…</think>`; the label is what follows.
pub fn strip_reasoning(text: &str) -> &str {
    match text.rfind("</think>") {
        Some(end) => &text[end + "</think>".len()..],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plain format was not cut: a long input made a prompt past `model.max_input_tokens`
    /// (and, with `max_new_tokens`, past the context the experiment was checked against).
    #[test]
    fn plain_prompts_are_cut_to_max_input_tokens_like_chat_ones() -> Result<()> {
        use crate::config::PromptFormat;
        let lm = LanguageModel::tiny_random(1, crate::models::lm::Family::Llama)?;
        let example = Example {
            id: 0,
            input: "word ".repeat(100),
            output: "x".into(),
            references: vec!["x".into()],
        };
        for format in [PromptFormat::Plain, PromptFormat::Chat] {
            let mut exp = Experiment::default();
            exp.model.prompt_format = format;
            exp.model.max_input_tokens = 48;
            exp.data.system_prompt = Some("Be brief.".into());
            let prompt = Prompter::new(&exp).prompt(&lm, &example)?;
            assert_eq!(
                lm.encode_prompt(&prompt)?.len(),
                48,
                "{format:?}: {prompt:?}"
            );
        }
        Ok(())
    }

    #[test]
    fn reasoning_is_removed() {
        assert_eq!(strip_reasoning("<think>hmm</think>\nSubject"), "\nSubject");
        assert_eq!(strip_reasoning("Subject"), "Subject");
    }
}
