//! The model host: our candle decoder with LoRA, generation, scoring, training, the sentence
//! encoder, and the set-up step that fetches default models.
pub mod bert;
pub mod cache;
pub mod encoder;
pub mod optim;
pub mod schedule;
pub mod setup;
pub mod train;
pub mod trainable;
pub mod wheels;
