//! The text the model sees for an example, before the model's chat template wraps it.

/// Put `input` into `template` at `{input}`, first cutting it to `max_chars` characters.
pub fn render_input(template: &str, input: &str, max_chars: Option<usize>) -> String {
    let input = match max_chars {
        Some(max) if input.chars().count() > max => {
            let cut = input
                .char_indices()
                .nth(max)
                .map_or(input.len(), |(i, _)| i);
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
        // Braces other than the placeholder are kept as written.
        assert_eq!(render_input("{x} {input}", "y", None), "{x} y");
    }
}
