fn main() -> std::process::ExitCode {
    openhearing::cli::main()
}
