//! `keel migrate` and `keel export`.
//!
//! An export copies the account's audit log row by row, verbatim, in `seq`
//! order: to a SQL store through `import_audit` (which re-hashes and links
//! every row and rebuilds the projections from the events in the same
//! transaction), or to a JSONL file (one row per line, checked the same way
//! while writing). So the target's chain is the source's chain, with the
//! same head hash; it verifies, and a SQL target's projections equal the
//! source's. Exporting again into a SQL target resumes where it stopped.

use crate::commands::Env;
use crate::error::{input, CliError};
use crate::stores::{self, Address, Backend};
use anyhow::Context;
use keel_store::{chain_hash, AuditRow, GENESIS_HASH};
use serde::Deserialize;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

/// Rows per page read from the source.
const PAGE: u32 = 2_000;

/// `keel migrate`: opens each account's store (which applies pending
/// migrations) and reports its schema version.
pub async fn migrate(envs: Vec<Env>) -> Result<(), CliError> {
    for env in envs {
        let backend = stores::open(&env.cfg).await?;
        let v = backend
            .schema_version()
            .await
            .context("reading the schema version")?;
        println!(
            "account {}: {} migrated (schema version {v})",
            env.cfg.account_id,
            stores::describe(&env.cfg)
        );
        backend.close().await;
    }
    Ok(())
}

/// One line of a JSONL export: an audit row exactly as stored.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    seq: u64,
    at: String,
    kind: String,
    event_id: String,
    payload: String,
    prev_hash: String,
    hash: String,
}

impl From<Line> for AuditRow {
    fn from(l: Line) -> Self {
        AuditRow {
            seq: l.seq,
            at: l.at,
            kind: l.kind,
            event_id: l.event_id,
            payload: l.payload,
            prev_hash: l.prev_hash,
            hash: l.hash,
        }
    }
}

/// Where the rows come from.
enum Source {
    Store(Backend, u64),
    Jsonl(PathBuf, std::io::Lines<BufReader<std::fs::File>>, usize),
}

impl Source {
    /// The next page of rows in `seq` order (empty at the end).
    async fn next_page(&mut self) -> Result<Vec<AuditRow>, CliError> {
        match self {
            Source::Store(b, after) => {
                let rows = b
                    .store()
                    .audit_page(*after, PAGE)
                    .await
                    .context("reading the source's audit log")?;
                if let Some(last) = rows.last() {
                    *after = last.seq;
                }
                Ok(rows)
            }
            Source::Jsonl(path, lines, lineno) => {
                let mut out = Vec::new();
                while out.len() < PAGE as usize {
                    let Some(line) = lines.next() else { break };
                    *lineno += 1;
                    let line = line.with_context(|| format!("reading {}", path.display()))?;
                    if line.trim().is_empty() {
                        continue;
                    }
                    let l: Line = serde_json::from_str(&line).map_err(|e| {
                        input(format!(
                            "{}: line {lineno}: not an audit row: {e}",
                            path.display()
                        ))
                    })?;
                    out.push(l.into());
                }
                Ok(out)
            }
        }
    }
}

/// `keel export --to ADDR [--from ADDR]` for the selected account.
pub async fn export(env: Env, from: Option<&str>, to: &str) -> Result<(), CliError> {
    let to = Address::parse("to", to)?;
    let from = from.map(|f| Address::parse("from", f)).transpose()?;
    let src_desc = match &from {
        Some(a) => a.describe(&env.cfg),
        None => stores::describe(&env.cfg),
    };
    let dst_desc = to.describe(&env.cfg);
    let mut source = match from {
        None => {
            if stores::missing(&env.cfg) {
                return Err(input(format!("{src_desc}: no keel state here to export")));
            }
            Source::Store(stores::open(&env.cfg).await?, 0)
        }
        Some(Address::Jsonl(p)) => {
            let f =
                std::fs::File::open(&p).map_err(|e| input(format!("--from = jsonl:{}: {e}", p.display())))?;
            Source::Jsonl(p, BufReader::new(f).lines(), 0)
        }
        Some(Address::Sqlite(p)) if !p.exists() => {
            return Err(input(format!("--from = sqlite:{}: no such file", p.display())));
        }
        Some(a) => match a.open(&env.cfg).await? {
            Some(b) => Source::Store(b, 0),
            None => unreachable!("only JSONL has no store"),
        },
    };
    let (events, head) = match &to {
        Address::Jsonl(path) => write_jsonl(&mut source, path).await?,
        _ => {
            let Some(dst) = to.open(&env.cfg).await? else {
                unreachable!("only JSONL has no store")
            };
            import(&mut source, &dst, &dst_desc).await?
        }
    };
    if let Source::Store(b, _) = &source {
        let src_head = b
            .store()
            .audit_head()
            .await
            .context("reading the source's head")?;
        if src_head != (events, head.clone()) {
            return Err(CliError::Runtime(anyhow::anyhow!(
                "after the export the source ends at seq {} but the target at seq {events}: \
                 the source moved during the export (run it again) or the target holds a longer log",
                src_head.0
            )));
        }
    }
    println!("exported {events} events from {src_desc} to {dst_desc}; chain verified, head {head}");
    Ok(())
}

/// Imports every source page into `dst`, then verifies its chain and
/// compares its projections with a SQL source's.
async fn import(source: &mut Source, dst: &Backend, dst_desc: &str) -> Result<(u64, String), CliError> {
    loop {
        let page = source.next_page().await?;
        if page.is_empty() {
            break;
        }
        dst.import_audit(&page)
            .await
            .with_context(|| format!("importing into {dst_desc}"))?;
    }
    let report = dst
        .store()
        .verify_chain()
        .await
        .with_context(|| format!("verifying {dst_desc}"))?;
    if let Some((seq, why)) = report.first_bad {
        return Err(CliError::Runtime(anyhow::anyhow!(
            "{dst_desc}: audit chain broken at sequence {seq} after the import: {why}"
        )));
    }
    if let Source::Store(src, _) = source {
        let a = src
            .dump_projections()
            .await
            .context("reading the source's projections")?;
        let b = dst
            .dump_projections()
            .await
            .context("reading the target's projections")?;
        if a != b {
            let table = a
                .iter()
                .zip(&b)
                .find(|(x, y)| x != y)
                .map(|(x, _)| x.0.clone())
                .unwrap_or_default();
            return Err(CliError::Runtime(anyhow::anyhow!(
                "{dst_desc}: projections differ from the source's (first in table {table}); \
                 the source's projections may need a rebuild"
            )));
        }
    }
    let (seq, hash) = dst
        .store()
        .audit_head()
        .await
        .context("reading the target's head")?;
    Ok((seq, hash))
}

/// Writes every source row to `path` as JSON lines, checking each row's
/// link and hash on the way (a broken source is not exported). Written to a
/// temporary file, synced, then renamed into place.
async fn write_jsonl(source: &mut Source, path: &Path) -> Result<(u64, String), CliError> {
    if path.exists() {
        return Err(input(format!(
            "--to = jsonl:{}: already exists; not overwriting",
            path.display()
        )));
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = BufWriter::new(file);
    let mut seq = 0u64;
    let mut prev = GENESIS_HASH.to_string();
    loop {
        let page = source.next_page().await?;
        if page.is_empty() {
            break;
        }
        for r in page {
            let h = chain_hash(&r.prev_hash, r.seq, &r.at, &r.kind, &r.event_id, &r.payload);
            if r.seq != seq + 1 || r.prev_hash != prev || h != r.hash {
                let _ = std::fs::remove_file(&tmp);
                return Err(CliError::Runtime(anyhow::anyhow!(
                    "the source's audit chain is broken at sequence {} (run `keel audit verify`); nothing exported",
                    seq + 1
                )));
            }
            serde_json::to_writer(&mut out, &r).context("encoding an audit row")?;
            out.write_all(b"\n")
                .with_context(|| format!("writing {}", tmp.display()))?;
            seq = r.seq;
            prev = r.hash;
        }
    }
    let file = out
        .into_inner()
        .map_err(|e| anyhow::anyhow!("writing {}: {}", tmp.display(), e.error()))?;
    file.sync_all()
        .with_context(|| format!("syncing {}", tmp.display()))?;
    std::fs::rename(&tmp, path)
        .with_context(|| format!("renaming {} to {}", tmp.display(), path.display()))?;
    Ok((seq, prev))
}
