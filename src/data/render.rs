//! The text the model sees for an example, before the model's chat template wraps it.
use unicode_segmentation::UnicodeSegmentation;

/// Put `input` into `template` at `{input}`, first cutting it to `max_chars` characters (fewer
/// when the cut would split a grapheme cluster).
pub fn render_input(template: &str, input: &str, max_chars: Option<usize>) -> String {
    let input = match max_chars {
        Some(max) if input.chars().count() > max => {
            let cut = input
                .char_indices()
                .nth(max)
                .map_or(input.len(), |(i, _)| i);
            // Never split a grapheme cluster (an accent from its letter, a flag, a ZWJ emoji):
            // back up to the cluster's start. ASCII cuts are unchanged (a CRLF split this way
            // ends in whitespace, which is trimmed either way).
            let cut = input
                .grapheme_indices(true)
                .map(|(i, _)| i)
                .take_while(|&i| i <= cut)
                .last()
                .unwrap_or(0);
            input[..cut].trim_end()
        }
        _ => input,
    };
    template.replace("{input}", input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fills_template_and_truncates_on_char_boundaries() {
        assert_eq!(
            render_input("Subject for:\n{input}", "hello", None),
            "Subject for:\nhello"
        );
        assert_eq!(render_input("{input}!", "héllo wörld", Some(7)), "héllo w!");
        assert_eq!(render_input("{input}", "abc ", Some(4)), "abc ");
        assert_eq!(render_input("[{input}]", "ab  cd", Some(3)), "[ab]");
        // A cut inside a grapheme cluster backs up to its start: "e" + combining acute, a flag.
        assert_eq!(render_input("{input}", "cafe\u{301}s", Some(4)), "caf");
        assert_eq!(
            render_input("{input}", "ab\u{1f1eb}\u{1f1f7}c", Some(3)),
            "ab"
        );
        assert_eq!(
            render_input("{input}", "ab\u{1f1eb}\u{1f1f7}c", Some(4)),
            "ab\u{1f1eb}\u{1f1f7}"
        );
        // Braces other than the placeholder are kept as written.
        assert_eq!(render_input("{x} {input}", "y", None), "{x} y");
    }
}
