//! The first iteration's fine-tuning and evaluation, shared between the cells of one
//! experiment that can only compute the same thing.
//!
//! At iteration 0 every cell starts from the same base model and a fresh adapter initialised
//! from its seed; the trained adapter and the test-set evaluation are then a function of the
//! seed and the labeled examples (ids, in order, with the labels the labeller returned). Every
//! strategy that does not pick its own initial set draws that set from the seed alone, so in
//! a benchmark of `S` such strategies the first iteration of each seed would be trained and
//! evaluated `S` times to the same bits. The first cell to finish it keeps its adapter and
//! evaluation here; a later cell whose key matches takes them instead of recomputing.
//!
//! The key holds everything iteration 0 depends on that can differ between cells of one
//! experiment (the rest — model, training and evaluation settings, test set — is the
//! experiment's own), so a match is the same computation, not an approximation: a cell whose
//! initial set or labels differ (a strategy choosing its initial set, a labeller answering
//! differently) simply does not match. Later iterations start from different adapters and are
//! never shared. The memo lives in memory for one `lab run`/`lab bench` process; separate
//! shards each compute their own.
use crate::data::Example;
use crate::models::lm::LanguageModel;
use crate::models::trainable::TrainableModel;
use crate::runner::evaluate::Evaluation;
use anyhow::{Context, Result};
use candle_core::Tensor;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What iteration 0 depends on beyond the experiment's settings.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FirstIterationKey {
    seed: u64,
    /// (id, label) of every labeled example, in the order training sees them.
    labeled: Vec<(u64, String)>,
}

impl FirstIterationKey {
    pub fn new(seed: u64, labeled: &[Example]) -> Self {
        Self {
            seed,
            labeled: labeled.iter().map(|e| (e.id, e.output.clone())).collect(),
        }
    }
}

/// A finished iteration 0: the trained adapter's tensors and the evaluation of it.
pub struct FirstIteration {
    /// `strategy/seed-N` of the cell that computed it (for the profile line).
    pub computed_by: String,
    adapter: Vec<(String, Tensor)>,
    pub evaluation: Evaluation,
    /// Seconds the computing cell spent fine-tuning and evaluating.
    pub seconds: f64,
}

impl FirstIteration {
    /// Copies the model's adapter (the variables are updated in place by later training, so
    /// the tensors are copied, not shared).
    pub fn capture(
        computed_by: String,
        model: &LanguageModel,
        evaluation: &Evaluation,
        seconds: f64,
    ) -> Result<Self> {
        let adapter = model
            .trainable_vars()
            .into_iter()
            .map(|(name, var)| Ok((name, var.as_tensor().copy()?)))
            .collect::<candle_core::Result<Vec<_>>>()
            .context("copying the first iteration's adapter")?;
        Ok(Self {
            computed_by,
            adapter,
            evaluation: evaluation.clone(),
            seconds,
        })
    }

    /// Sets the model's adapter to the captured one. The model must carry an adapter of the
    /// same layout (the experiment's LoRA settings), which every cell of the experiment does.
    pub fn restore_into(&self, model: &LanguageModel) -> Result<()> {
        let vars = model.trainable_vars();
        if vars.len() != self.adapter.len() {
            anyhow::bail!(
                "internal error: the shared first iteration has {} adapter tensors, the cell's \
                 model {}",
                self.adapter.len(),
                vars.len()
            );
        }
        for ((name, var), (captured_name, tensor)) in vars.iter().zip(&self.adapter) {
            if name != captured_name || var.dims() != tensor.dims() {
                anyhow::bail!(
                    "internal error: adapter tensor `{name}` {:?} does not match the shared \
                     first iteration's `{captured_name}` {:?}",
                    var.dims(),
                    tensor.dims()
                );
            }
            var.set(tensor)?;
        }
        Ok(())
    }
}

/// The first iterations computed so far in this process, by key.
#[derive(Default)]
pub struct FirstIterations {
    done: Mutex<HashMap<FirstIterationKey, Arc<FirstIteration>>>,
}

impl FirstIterations {
    pub fn get(&self, key: &FirstIterationKey) -> Option<Arc<FirstIteration>> {
        self.done
            .lock()
            .expect("first-iteration lock")
            .get(key)
            .cloned()
    }

    /// Keeps `first` unless one is already stored under `key` (both are the same computation).
    pub fn insert(&self, key: FirstIterationKey, first: FirstIteration) {
        self.done
            .lock()
            .expect("first-iteration lock")
            .entry(key)
            .or_insert_with(|| Arc::new(first));
    }

    /// How many are kept (the tests' view of the memo).
    #[cfg(test)]
    fn len(&self) -> usize {
        self.done.lock().expect("first-iteration lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::decoder_config::Family;
    use crate::models::lm::LoraSettings;

    fn example(id: u64, output: &str) -> Example {
        Example {
            id,
            input: format!("input {id}"),
            output: output.to_string(),
            references: vec![output.to_string()],
        }
    }

    fn model_with_adapter(seed: u64) -> LanguageModel {
        let mut lm = LanguageModel::tiny_random(0, Family::Llama).unwrap();
        lm.attach_lora(&LoraSettings {
            r: 2,
            alpha: 4.0,
            seed,
            ..Default::default()
        })
        .unwrap();
        lm
    }

    fn evaluation() -> Evaluation {
        Evaluation {
            scores: vec![("rouge1".into(), 0.25)],
            records: vec![],
            seconds: 1.5,
        }
    }

    fn adapter_values(lm: &LanguageModel) -> Vec<Vec<f32>> {
        lm.trainable_vars()
            .iter()
            .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    }

    #[test]
    fn the_key_separates_seeds_labels_and_order() {
        let a = [example(1, "x"), example(2, "y")];
        let key = FirstIterationKey::new(0, &a);
        assert_eq!(key, FirstIterationKey::new(0, &a));
        assert_ne!(key, FirstIterationKey::new(1, &a));
        assert_ne!(
            key,
            FirstIterationKey::new(0, &[example(1, "x"), example(2, "z")])
        );
        assert_ne!(
            key,
            FirstIterationKey::new(0, &[example(2, "y"), example(1, "x")])
        );
    }

    #[test]
    fn a_restored_adapter_equals_the_captured_one_even_after_the_source_changes() -> Result<()> {
        let source = model_with_adapter(3);
        let captured =
            FirstIteration::capture("random/seed-0".into(), &source, &evaluation(), 2.0)?;
        let before = adapter_values(&source);
        // Training updates the variables in place: the capture must not follow them.
        for (_, var) in source.trainable_vars() {
            var.set(&(var.as_tensor() + 1.0)?)?;
        }
        let target = model_with_adapter(9);
        assert_ne!(adapter_values(&target), before);
        captured.restore_into(&target)?;
        assert_eq!(adapter_values(&target), before);
        assert_eq!(captured.evaluation.scores, evaluation().scores);
        Ok(())
    }

    #[test]
    fn a_different_adapter_layout_is_refused() -> Result<()> {
        let captured = FirstIteration::capture(
            "a/seed-0".into(),
            &model_with_adapter(0),
            &evaluation(),
            1.0,
        )?;
        let mut other = LanguageModel::tiny_random(0, Family::Llama)?;
        other.attach_lora(&LoraSettings {
            r: 4,
            ..Default::default()
        })?;
        let err = captured.restore_into(&other).unwrap_err().to_string();
        assert!(err.contains("does not match"), "{err}");
        Ok(())
    }

    #[test]
    fn the_first_stored_computation_is_kept() -> Result<()> {
        let memo = FirstIterations::default();
        let key = FirstIterationKey::new(0, &[example(1, "x")]);
        assert!(memo.get(&key).is_none());
        let lm = model_with_adapter(0);
        memo.insert(
            key.clone(),
            FirstIteration::capture("a".into(), &lm, &evaluation(), 1.0)?,
        );
        memo.insert(
            key.clone(),
            FirstIteration::capture("b".into(), &lm, &evaluation(), 1.0)?,
        );
        assert_eq!(memo.len(), 1);
        assert_eq!(memo.get(&key).unwrap().computed_by, "a");
        Ok(())
    }
}
