//! `wattson completions SHELL` (shell completions on stdout) and the hidden
//! `wattson man DIR` (a man page per command, for packages).

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};

use super::{Cli, Failure};

/// Arguments of `wattson completions`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  wattson completions bash > /etc/bash_completion.d/wattson
  wattson completions zsh > \"${fpath[1]}/_wattson\"
  wattson completions fish > ~/.config/fish/completions/wattson.fish")]
pub struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

/// Arguments of `wattson man`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Where to write `wattson.1`, `wattson-extract.1`, …
    dir: PathBuf,
}

/// Prints the completions of every command for a shell.
pub fn completions(args: CompletionsArgs) -> Result<(), Failure> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "wattson", &mut std::io::stdout());
    Ok(())
}

/// Writes a man page per command into a directory.
pub fn man(args: ManArgs) -> Result<(), Failure> {
    std::fs::create_dir_all(&args.dir).map_err(|e| Failure::new(1, e))?;
    write_pages(&Cli::command(), "wattson", &args.dir).map_err(|e| {
        Failure::new(
            1,
            anyhow::anyhow!("cannot write man pages into {}: {e}", args.dir.display()),
        )
    })
}

fn write_pages(command: &clap::Command, name: &str, dir: &Path) -> std::io::Result<()> {
    let command = command.clone().name(name.to_owned());
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    std::fs::write(dir.join(format!("{name}.1")), page)?;
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
