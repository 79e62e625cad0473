//! The `wattson` command.

fn main() -> std::process::ExitCode {
    wattson::cli::main()
}
