//! `filegate`: the one binary. It reads the configuration, wires the adapters to the use cases,
//! and runs a subcommand: `serve`, `migrate`, `keys create|revoke`, `openapi`. This is the only
//! crate that names concrete adapters.

mod config;
mod metrics_page;
mod startup;
mod telemetry;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use uuid::Uuid;

use crate::config::Settings;

#[derive(Debug, Parser)]
#[command(
    name = "filegate",
    version,
    about = "Chunked file uploads into Azure Blob Storage"
)]
struct Cli {
    /// A TOML configuration file; `FILEGATE_*` environment variables override it.
    #[arg(long, global = true, env = "FILEGATE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP API (runs pending migrations first unless disabled).
    Serve,
    /// Apply the embedded database migrations and exit.
    Migrate,
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the OpenAPI spec (JSON) to stdout.
    Openapi,
    /// Upload a file to a running service: chunked, parallel, resumable.
    Upload(UploadArgs),
    /// Consume media tasks from RabbitMQ and send their files to Meta.
    Worker,
    /// Hold the metadata against the blob store: records without bytes (or of another size),
    /// bytes without records and staging without an upload (both older than an hour), files
    /// without a checksum. One line per finding; exits 1 while an inconsistency is left.
    Check {
        /// Fix what is safe to fix: remove the bytes and staging nobody answers for, fill in
        /// missing checksums. A record without bytes is only reported.
        #[arg(long)]
        repair: bool,
    },
}

#[derive(Debug, clap::Args)]
struct UploadArgs {
    /// The file to upload.
    file: PathBuf,
    /// What the file is for: Firm, Profile, Contact, Message, Template or Import.
    #[arg(long)]
    mode: String,
    /// The service's base URL.
    #[arg(long, env = "FILEGATE_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    /// The API key (`X-API-Key`).
    #[arg(long, env = "FILEGATE_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Bytes per chunk.
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    chunk_size: u64,
    /// Chunks in flight at once (after block 0).
    #[arg(long, default_value_t = 4)]
    parallel: usize,
    /// Resume an interrupted upload: sends only the blocks the service is missing.
    #[arg(long, value_name = "FILE_ID")]
    resume: Option<Uuid>,
    /// Tries per chunk before giving up (with exponential back-off).
    #[arg(long, default_value_t = 5)]
    tries: u32,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key for a firm and user; the key is printed once, alone on the last line.
    Create {
        #[arg(long)]
        firm: Uuid,
        #[arg(long)]
        user: Uuid,
    },
    /// Revoke a key by its id (printed at creation).
    Revoke { key_id: Uuid },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("filegate: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let service = match cli.command {
        Command::Serve => "filegate",
        Command::Worker => "filegate-worker",
        _ => "filegate-cli",
    };
    let tracing = telemetry::init(&settings.log, &settings.telemetry, service);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("filegate: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // A long-running service also logs its fatal error, for log pipelines; a one-shot command
    // just tells the person who ran it.
    let is_service = matches!(cli.command, Command::Serve | Command::Worker);
    let code = match runtime.block_on(run(cli.command, settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if is_service {
                tracing::error!(error = format!("{e:#}"), "filegate failed");
            }
            eprintln!("filegate: {e:#}");
            ExitCode::FAILURE
        }
    };
    // After a graceful stop (SIGTERM included): the spans still buffered go out now.
    if let Some(tracing) = tracing {
        tracing.shutdown();
    }
    code
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    match command {
        Command::Serve => startup::serve(settings).await,
        Command::Migrate => startup::migrate(&settings).await,
        Command::Keys {
            command: KeysCommand::Create { firm, user },
        } => {
            let created = startup::create_key(&settings, firm, user).await?;
            println!("key id: {}", created.id);
            println!("firm: {firm}  user: {user}");
            println!("The key is shown once; store it now:");
            println!("{}", created.secret);
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Revoke { key_id },
        } => {
            startup::revoke_key(&settings, key_id).await?;
            println!("revoked {key_id}");
            Ok(())
        }
        Command::Upload(args) => upload(args).await,
        Command::Worker => startup::worker(settings).await,
        Command::Check { repair } => {
            let report = startup::check(&settings, repair).await?;
            for finding in &report.findings {
                let fixed = if report.repaired.contains(finding) {
                    " (repaired)"
                } else {
                    ""
                };
                println!("{finding}{fixed}");
            }
            let left = report.unresolved().count();
            println!(
                "checked: {} findings, {} repaired, {left} inconsistencies left",
                report.findings.len(),
                report.repaired.len()
            );
            if left > 0 {
                anyhow::bail!(
                    "{left} inconsistencies left{}",
                    if repair {
                        ""
                    } else {
                        " (--repair fixes what is safe to fix)"
                    }
                );
            }
            Ok(())
        }
        Command::Openapi => {
            let mut out = std::io::stdout().lock();
            match writeln!(out, "{}", startup::openapi(&settings)) {
                // A reader that stops early (`| head`) is not an error.
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
                _ => Ok(()),
            }
        }
    }
}

async fn upload(args: UploadArgs) -> anyhow::Result<()> {
    let options = filegate_uploader::UploadOptions {
        file: args.file,
        mode: args.mode,
        server: args.server,
        api_key: args.api_key,
        chunk_size: args.chunk_size,
        parallel: args.parallel,
        resume: args.resume,
        max_tries: args.tries,
        progress: !args.json,
    };
    match filegate_uploader::upload(options).await {
        Ok(done) => {
            if args.json {
                let line = serde_json::json!({
                    "fileId": done.file_id,
                    "url": done.url,
                    "size": done.size,
                    "totalBlocks": done.total_blocks,
                    "sentBlocks": done.sent_blocks,
                    "sha256": done.sha256,
                    "verified": done.verified,
                });
                println!("{line}");
            } else {
                println!("fileId: {}", done.file_id);
                println!("url:    {}", done.url.as_deref().unwrap_or("-"));
                println!("sha256: {}", done.sha256);
                if !done.verified {
                    eprintln!(
                        "filegate: the service had not computed the file's checksum yet; it was not compared"
                    );
                }
            }
            Ok(())
        }
        Err(e) => {
            if let Some(id) = e.resumable() {
                eprintln!("filegate: the upload can be resumed with --resume {id}");
            }
            Err(e.into())
        }
    }
}
