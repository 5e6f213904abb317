//! `filegate-fake-meta`: the fake Meta as a process of its own, for local runs of the worker, a
//! container next to it, and tests that drive a fake in another process. It is a separate
//! binary, not a subcommand of `filegate`, so that test support never ships in the product.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use filegate_fake_meta::{DEFAULT_ACCESS_TOKEN, DEFAULT_API_VERSION, FakeMetaOptions};

#[derive(Debug, Parser)]
#[command(
    name = "filegate-fake-meta",
    version,
    about = "A fake of Meta's Graph API (uploads, media, messages, templates, fault injection) for local runs and tests"
)]
struct Cli {
    /// Address to listen on (port 0 picks a free one; the address is printed).
    #[arg(long, default_value = "127.0.0.1:8090")]
    addr: SocketAddr,
    /// The access token the fake accepts.
    #[arg(long, default_value = DEFAULT_ACCESS_TOKEN)]
    token: String,
    /// The Graph API version it serves.
    #[arg(long, default_value = DEFAULT_API_VERSION)]
    api_version: String,
    /// The only app id whose `/uploads` edge opens resumable uploads (default: any).
    #[arg(long)]
    app_id: Option<String>,
}

impl Cli {
    fn options(&self) -> FakeMetaOptions {
        FakeMetaOptions {
            api_version: self.api_version.clone(),
            access_token: self.token.clone(),
            app_id: self.app_id.clone(),
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let listener = match tokio::net::TcpListener::bind(cli.addr).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("filegate-fake-meta: cannot listen on {}: {e}", cli.addr);
            return ExitCode::FAILURE;
        }
    };
    // With port 0 only the bound listener knows the port, and a caller reads it from stdout.
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("filegate-fake-meta: cannot read the listening address: {e}");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = match shutdown_signal() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("filegate-fake-meta: cannot watch for Ctrl-C and SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = cli.options();
    println!("fake-meta token: {}", options.access_token);
    println!("fake-meta listening on http://{local}");
    match filegate_fake_meta::serve(listener, options, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("filegate-fake-meta: the server failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Watches for Ctrl-C or SIGTERM (a terminal stops the fake with one, a container with the
/// other) and resolves on the first. The handlers are installed here, before the address is
/// printed, so that a caller who saw the address can always stop the fake with SIGTERM.
#[cfg(unix)]
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {},
            _ = terminate.recv() => {},
        }
    })
}

/// Watches for Ctrl-C and resolves on it; a handler that cannot be installed never fires rather
/// than stopping the fake at once.
#[cfg(not(unix))]
fn shutdown_signal() -> io::Result<impl Future<Output = ()>> {
    Ok(async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn without_flags_the_fake_is_the_default_fake_on_port_8090() {
        let cli = Cli::try_parse_from(["filegate-fake-meta"]).unwrap();
        assert_eq!(cli.addr, "127.0.0.1:8090".parse::<SocketAddr>().unwrap());
        assert_eq!(cli.options(), FakeMetaOptions::default());
    }

    #[test]
    fn every_flag_reaches_the_fake_options() {
        let cli = Cli::try_parse_from([
            "filegate-fake-meta",
            "--addr",
            "0.0.0.0:0",
            "--token",
            "local-token",
            "--api-version",
            "v22.0",
            "--app-id",
            "1234",
        ])
        .unwrap();
        assert_eq!(cli.addr, "0.0.0.0:0".parse::<SocketAddr>().unwrap());
        assert_eq!(
            cli.options(),
            FakeMetaOptions {
                api_version: "v22.0".to_owned(),
                access_token: "local-token".to_owned(),
                app_id: Some("1234".to_owned()),
            }
        );
    }
}
