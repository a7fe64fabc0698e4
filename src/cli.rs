//! Command-line interface. Each subcommand's arguments and behaviour live in the module that
//! owns the work; this file only lists them and dispatches.
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "lab",
    version,
    about = "atgen-lab: active learning for text generation",
    long_about = "atgen-lab runs active-learning experiments for text generation.\n\n\
Selection strategies are Rhai scripts in strategies/; experiments are TOML files in experiments/.\n\
Typical use:\n  lab setup                              fetch the default models\n  lab check experiments/quickstart.toml  validate an experiment file\n  lab bench experiments/quickstart.toml  run it and write results/quickstart/report.md"
)]
pub struct Cli {
    /// Print debug logs to stderr.
    #[arg(long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show where the lab keeps models (set LAB_MODELS to move them).
    Paths,
    /// Try a language model by hand: info, generate, score.
    Model(crate::models::model_cli::ModelArgs),
}

/// Parse the command line, run, print an error chain as advice, return the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if cli.verbose {
        std::env::set_var("LAB_VERBOSE", "1");
    }
    match dispatch(cli.command) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            1
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Paths => {
            println!("models: {}", crate::models::cache::models_dir().display());
            Ok(())
        }
        Command::Model(args) => crate::models::model_cli::run(args),
    }
}
