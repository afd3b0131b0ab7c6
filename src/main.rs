//! The `tabula` binary: everything lives in the library; see `tabula::cli`.

fn main() -> std::process::ExitCode {
    tabula::cli::main()
}
