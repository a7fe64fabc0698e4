//! The model host: our candle decoder with LoRA, generation, scoring, training, the sentence
//! encoder, and the set-up step that fetches default models.
pub mod bert;
pub mod cache;
pub mod encoder;
pub mod optim;
pub mod schedule;
pub mod setup;
pub mod train;
pub mod chat;
pub mod decoder;
pub mod decoder_config;
pub mod generate;
pub mod gguf;
pub mod lm;
pub mod loader;
pub mod lora;
pub mod rope;
pub mod score;
pub mod tokenizer;
pub mod trainable;
