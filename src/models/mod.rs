//! The model host: our candle decoder with LoRA, generation, scoring, training, the sentence
//! encoder, and the set-up step that fetches default models.
pub mod cache;
pub mod trainable;
