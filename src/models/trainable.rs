//! The seam between a model and the training loop: the loop only needs the trainable
//! parameters (with their PEFT names) and a differentiable forward pass.
use candle_core::{Result, Tensor, Var};

pub trait TrainableModel {
    /// Trainable tensors with PEFT-compatible names, e.g.
    /// `base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight`. Sorted by name so
    /// optimiser state and saved files are deterministic.
    fn trainable_vars(&self) -> Vec<(String, Var)>;

    /// Logits `[batch, seq, vocab]` for left-padded `input_ids` `[batch, seq]` (u32) with
    /// `attention_mask` `[batch, seq]` (1 = token, 0 = padding). `train = true` enables
    /// dropout, driven by `dropout_seed` so training is deterministic.
    fn forward_train(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        train: bool,
        dropout_seed: u64,
    ) -> Result<Tensor>;

    /// Logits `[n, vocab]` at the flat positions `rows` (`[n]` u32, `row * seq + t`) only.
    /// The loss reads few positions and the LM head is the largest matmul, so models should
    /// apply it to just these rows; this default computes every logit, then selects.
    fn forward_train_rows(
        &self,
        input_ids: &Tensor,
        attention_mask: &Tensor,
        rows: &Tensor,
        train: bool,
        dropout_seed: u64,
    ) -> Result<Tensor> {
        let logits = self.forward_train(input_ids, attention_mask, train, dropout_seed)?;
        let (b, s, vocab) = logits.dims3()?;
        logits.reshape((b * s, vocab))?.index_select(rows, 0)
    }
}
