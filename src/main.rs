//! The `sonde` binary: parse arguments, run, map errors to exit codes.

fn main() {
    std::process::exit(sonde::cli::main(std::env::args_os().collect()));
}
