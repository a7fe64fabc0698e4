//! The text of a figure: its caption, axis titles, tick labels and legend entries, each kept
//! readable for long names, strategies with different seed counts and costs of a fraction of
//! a cent.
use crate::report::aggregate::XAxis;
use crate::report::font::FAMILY;
use crate::report::plot::PLOT_SIZE;
use plotters::style::FontDesc;

/// The x axis's label of the tick at `v` on an axis `span` wide. Labeled counts print whole
/// where they are; costs get as many decimals as the tick spacing needs, at least cents: a
/// cheap labeller spends fractions of a cent per query, which three decimals would all print
/// as `0.000`.
pub fn x_tick_label(v: f64, axis: XAxis, span: f64) -> String {
    match axis {
        // Tick positions need not be whole numbers; only whole ones print without decimals.
        XAxis::Labeled if (v - v.round()).abs() < 1e-9 => format!("{}", v.round()),
        XAxis::Labeled => format!("{v:.1}"),
        XAxis::Cost => format!("{v:.*}", cost_decimals(span)),
    }
}

/// Decimals that tell apart ticks on a cost axis `span` dollars wide. plotters spaces ticks at
/// 1, 2 or 5 × 10^k, and never more than about twenty across the axis, so a twentieth of the
/// span bounds the spacing from below.
fn cost_decimals(span: f64) -> usize {
    if !(span.is_finite() && span > 0.0) {
        return 2;
    }
    // At most 12: a span narrower than that is a rounding artefact, not a spend.
    ((20.0 / span).log10().ceil()).clamp(2.0, 12.0) as usize
}

/// Legend labels longer than this many characters are cut, ending in `…`.
pub const MAX_LABEL_CHARS: usize = 40;

/// `name` cut to [`MAX_LABEL_CHARS`] characters (the last one `…`) when longer.
pub fn legend_label(name: &str) -> String {
    if name.chars().count() <= MAX_LABEL_CHARS {
        name.to_string()
    } else {
        let mut cut: String = name.chars().take(MAX_LABEL_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// A strategy's legend entry: its name cut by [`legend_label`], then what must stay readable
/// however long the name is: that it is the reference, and its number of seeds when given.
pub fn legend_entry(strategy: &str, reference: bool, seeds: Option<usize>) -> String {
    let mut notes = Vec::new();
    if reference {
        notes.push("reference".to_string());
    }
    match seeds {
        Some(1) => notes.push("1 seed".to_string()),
        Some(n) => notes.push(format!("{n} seeds")),
        None => {}
    }
    let name = legend_label(strategy);
    if notes.is_empty() {
        name
    } else {
        format!("{name} ({})", notes.join(", "))
    }
}

/// The y axis's title: the metric and, for one this lab computes, its scale or unit
/// (`rouge1 (0–1)`, `sacrebleu (0–100)`, `pred_words (words)`), so a word count is not read as
/// a score. A metric from elsewhere has no known unit.
pub fn y_axis_title(metric: &str) -> String {
    match crate::metrics::registry::info_of(metric) {
        Some(info) => format!("{metric} ({})", info.scale.replace('-', "–")),
        None => metric.to_string(),
    }
}

/// Font size of the figure's caption.
pub const CAPTION_SIZE: f64 = 24.0;

/// The caption `experiment — metric`, the experiment's name cut (ending in `…`) where the whole
/// would be wider than the figure: plotters centres it, so both ends were cut off, the
/// metric's name with them.
pub fn fitted_caption(experiment: &str, metric: &str) -> String {
    // The figure's width less its margins and a little air.
    let room = PLOT_SIZE.0 - 2 * 18 - 24;
    let font = FontDesc::from((FAMILY, CAPTION_SIZE));
    // Without the bundled font there is nothing to measure by; the caption is drawn as it is.
    let fits = |text: &str| font.box_size(text).map_or(true, |(w, _)| w <= room);
    let whole = format!("{experiment} — {metric}");
    if fits(&whole) {
        return whole;
    }
    let mut name: Vec<char> = experiment.chars().collect();
    while name.pop().is_some() {
        let cut = format!("{}… — {metric}", name.iter().collect::<String>());
        if fits(&cut) || name.is_empty() {
            return cut;
        }
    }
    whole
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_legend_labels_are_cut() {
        assert_eq!(legend_label("random"), "random");
        let long = format!("a_very_long_strategy_name_{}", "x".repeat(120));
        let cut = legend_label(&long);
        assert_eq!(cut.chars().count(), 40);
        assert!(cut.ends_with('…') && cut.starts_with("a_very_long_strategy_name_xxx"));
        assert_eq!(legend_label(&"y".repeat(40)), "y".repeat(40));
    }

    #[test]
    fn a_long_reference_name_keeps_its_mark_and_seed_count() {
        let long = format!("random_baseline_{}", "x".repeat(60));
        let entry = legend_entry(&long, true, Some(3));
        assert!(entry.starts_with(&legend_label(&long)), "{entry}");
        assert!(entry.ends_with("… (reference, 3 seeds)"), "{entry}");
        assert_eq!(legend_entry("mnlp", false, Some(1)), "mnlp (1 seed)");
        assert_eq!(legend_entry("random", true, None), "random (reference)");
        assert_eq!(legend_entry("bald", false, None), "bald");
    }

    #[test]
    fn a_long_experiment_name_is_cut_so_the_caption_fits_with_its_metric() {
        crate::report::font::register_bundled_font().unwrap();
        assert_eq!(
            fitted_caption("quickstart", "rouge1"),
            "quickstart — rouge1"
        );
        let long = "aeslc_smollm2_135m_instruct_lora_r16_alpha32_init10_query10_five_seeds_v2";
        let caption = fitted_caption(long, "rougeLsum");
        assert!(caption.ends_with("… — rougeLsum"), "{caption}");
        let kept = caption.trim_end_matches("… — rougeLsum");
        assert!(long.starts_with(kept) && kept.len() > 30, "{caption}");
        let font = FontDesc::from((FAMILY, CAPTION_SIZE));
        let (width, _) = font.box_size(&caption).unwrap();
        assert!(width <= PLOT_SIZE.0 - 36, "{caption}: {width} px");
    }

    #[test]
    fn the_y_axis_names_each_metric_scale_or_unit() {
        assert_eq!(y_axis_title("rouge1"), "rouge1 (0–1)");
        assert_eq!(y_axis_title("sacrebleu"), "sacrebleu (0–100)");
        assert_eq!(y_axis_title("llm_judge"), "llm_judge (1–5)");
        assert_eq!(y_axis_title("pred_words"), "pred_words (words)");
        assert_eq!(y_axis_title("eval_loss"), "eval_loss");
    }

    #[test]
    fn cost_ticks_of_a_cheap_labeller_are_told_apart() {
        // Five queries at about a tenth of a cent each: plotters ticks this every $0.00005.
        let span = 0.000_52;
        let ticks: Vec<f64> = (4..=14).map(|i| i as f64 * 0.000_05).collect();
        let labels: Vec<String> = ticks
            .iter()
            .map(|&v| x_tick_label(v, XAxis::Cost, span))
            .collect();
        assert_eq!(labels[0], "0.00020");
        for (label, v) in labels.iter().zip(&ticks) {
            let back: f64 = label.parse().unwrap();
            assert!((back - v).abs() < 0.000_005, "{label} for {v}");
        }
        // Dollars keep their cents, and a flat axis still prints.
        assert_eq!(x_tick_label(12.5, XAxis::Cost, 40.0), "12.50");
        assert_eq!(x_tick_label(0.3, XAxis::Cost, 0.0), "0.30");
        assert_eq!(x_tick_label(20.0, XAxis::Labeled, 30.0), "20");
        assert_eq!(x_tick_label(12.5, XAxis::Labeled, 30.0), "12.5");
    }
}
