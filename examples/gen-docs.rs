//! Writes the man pages of `tandemd` and `tandemctl` and their bash/zsh completions
//! from the clap definitions in `tandem::cli`, so the packaged docs match the programs.
//!
//! `cargo run --example gen-docs -- [MAN_DIR] [COMPLETIONS_DIR]`
//! (defaults: `docs/man`, `packaging/completions`). The output is committed; CI
//! regenerates it and fails when it differs, so a changed flag cannot ship stale docs.
//! `tandem.yaml.5` is hand-written and not touched here.

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use tandem::cli::{TandemctlArgs, TandemdArgs};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args_os().skip(1);
    let man_dir = PathBuf::from(args.next().unwrap_or_else(|| "docs/man".into()));
    let completions_dir = PathBuf::from(
        args.next()
            .unwrap_or_else(|| "packaging/completions".into()),
    );
    std::fs::create_dir_all(&man_dir).with_context(|| man_dir.display().to_string())?;
    std::fs::create_dir_all(&completions_dir)
        .with_context(|| completions_dir.display().to_string())?;

    // Section 8: both are administration programs run as root.
    write_man(&man_dir, TandemdArgs::command(), "8")?;
    write_man(&man_dir, TandemctlArgs::command(), "8")?;

    for (cmd, name) in [
        (TandemdArgs::command(), "tandemd"),
        (TandemctlArgs::command(), "tandemctl"),
    ] {
        write_completion(&completions_dir, cmd.clone(), name, Shell::Bash, name)?;
        write_completion(&completions_dir, cmd, name, Shell::Zsh, &format!("_{name}"))?;
    }
    Ok(())
}

/// Writes `NAME.SECTION` for the command and one page per subcommand
/// (`tandemctl-config-check.8`), the pages the parent's SUBCOMMANDS section points to.
fn write_man(dir: &Path, cmd: clap::Command, section: &str) -> anyhow::Result<()> {
    let mut cmd = cmd.disable_help_subcommand(true);
    // build() gives subcommands their display names ("tandemctl-config").
    cmd.build();
    write_man_tree(dir, &cmd, section)
}

fn write_man_tree(dir: &Path, cmd: &clap::Command, section: &str) -> anyhow::Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_man_tree(dir, sub, section)?;
    }
    let name = cmd
        .get_display_name()
        .unwrap_or_else(|| cmd.get_name())
        .to_string();
    // No date: the output must be reproducible so CI can compare it with the
    // committed copy.
    let man = clap_mangen::Man::new(cmd.clone())
        .section(section)
        .manual("tandem")
        .source(format!("tandem {}", env!("CARGO_PKG_VERSION")));
    let mut buf = Vec::new();
    man.render(&mut buf)?;
    let path = dir.join(format!("{name}.{section}"));
    std::fs::write(&path, buf).with_context(|| path.display().to_string())?;
    Ok(())
}

fn write_completion(
    dir: &Path,
    mut cmd: clap::Command,
    bin: &str,
    shell: Shell,
    file: &str,
) -> anyhow::Result<()> {
    let path = dir.join(shell.to_string()).join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| parent.display().to_string())?;
    }
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, bin, &mut buf);
    std::fs::write(&path, buf).with_context(|| path.display().to_string())?;
    Ok(())
}
