//! Prompt rendering: the model's own Jinja chat template (from `tokenizer_config.json` or GGUF
//! `tokenizer.chat_template`) rendered with minijinja, or a plain format for base models.
use anyhow::{Context, Result};
use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind};
use serde::Serialize;

#[derive(Debug, Clone)]
pub struct ChatTemplate {
    /// Jinja source; `None` means the plain `system\n\ninput\n` format (its BOS, when the
    /// tokenizer asks for one, comes with the ids: `TextTokenizer::encode_prompt`).
    source: Option<String>,
    bos_token: String,
    eos_token: String,
}

#[derive(Serialize)]
struct Message<'a> {
    role: &'a str,
    content: &'a str,
}

impl ChatTemplate {
    pub fn new(
        source: Option<String>,
        bos_token: Option<String>,
        eos_token: Option<String>,
    ) -> Self {
        Self {
            source,
            bos_token: bos_token.unwrap_or_default(),
            eos_token: eos_token.unwrap_or_default(),
        }
    }

    pub fn has_template(&self) -> bool {
        self.source.is_some()
    }

    /// The `chat_template` of a `tokenizer_config.json` (a string, or a list of named templates
    /// of which `default` is used).
    pub fn source_from_tokenizer_config(config: &serde_json::Value) -> Option<String> {
        match config.get("chat_template")? {
            serde_json::Value::String(s) => Some(s.clone()),
            serde_json::Value::Array(list) => list
                .iter()
                .find(|t| t.get("name").and_then(|n| n.as_str()) == Some("default"))
                .or_else(|| list.first())
                .and_then(|t| t.get("template"))
                .and_then(|t| t.as_str())
                .map(str::to_string),
            _ => None,
        }
    }

    /// One user turn (after an optional system turn), ending with the assistant's cue.
    pub fn render(&self, system: Option<&str>, user: &str) -> Result<String> {
        let Some(source) = &self.source else {
            return Ok(render_plain(system, user));
        };
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(Message {
                role: "system",
                content: s,
            });
        }
        messages.push(Message {
            role: "user",
            content: user,
        });
        let mut env = Environment::new();
        env.add_function("raise_exception", |msg: String| -> Result<Value, Error> {
            Err(Error::new(ErrorKind::InvalidOperation, msg))
        });
        env.set_unknown_method_callback(python_methods);
        env.add_template("chat", source)
            .context("the model's chat template is not valid Jinja")?;
        let template = env.get_template("chat")?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => true,
                bos_token => self.bos_token,
                eos_token => self.eos_token,
            })
            .context("cannot render the model's chat template")
    }
}

/// The plain format for base models (`prompt_format = "plain"`, or a model without a chat
/// template): the system text, a blank line, the user text and a newline.
pub fn render_plain(system: Option<&str>, user: &str) -> String {
    match system {
        Some(s) => format!("{s}\n\n{user}\n"),
        None => format!("{user}\n"),
    }
}

/// The Python string and dict methods chat templates commonly call.
fn python_methods(
    _state: &minijinja::State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    let arg_str = |i: usize| args.get(i).and_then(|a| a.as_str().map(str::to_string));
    if let Some(s) = value.as_str() {
        let chars = arg_str(0);
        let trim_set = |c: char| {
            chars
                .as_deref()
                .map_or(c.is_whitespace(), |set| set.contains(c))
        };
        return Ok(match method {
            "strip" => Value::from(s.trim_matches(trim_set)),
            "lstrip" => Value::from(s.trim_start_matches(trim_set)),
            "rstrip" => Value::from(s.trim_end_matches(trim_set)),
            "startswith" => Value::from(arg_str(0).is_some_and(|p| s.starts_with(&p))),
            "endswith" => Value::from(arg_str(0).is_some_and(|p| s.ends_with(&p))),
            "upper" => Value::from(s.to_uppercase()),
            "lower" => Value::from(s.to_lowercase()),
            "replace" => match (arg_str(0), arg_str(1)) {
                (Some(a), Some(b)) => Value::from(s.replace(&a, &b)),
                _ => return Err(Error::new(ErrorKind::MissingArgument, "replace(old, new)")),
            },
            "split" => {
                let parts: Vec<Value> = match arg_str(0) {
                    Some(sep) => s.split(sep.as_str()).map(Value::from).collect(),
                    None => s.split_whitespace().map(Value::from).collect(),
                };
                Value::from(parts)
            }
            _ => return Err(unknown(method)),
        });
    }
    if value.kind() == ValueKind::Map {
        return match method {
            "get" => {
                let key = args.first().cloned().unwrap_or_default();
                let found = value.get_item(&key)?;
                Ok(if found.is_undefined() {
                    args.get(1).cloned().unwrap_or_default()
                } else {
                    found
                })
            }
            "items" => {
                let mut pairs = Vec::new();
                for k in value.try_iter()? {
                    let v = value.get_item(&k)?;
                    pairs.push(Value::from(vec![k, v]));
                }
                Ok(Value::from(pairs))
            }
            "keys" => Ok(Value::from(value.try_iter()?.collect::<Vec<_>>())),
            "values" => {
                let mut vals = Vec::new();
                for k in value.try_iter()? {
                    vals.push(value.get_item(&k)?);
                }
                Ok(Value::from(vals))
            }
            _ => Err(unknown(method)),
        };
    }
    Err(unknown(method))
}

fn unknown(method: &str) -> Error {
    Error::new(
        ErrorKind::UnknownMethod,
        format!("method `{method}` is not available in chat templates here"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOLLM2: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn chatml_with_and_without_system() -> Result<()> {
        let t = ChatTemplate::new(Some(SMOLLM2.into()), None, None);
        assert_eq!(
            t.render(Some("Be brief."), "Hi")?,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
        );
        assert!(t
            .render(None, "Hi")?
            .starts_with("<|im_start|>system\nYou are a helpful"));
        Ok(())
    }

    #[test]
    fn raise_exception_and_python_methods() -> Result<()> {
        let src = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('no system') }}{% endif %}{{ bos_token }}{{ messages[0]['content'].strip().upper() }}|{{ 'a,b'.split(',')|length }}";
        let t = ChatTemplate::new(Some(src.into()), Some("<s>".into()), None);
        assert_eq!(t.render(None, "  hi ")?, "<s>HI|2");
        let err = t.render(Some("x"), "hi").unwrap_err();
        assert!(format!("{err:#}").contains("no system"), "{err:#}");
        Ok(())
    }

    #[test]
    fn plain_format() -> Result<()> {
        let t = ChatTemplate::new(None, Some("<bos>".into()), None);
        assert_eq!(t.render(Some("Sys"), "In")?, "Sys\n\nIn\n");
        assert_eq!(t.render(None, "In")?, "In\n");
        Ok(())
    }
}
