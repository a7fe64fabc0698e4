//! Selection strategies: the Rhai engine, the host API, native kernels.
//!
//! A strategy is a script `strategies/NAME.rhai` defining `const KIND` and `fn select(ctx, k)`;
//! `engine::select` runs it in a sandbox against a `StrategyHost` and validates the answer.
pub mod access_hints;
pub mod cli;
pub mod context;
pub mod engine;
pub mod experiment_scripts;
pub mod fake_host;
pub mod fn_hints;
pub mod host;
pub mod kernel_api;
pub mod kernels;
pub mod map_watch;
pub mod matrix;
pub mod matrix_methods;
pub mod params_read;
pub mod registry;
pub mod sandbox;
pub mod script_errors;
pub mod script_values;
pub mod select_call;
pub mod silent_loops;
pub mod spelling;
pub mod text;
pub mod types;
pub mod validate;

pub use context::{Memory, Remembered, SelectionContext};
pub use engine::{select, SelectTiming, Selection};
pub use host::{CachingHost, EmbedModel, GenOpts, GenerationRecord, Generations, StrategyHost};
pub use matrix::Matrix;
pub use sandbox::SandboxLimits;
