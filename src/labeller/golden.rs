//! The golden labeller: returns each example's dataset output, at no cost. This is the
//! simulated active learning of the paper; it is exact and instantaneous.
use crate::data::Example;
use crate::labeller::{Label, LabelOutcome, Labeller};
use anyhow::{bail, Result};

#[derive(Clone, Debug, Default)]
pub struct GoldenLabeller;

impl GoldenLabeller {
    pub fn new() -> Self {
        GoldenLabeller
    }
}

impl Labeller for GoldenLabeller {
    fn name(&self) -> String {
        "golden".to_string()
    }

    fn label(&mut self, items: &[Example], _few_shot: &[Example]) -> Result<LabelOutcome> {
        if let Some(empty) = items.iter().find(|e| e.output.trim().is_empty()) {
            bail!(
                "example id {} has an empty output in the dataset, so the golden labeller has \
                 nothing to train on; check data.output_field or drop such rows \
                 (data.on_bad_row = \"skip\")",
                empty.id
            );
        }
        Ok(LabelOutcome::Complete(
            items
                .iter()
                .map(|e| Label {
                    id: e.id,
                    output: e.output.clone(),
                    cost: 0.0,
                    input_tokens: 0,
                    output_tokens: 0,
                    seconds: 0.0,
                    edits: 0,
                })
                .collect(),
        ))
    }

    fn spent(&self) -> f64 {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(id: u64, output: &str) -> Example {
        Example {
            id,
            input: format!("input {id}"),
            output: output.to_string(),
            references: vec![output.to_string(), "other".to_string()],
        }
    }

    #[test]
    fn returns_dataset_outputs_in_order_for_free() {
        let mut g = GoldenLabeller::new();
        let items = [example(42, "Meeting moved"), example(7, "Budget Q3")];
        let out = g
            .label(&items, &[example(1, "few-shot is ignored")])
            .unwrap();
        let LabelOutcome::Complete(labels) = out else {
            panic!("golden labels never hit a budget");
        };
        assert_eq!(
            labels
                .iter()
                .map(|l| (l.id, l.output.as_str()))
                .collect::<Vec<_>>(),
            [(42, "Meeting moved"), (7, "Budget Q3")]
        );
        assert!(labels.iter().all(|l| l.cost == 0.0 && l.input_tokens == 0));
        assert_eq!(g.spent(), 0.0);
        assert_eq!(g.name(), "golden");
        assert_eq!(g.label(&[], &[]).unwrap(), LabelOutcome::Complete(vec![]));
    }

    #[test]
    fn empty_output_is_an_error_naming_the_id() {
        let mut g = GoldenLabeller::new();
        let err = g
            .label(&[example(1, "ok"), example(9, "  ")], &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("example id 9"), "{err}");
    }
}
