//! Thin entry point: parse flags, hand over to the library.
fn main() -> std::process::ExitCode {
    vouch::cli::main()
}
