//! The bundled font. plotters' ab_glyph backend draws only fonts registered at run time, so
//! figures look the same on every machine (no system font lookup).
use ab_glyph::{Font, FontRef};
use anyhow::{anyhow, Result};
use plotters::style::FontStyle;
use std::sync::OnceLock;

/// DejaVu Sans (Bitstream Vera licence, see assets/fonts/LICENSE-DejaVu.txt).
static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// The family name figures use, and the SVG's `font-family`: the bundled font first, so a
/// viewer that has it draws text as wide as it was measured, then the viewer's own.
pub const FAMILY: &str = "DejaVu Sans, sans-serif";

/// Register the bundled font once per process.
pub fn register_bundled_font() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = *REGISTERED.get_or_init(|| {
        plotters::style::register_font(FAMILY, FontStyle::Normal, DEJAVU_SANS).is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(anyhow!(
            "the bundled font assets/fonts/DejaVuSans.ttf could not be parsed; \
             the build is damaged, reinstall atgen-lab"
        ))
    }
}

/// `text` as the bitmap figures can draw it: each character the bundled font has no glyph for
/// (CJK, Hangul) written as its code point, `<U+65E5>`, where it would be an empty box that
/// tells no two names apart. SVG figures keep the text as it is: their viewer draws it with
/// the system's fonts.
pub fn drawable(text: &str) -> String {
    static FONT: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    let Some(font) = FONT.get_or_init(|| FontRef::try_from_slice(DEJAVU_SANS).ok()) else {
        // register_bundled_font reports a damaged font before anything is drawn.
        return text.to_string();
    };
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        // Glyph 0 is the font's "missing" box.
        if c.is_control() || font.glyph_id(c).0 != 0 {
            out.push(c);
        } else {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::drawable;

    #[test]
    fn characters_without_a_glyph_are_written_as_code_points() {
        // Latin, Greek, Cyrillic and some emoji are in DejaVu Sans; CJK and Hangul are not.
        assert_eq!(drawable("zufällig_ü αβ жж"), "zufällig_ü αβ жж");
        assert_eq!(drawable("s_日本"), "s_<U+65E5><U+672C>");
        assert_eq!(drawable("a😀 한"), "a😀 <U+D55C>");
    }
}
