//! The model host: our candle decoder with LoRA, generation, scoring, training, the sentence
//! encoder, and the set-up step that fetches default models.
pub mod bench_host;
mod bench_reference;
pub mod bench_summary;
pub mod bert;
pub mod cache;
pub mod chat;
pub mod cpu_gemm;
pub mod cpu_slice;
#[cfg(all(test, feature = "cuda"))]
mod cuda_tests;
pub mod decoder;
pub mod decoder_config;
pub mod decoding_weights;
pub mod device;
pub mod dropout;
pub mod encoder;
pub mod encoder_dense;
pub mod fast_exp;
pub mod fast_gelu;
pub mod frozen;
pub mod fused_attention;
pub mod fused_softmax;
pub mod fused_train;
pub mod generate;
pub mod gguf;
pub mod kv_cache;
#[cfg(test)]
mod last_positions_tests;
pub mod layer_norm;
pub mod lm;
pub mod loader;
pub mod lora;
pub mod model_cli;
pub mod optim;
pub mod packed_attention;
pub mod panel_gemm;
pub mod rope;
pub mod schedule;
pub mod scoped_copies;
pub mod score;
pub mod setup;
pub mod skinny_matmul;
pub mod tokenizer;
pub mod train;
pub mod trainable;
pub mod training_weights;
pub mod wheels;
