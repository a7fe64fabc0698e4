//! Reading files as UTF-8 text: a leading byte-order mark dropped, and where a file stops
//! being UTF-8, for errors a person can act on.

/// `bytes` without a leading UTF-8 byte-order mark (Windows tools write one; it is no part of
/// the text).
pub fn without_bom(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    bytes
}

/// The first byte of `bytes` that is not UTF-8, placed as a person looks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NotUtf8 {
    /// 1-based line.
    pub line: usize,
    /// 1-based, counted in characters before the byte on its line.
    pub column: usize,
    pub byte: u8,
}

/// `bytes` as text, or where its first byte that is not UTF-8 is.
pub fn utf8_text(bytes: Vec<u8>) -> Result<String, NotUtf8> {
    String::from_utf8(bytes).map_err(|e| {
        let bytes = e.as_bytes();
        let valid = &bytes[..e.utf8_error().valid_up_to()];
        let line_start = valid.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        NotUtf8 {
            line: valid.iter().filter(|&&b| b == b'\n').count() + 1,
            // The prefix is valid UTF-8, so its characters can be counted.
            column: String::from_utf8_lossy(&valid[line_start..])
                .chars()
                .count()
                + 1,
            byte: bytes[valid.len()],
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_the_first_bad_byte_by_line_and_character() {
        assert_eq!(utf8_text(b"ok\n".to_vec()), Ok("ok\n".to_string()));
        // "é" (two bytes in UTF-8) counts as one character before the Latin-1 byte.
        let mut bytes = "one\ncafé ".as_bytes().to_vec();
        bytes.push(0xe9);
        assert_eq!(
            utf8_text(bytes),
            Err(NotUtf8 {
                line: 2,
                column: 6,
                byte: 0xe9
            })
        );
    }
}
