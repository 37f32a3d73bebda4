//! `guildhall serve`: starts the server with the embedded store.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use guildhall::{Config, Server};

/// mimalloc, with a heap of its own for the store's write buffers (`alloc.rs`).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: guildhall::alloc::Allocator = guildhall::alloc::Allocator;

#[derive(Parser)]
#[command(name = "guildhall", version, about = "A self-hosted chat server that speaks Discord's API")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (REST API and gateway on one address).
    Serve {
        /// TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen address (default 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<SocketAddr>,
        /// Data directory (default ./data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Public base URL clients use (default http://LISTEN).
        #[arg(long)]
        public_url: Option<String>,
    },
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let Command::Serve { config, listen, data_dir, public_url } = cli.command;
    let mut cfg = match Config::load(config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("guildhall: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    if let Some(l) = listen {
        cfg.listen = l;
    }
    if let Some(d) = data_dir {
        cfg.data_dir = d;
    }
    if let Some(u) = public_url {
        cfg.public_url = Some(u);
    }
    init_logging(&cfg.log_format);
    disable_transparent_huge_pages();
    // The allocator's exact count of the store's write buffers, for /metrics.
    #[cfg(feature = "mimalloc")]
    guildhall_store::heap::set_meter(guildhall::alloc::write_buffer_bytes);
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("guildhall: starting the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async move {
        let server = Server::bind(cfg).await?;
        server.run(shutdown_signal()).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("guildhall: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`; the
/// kernel also stops khugepaged from collapsing its memory). mimalloc asks for huge
/// pages on its arenas (`MADV_HUGEPAGE`), and with the kernel's default
/// `khugepaged/max_ptes_none` of 511 a 2 MiB range with one page in use is
/// collapsed into a whole resident huge page: freed memtable memory interleaved
/// with live objects came back as RSS minutes after a flush and stayed (soak bench:
/// huge pages 41 → 172 MiB in one minute, RSS − heap in use +22 MiB, kept). See
/// "Known trade-offs" in ARCHITECTURE.md.
fn disable_transparent_huge_pages() {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: PR_SET_THP_DISABLE takes integer arguments and touches no memory of ours.
        let rc = unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
        if rc != 0 {
            tracing::warn!(error = %std::io::Error::last_os_error(), "could not turn transparent huge pages off");
        }
    }
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}
