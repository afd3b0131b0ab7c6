//! Build script: puts the commit into `tabula --version` (`TABULA_COMMIT`), read from
//! `git rev-parse --short HEAD`, or "unknown" when there is no git or no repository (a
//! source tarball). Must stay cheap: it reruns only when HEAD, the branch it names or the packed refs change
//! (a missing file named to cargo would rerun it on every build).

use std::process::Command;

fn main() {
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=TABULA_COMMIT={commit}");
    // Rerun when the checked-out commit changes: HEAD itself, the branch it names, or
    // packed refs (paths from git, so worktrees work too).
    let git_path = |p: &str| {
        Command::new("git")
            .args(["rev-parse", "--git-path", p])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
    };
    if let Some(head) = git_path("HEAD") {
        println!("cargo:rerun-if-changed={head}");
        if let Ok(text) = std::fs::read_to_string(&head)
            && let Some(r) = text.trim().strip_prefix("ref: ")
            && let Some(branch) = git_path(r)
            && std::path::Path::new(&branch).exists()
        {
            println!("cargo:rerun-if-changed={branch}");
        }
        if let Some(packed) = git_path("packed-refs")
            && std::path::Path::new(&packed).exists()
        {
            println!("cargo:rerun-if-changed={packed}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
