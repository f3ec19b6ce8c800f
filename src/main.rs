#![forbid(unsafe_code)]
fn main() -> std::process::ExitCode {
    openhearing::cli::main()
}
