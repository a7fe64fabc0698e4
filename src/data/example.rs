//! The unit every module passes around: one input with its gold output and references.
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Example {
    /// Stable id: the row index of the example in its split file. Strategies return these ids
    /// (never positions in a subsampled pool), so they survive subsampling and resume.
    pub id: u64,
    pub input: String,
    /// Gold output: the training target and what the golden labeller returns.
    pub output: String,
    /// Evaluation references (the output first, then any extra references). Never empty.
    pub references: Vec<String>,
}
