//! Writes what the Debian package ships beside the binary, generated from the clap
//! definition so it can never drift from the CLI: a man page per command and subcommand
//! (`tabula.1.gz`, `tabula-pin.1.gz`, `tabula-pin-set.1.gz`, …, gzipped with no
//! timestamp so builds are reproducible) and bash and zsh completion scripts.
//!
//!     cargo run --example dist -- target/dist
//!
//! writes `target/dist/man/*.1.gz` and `target/dist/completions/{tabula.bash,_tabula}`
//! (the paths `[package.metadata.deb]` assets name). Not part of tabula; writes only under
//! the directory it is given.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use clap::CommandFactory as _;
use clap_complete::Shell;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "target/dist".into()),
    );
    let man = out.join("man");
    let completions = out.join("completions");
    for d in [&man, &completions] {
        if d.exists() {
            std::fs::remove_dir_all(d)?;
        }
        std::fs::create_dir_all(d)?;
    }
    let mut cmd = tabula::cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let pages = man_pages(&cmd, &man)?;
    for (shell, name) in [(Shell::Bash, "tabula.bash"), (Shell::Zsh, "_tabula")] {
        let mut f = std::fs::File::create(completions.join(name))?;
        clap_complete::generate(shell, &mut cmd.clone(), "tabula", &mut f);
    }
    println!(
        "{}: {pages} man pages, bash and zsh completions",
        out.display()
    );
    Ok(())
}

/// Renders `cmd` and every visible subcommand below it; returns how many pages.
fn man_pages(cmd: &clap::Command, dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        n += man_pages(sub, dir)?;
    }
    let page = clap_mangen::Man::new(cmd.clone())
        .manual("tabula manual")
        .source(format!("tabula {}", env!("CARGO_PKG_VERSION")));
    let mut roff = Vec::new();
    page.render(&mut roff)?;
    let file = std::fs::File::create(dir.join(format!("{}.gz", page.get_filename())))?;
    // No file name and mtime 0 in the gzip header: the same CLI gives the same bytes.
    let mut gz = flate2::GzBuilder::new()
        .mtime(0)
        .write(file, flate2::Compression::best());
    gz.write_all(&roff)?;
    gz.finish()?.sync_all()?;
    Ok(n + 1)
}
