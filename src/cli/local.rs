//! The commands that work on this machine without a running server: `admin-key`
//! and `audit verify` (straight on the database the configuration names), `archive`
//! (a recorded hearing's folder, through the recorder's own commands) and `config
//! check`.
//!
//! Commands that only inspect the database refuse to create it: a wrong `--config`
//! must say so, not answer from an empty new database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use uuid::Uuid;

use super::print::print_admin_keys;
use super::{AdminKeyArgs, AdminKeyCommand, ArchiveCommand, CliError};
use crate::auth::{admin_key_sha256, generate_admin_key};
use crate::config::Config;
use crate::store::{SqliteStore, Store};

/// `openhearing archive ...`: the recorder's own verify, info and render commands.
pub(super) fn run_archive(cmd: ArchiveCommand) -> ExitCode {
    use openhearing_recorder::cli as rc;
    let mut out = std::io::stdout();
    let code = match cmd {
        ArchiveCommand::Verify { dir, public_key } => {
            rc::verify_command(&dir, public_key.as_deref(), &mut out)
        }
        ArchiveCommand::Info { dir, public_key } => {
            rc::info_command(&dir, public_key.as_deref(), &mut out)
        }
        ArchiveCommand::Render {
            dir,
            output,
            width,
            height,
            health_strip,
        } => {
            let opts = openhearing_recorder::render::RenderOptions {
                width,
                height,
                health_strip,
                ..Default::default()
            };
            rc::render_command(&dir, &output, &opts, &mut out)
        }
    };
    ExitCode::from(code)
}

/// `openhearing admin-key create|list`.
pub(super) async fn run_admin_key(args: AdminKeyArgs) -> Result<(), CliError> {
    let config = Config::load(args.config.as_deref())?;
    match args.command {
        AdminKeyCommand::Create { name } => {
            // Creating the database is fine here: a key made before the first start
            // means the server generates none.
            let store = SqliteStore::open(&config.database_url()).await?;
            if store
                .list_admin_keys()
                .await?
                .iter()
                .any(|(n, _)| *n == name)
            {
                return Err(CliError::KeyNameTaken(name));
            }
            let key = generate_admin_key();
            store.add_admin_key(&name, &admin_key_sha256(&key)).await?;
            store.close().await;
            eprintln!(
                "admin API key `{name}` created; it is shown only now (the server keeps only its hash):"
            );
            println!("{key}");
            Ok(())
        }
        AdminKeyCommand::List { json } => {
            let store = open_existing_store(&config).await?;
            let keys = store.list_admin_keys().await?;
            store.close().await;
            print_admin_keys(&keys, config.auth.admin_api_key.is_some(), json)
        }
    }
}

/// `openhearing audit verify`: reads the chain straight from the database.
pub(super) async fn audit_verify(
    hearing: Uuid,
    config_path: Option<&Path>,
) -> Result<(), CliError> {
    let config = Config::load(config_path)?;
    let store = open_existing_store(&config).await?;
    let log = store.audit_log(hearing).await;
    store.close().await;
    let Some((entries, count, head)) = log? else {
        return Err(CliError::HearingNotFound {
            id: hearing,
            database: config.database_url(),
        });
    };
    match crate::audit::verify_chain(hearing, &entries, count, &head) {
        Ok(()) => {
            println!(
                "audit chain of hearing {hearing} intact: {} entries",
                entries.len()
            );
            Ok(())
        }
        Err(problem) => Err(CliError::AuditBroken {
            hearing,
            problem: problem.to_string(),
        }),
    }
}

/// `openhearing config check [FILE]`.
pub(super) fn config_check(file: Option<&Path>) -> ExitCode {
    match Config::load(file) {
        Ok(_) => {
            match file {
                Some(f) => println!("ok: {}", f.display()),
                None => println!("ok: built-in default configuration"),
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The SQLite file a `sqlite:` database URL names, if it is one.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or(rest);
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// Opens the configured database, which must exist already (commands that inspect
/// it must not create an empty one).
async fn open_existing_store(config: &Config) -> Result<SqliteStore, CliError> {
    let url = config.database_url();
    if let Some(path) = sqlite_path(&url) {
        if !path.exists() {
            return Err(CliError::NoDatabase { path });
        }
    }
    Ok(SqliteStore::open(&url).await?)
}
