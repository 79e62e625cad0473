//! The WASI a plugin gets: only what Rust's std needs to link and print a
//! panic — `wasi:io` (streams, poll, error), `wasi:cli` (stdio into a bounded
//! buffer, an empty environment, exit) and `wasi:random`. No clocks (a plugin
//! cannot sleep past its time limit in host code, nor read the time), no
//! filesystem, no sockets: a component importing those fails to load with a
//! message naming the import.

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime_wasi::WasiView;
use wasmtime_wasi::cli::{WasiCli, WasiCliCtxView, WasiCliView};
use wasmtime_wasi::p2::bindings::{cli, random, sync};
use wasmtime_wasi::random::{WasiRandom, WasiRandomCtx, WasiRandomView};

use super::state::PluginState;

struct HasIo;

impl HasData for HasIo {
    type Data<'a> = &'a mut ResourceTable;
}

fn table(t: &mut PluginState) -> &mut ResourceTable {
    t.ctx().table
}

fn cli_view(t: &mut PluginState) -> WasiCliCtxView<'_> {
    t.cli()
}

fn random_view(t: &mut PluginState) -> &mut WasiRandomCtx {
    t.random()
}

/// Adds the granted WASI interfaces to `linker`.
pub(crate) fn add_to_linker(l: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    wasmtime_wasi_io::bindings::wasi::io::error::add_to_linker::<_, HasIo>(l, table)?;
    sync::io::poll::add_to_linker::<_, HasIo>(l, table)?;
    sync::io::streams::add_to_linker::<_, HasIo>(l, table)?;
    cli::exit::add_to_linker::<_, WasiCli>(l, cli_view)?;
    cli::environment::add_to_linker::<_, WasiCli>(l, cli_view)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, cli_view)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, cli_view)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, cli_view)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, cli_view)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, cli_view)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, cli_view)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, cli_view)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, cli_view)?;
    random::random::add_to_linker::<_, WasiRandom>(l, random_view)?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, random_view)?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, random_view)?;
    Ok(())
}
