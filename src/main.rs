//! `lab` — the command-line front of atgen-lab. All work happens in the library.
fn main() {
    atgen_lab::tune_allocator();
    std::process::exit(atgen_lab::cli::main());
}
