//! Evaluation metrics with parity to the reference implementations: exact match variants,
//! GSM8K answer accuracy, ROUGE (rouge-score 0.1.2 with NLTK's Porter stemmer), sacreBLEU 2.6,
//! embedding BERTScore and length statistics, reachable by name through [`registry`].
pub mod bertscore;
pub mod bleu;
pub mod command;
pub mod exact;
pub mod input;
pub mod lengths;
pub mod normalize;
pub mod porter;
pub mod registry;
pub mod rouge;
pub mod tokenize;

pub use bertscore::TokenEmbedder;
pub use bleu::{corpus_bleu, sentence_bleu};
pub use registry::{compute, is_known, names, MetricScores};
pub use tokenize::tokenize_words_stemmed;
