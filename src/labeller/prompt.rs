//! What an LLM is asked and what is kept of its answer: the chat request (system prompt,
//! few-shot turns, the input), its cache key, and the reply clean-up (`<think>` removal,
//! first line or whole text).
use crate::data::Example;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }

    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// One chat request, independent of the provider's wire format.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ChatRequest {
    pub system: Option<String>,
    pub messages: Vec<Message>,
    pub temperature: f64,
    pub max_tokens: u32,
}

impl ChatRequest {
    /// The labelling prompt: the system prompt, then each few-shot example as a user turn
    /// (its input) and an assistant turn (its output), then the input to label.
    pub fn for_label(
        system_prompt: &str,
        few_shot: &[Example],
        input: &str,
        temperature: f64,
        max_tokens: u32,
    ) -> Self {
        let mut messages = Vec::with_capacity(2 * few_shot.len() + 1);
        for ex in few_shot {
            messages.push(Message::user(ex.input.clone()));
            messages.push(Message::assistant(ex.output.clone()));
        }
        messages.push(Message::user(input));
        let system = (!system_prompt.trim().is_empty()).then(|| system_prompt.to_string());
        ChatRequest {
            system,
            messages,
            temperature,
            max_tokens,
        }
    }

    /// Every text the model reads, for counting input tokens.
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.system
            .iter()
            .map(String::as_str)
            .chain(self.messages.iter().map(|m| m.content.as_str()))
    }

    /// Number of turns including the system prompt (each costs a few template tokens).
    pub fn turns(&self) -> usize {
        self.messages.len() + usize::from(self.system.is_some())
    }

    /// Cache key: sha256 over provider, model and the full request (prompt, temperature,
    /// max_tokens), so a change to any of them is a different label.
    pub fn cache_key(&self, provider: &str, model: &str) -> String {
        self.cache_key_at(provider, model, "")
    }

    /// [`ChatRequest::cache_key`] for a server at `endpoint` (a normalised `base_url`): two
    /// servers answering to one model name are different models. An empty `endpoint` (the
    /// provider's own API) gives the key `cache_key` gives, so existing caches stay valid.
    pub fn cache_key_at(&self, provider: &str, model: &str, endpoint: &str) -> String {
        let mut h = Sha256::new();
        // serde_json of a struct of strings and numbers cannot fail.
        let body = serde_json::to_string(self).expect("ChatRequest serializes");
        let mut parts = vec![provider, model, body.as_str()];
        if !endpoint.is_empty() {
            parts.push(endpoint);
        }
        for part in parts {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        hex::encode(h.finalize())
    }
}

/// Which part of the cleaned reply becomes the label.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyPart {
    /// The first non-empty line (short labels such as subjects or answers).
    #[default]
    FirstLine,
    /// The whole reply, trimmed.
    Whole,
}

/// Remove reasoning blocks (`<think>…</think>`, also an unclosed trailing `<think>` and a
/// closing tag without its opening one, as some servers drop the opening tag).
pub fn strip_think(text: &str) -> String {
    let mut rest = text;
    // A reply that starts inside the reasoning: everything up to the first `</think>` is reasoning.
    if let (Some(close), open) = (rest.find("</think>"), rest.find("<think>")) {
        if open.is_none_or(|o| o > close) {
            rest = &rest[close + "</think>".len()..];
        }
    }
    let mut out = String::with_capacity(rest.len());
    while let Some(start) = rest.find("<think>") {
        out.push_str(&rest[..start]);
        match rest[start..].find("</think>") {
            Some(end) => rest = &rest[start + end + "</think>".len()..],
            None => {
                rest = "";
                break;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Whether a reply says nothing once its reasoning is taken out: billed, but no label.
pub fn says_nothing(raw: &str) -> bool {
    strip_think(raw).trim().is_empty()
}

/// The label kept from a raw reply: reasoning removed, then the first non-empty line or the
/// whole text, trimmed. Empty when nothing is left.
pub fn clean_reply(raw: &str, part: ReplyPart) -> String {
    let text = strip_think(raw);
    match part {
        ReplyPart::Whole => text.trim().to_string(),
        ReplyPart::FirstLine => text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty())
            .unwrap_or("")
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(id: u64, input: &str, output: &str) -> Example {
        Example {
            id,
            input: input.into(),
            output: output.into(),
            references: vec![output.into()],
        }
    }

    #[test]
    fn label_prompt_has_system_few_shot_then_input() {
        let r = ChatRequest::for_label(
            "Write a subject.",
            &[ex(1, "in1", "out1"), ex(2, "in2", "out2")],
            "x",
            0.0,
            16,
        );
        assert_eq!(r.system.as_deref(), Some("Write a subject."));
        let roles: Vec<Role> = r.messages.iter().map(|m| m.role).collect();
        use Role::*;
        assert_eq!(roles, vec![User, Assistant, User, Assistant, User]);
        assert_eq!(r.messages[1].content, "out1");
        assert_eq!(r.messages[4].content, "x");
        assert_eq!(r.turns(), 6);
        let blank = ChatRequest::for_label("  ", &[], "x", 0.0, 16);
        assert_eq!(blank.system, None);
    }

    #[test]
    fn cache_key_changes_with_every_part() {
        let r = ChatRequest::for_label("s", &[], "x", 0.0, 16);
        let k = r.cache_key("openai", "m");
        assert_eq!(k, r.clone().cache_key("openai", "m"));
        assert_eq!(k.len(), 64);
        assert_ne!(k, r.cache_key("anthropic", "m"));
        assert_ne!(k, r.cache_key("openai", "m2"));
        let mut t = r.clone();
        t.temperature = 0.5;
        assert_ne!(k, t.cache_key("openai", "m"));
        let mut m = r.clone();
        m.max_tokens = 17;
        assert_ne!(k, m.cache_key("openai", "m"));
        let y = ChatRequest::for_label("s", &[], "y", 0.0, 16);
        assert_ne!(k, y.cache_key("openai", "m"));
        // Boundaries between parts matter: ("ab","c") is not ("a","bc").
        assert_ne!(r.cache_key("ab", "c"), r.cache_key("a", "bc"));
        assert_eq!(k, r.cache_key_at("openai", "m", ""));
        let here = r.cache_key_at("custom", "m", "http://127.0.0.1:8080/v1");
        assert_ne!(here, r.cache_key("custom", "m"));
        assert_ne!(
            here,
            r.cache_key_at("custom", "m", "http://127.0.0.1:8081/v1")
        );
    }

    #[test]
    fn think_blocks_are_removed() {
        assert_eq!(strip_think("<think>hmm\nyes</think>\nAnswer"), "\nAnswer");
        assert_eq!(strip_think("a<think>x</think>b<think>y</think>c"), "abc");
        assert_eq!(strip_think("reasoning only</think>Answer"), "Answer");
        assert_eq!(strip_think("Answer<think>never closed"), "Answer");
        assert_eq!(strip_think("plain"), "plain");
    }

    #[test]
    fn reply_part_picks_first_line_or_whole() {
        let raw = "<think>plan</think>\n\n  Meeting moved  \nsecond line\n";
        assert_eq!(clean_reply(raw, ReplyPart::FirstLine), "Meeting moved");
        assert_eq!(
            clean_reply(raw, ReplyPart::Whole),
            "Meeting moved  \nsecond line"
        );
        assert_eq!(
            clean_reply("<think>only</think>  \n", ReplyPart::FirstLine),
            ""
        );
    }
}
