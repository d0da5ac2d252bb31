//! `zoo convert`'s output as a transaction: nothing the user has is touched until the whole new
//! checkpoint is written and checked.
//!
//! 1. [`Transaction::begin`] refuses a target that is the input, lies inside it or contains it
//!    (compared after resolving symlinks and `..`, so any spelling is caught), and an existing
//!    target (a file, a non-empty directory, a Burn record or its config JSON) unless `force`.
//!    It then makes a staging directory beside the target (`.zoo-convert-*`), registered for
//!    removal on SIGINT/SIGTERM ([`super::signals`]).
//! 2. The caller writes the checkpoint at [`Transaction::staged`] and checks it.
//! 3. [`Transaction::commit`] moves it into place by `rename`: an HF directory or a `.bin`
//!    replaces the target in one step; a Burn record's files (record, `X.json`, tokenizer files
//!    beside it) are renamed one by one, the record last, after every conflict was checked.
//!    With `force` the whole old target goes: for a Burn record also the other variant sharing
//!    its `X.json` (`X.mpk` / `X.mpk.gz`) and tokenizer files the new model does not have.
//!
//! Dropping an uncommitted transaction removes the staging directory (errors, panics).
//! Files are created by the ordinary calls, so their modes follow the umask.

use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use zoo_checkpoint::burn_mpk;
use zoo_checkpoint::convert::{Format, TOKENIZER_FILES};

use super::signals;

/// A conversion's output, staged until committed.
pub struct Transaction {
    /// The target as the user named it.
    target: PathBuf,
    format: Format,
    force: bool,
    /// The staging directory beside the target.
    staging: PathBuf,
    /// Files of the input (resolved) that no commit may replace.
    inputs: Vec<PathBuf>,
    committed: bool,
}

impl Transaction {
    /// Checks the target against the input and what exists, and makes the staging directory.
    pub fn begin(from: &Path, target: &Path, force: bool) -> Result<Self> {
        let format = Format::of_target(target);
        let name = target.file_name().filter(|_| !ends_in_dots(target)).with_context(|| {
            format!("--to {}: name a file or directory to write, not `.` or `..`", target.display())
        })?;
        let inputs = input_files(from)?;
        let outputs = output_paths(target, format);
        refuse_overlap(&inputs, &outputs, target)?;
        if !force {
            refuse_existing(target, format)?;
        } else if format != Format::HfDir && resolved(target).is_dir() {
            bail!("--to {}: is a directory; a {format:?} target is a file", target.display());
        }
        let parent = parent_dir(target);
        std::fs::create_dir_all(&parent).with_context(|| format!("creating {}", parent.display()))?;
        signals::install();
        let staging = {
            let mut temporaries = signals::lock();
            let staging = make_staging_dir(&parent, name.to_string_lossy().as_ref())?;
            temporaries.push(staging.clone());
            staging
        };
        Ok(Self { target: target.to_path_buf(), format, force, staging, inputs, committed: false })
    }

    /// Where the caller writes the checkpoint (in the staging directory, under the target's name).
    pub fn staged(&self) -> PathBuf {
        self.staging.join(self.target.file_name().unwrap_or_default())
    }

    /// Where a file written under [`Transaction::staged`] ends up once committed.
    pub fn final_path(&self, staged_file: &Path) -> PathBuf {
        match staged_file.strip_prefix(self.staged()) {
            Ok(rest) if rest.as_os_str().is_empty() => self.target.clone(),
            Ok(rest) => self.target.join(rest),
            Err(_) => parent_dir(&self.target).join(staged_file.strip_prefix(&self.staging).unwrap_or(staged_file)),
        }
    }

    /// Moves the staged checkpoint into place (see the module doc).
    pub fn commit(mut self) -> Result<()> {
        let _signals_wait = signals::lock();
        match self.format {
            Format::HfDir | Format::Torchless => self.replace_whole()?,
            Format::Burn => self.place_burn_files()?,
        }
        self.committed = true;
        signals::remove(&self.staging);
        Ok(())
    }

    /// Renames the staged directory or file over the target; an old directory is first moved
    /// into the staging directory (removed with it), and put back if the second rename fails.
    fn replace_whole(&self) -> Result<()> {
        let (staged, target) = (self.staged(), self.target.as_path());
        let old = self.staging.join(".replaced");
        let had_dir = target.is_dir() && !target.is_symlink();
        if had_dir {
            std::fs::rename(target, &old).with_context(|| format!("moving the old {} aside", target.display()))?;
        }
        if let Err(e) = std::fs::rename(&staged, target) {
            if had_dir {
                let _ = std::fs::rename(&old, target);
            }
            return Err(e).with_context(|| format!("moving the converted checkpoint to {}", target.display()));
        }
        Ok(())
    }

    /// Places a Burn record's files beside each other in the target's directory.
    fn place_burn_files(&self) -> Result<()> {
        let dir = parent_dir(&self.target);
        let mut staged: Vec<PathBuf> = std::fs::read_dir(&self.staging)
            .with_context(|| format!("reading {}", self.staging.display()))?
            .map(|entry| entry.map(|e| e.path()))
            .collect::<std::io::Result<_>>()?;
        // The record last: until it is in place, the old record (if any) stays whole.
        staged.sort_by_key(|p| (*p == self.staged(), p.clone()));
        let mut stale = Vec::new();
        for name in TOKENIZER_FILES {
            let existing = dir.join(name);
            if existing.is_file() && !staged.iter().any(|p| p.file_name() == Some(name.as_ref())) {
                stale.push(existing);
            }
        }
        let changed: Vec<&PathBuf> =
            staged.iter().filter(|p| !same_contents(p, &dir.join(p.file_name().unwrap_or_default()))).collect();
        for file in changed.iter().map(|p| dir.join(p.file_name().unwrap_or_default())).chain(stale.iter().cloned()) {
            self.may_replace(&file)?;
        }
        for file in &stale {
            std::fs::remove_file(file).with_context(|| format!("removing the stale {}", file.display()))?;
        }
        if self.force {
            signals::remove(&other_variant(&self.target));
        }
        for file in changed {
            let dest = dir.join(file.file_name().unwrap_or_default());
            std::fs::rename(file, &dest).with_context(|| format!("moving {} into place", dest.display()))?;
        }
        Ok(())
    }

    /// Whether the commit may replace (or remove) the existing `file`: never an input's, and
    /// only with `force`.
    fn may_replace(&self, file: &Path) -> Result<()> {
        if !file.exists() {
            return Ok(());
        }
        if self.inputs.contains(&resolved(file)) {
            bail!("--to {}: would replace {}, which belongs to the input", self.target.display(), file.display());
        }
        if !self.force {
            bail!(
                "--to {}: {} exists with other contents (another model's file beside the record?); pass --force to replace it",
                self.target.display(),
                file.display()
            );
        }
        Ok(())
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        let mut temporaries = signals::lock();
        if !self.committed {
            signals::remove(&self.staging);
        }
        temporaries.retain(|p| *p != self.staging);
    }
}

/// Whether `path` ends in `.` or `..` (no file name to write).
fn ends_in_dots(path: &Path) -> bool {
    matches!(path.components().next_back(), Some(Component::CurDir | Component::ParentDir) | None)
}

/// The directory holding `path` (`.` for a bare name).
fn parent_dir(path: &Path) -> PathBuf {
    path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new(".")).to_path_buf()
}

/// `path` with symlinks and `..` resolved, also where it does not exist yet (its nearest
/// existing ancestor is resolved and the rest appended).
pub fn resolved(path: &Path) -> PathBuf {
    if let Ok(real) = path.canonicalize() {
        return real;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut rest = Vec::new();
    let mut base = absolute.as_path();
    loop {
        if let Ok(real) = base.canonicalize() {
            return rest.iter().rev().fold(real, |acc: PathBuf, part| match part {
                Component::ParentDir => acc.parent().map(Path::to_path_buf).unwrap_or(acc),
                Component::CurDir => acc,
                other => acc.join(other),
            });
        }
        match (base.components().next_back(), base.parent()) {
            (Some(last), Some(parent)) => {
                rest.push(last);
                base = parent;
            }
            _ => return absolute,
        }
    }
}

/// The files a conversion reads from `from`, resolved: the checkpoint itself (a directory is
/// one entry covering its contents), a Burn record's config JSON, and the tokenizer files beside
/// a single-file checkpoint.
fn input_files(from: &Path) -> Result<Vec<PathBuf>> {
    let real = from.canonicalize().with_context(|| format!("{}: no such file or directory", from.display()))?;
    let mut files = vec![real.clone()];
    if real.is_file() {
        if burn_mpk::is_burn_path(&real) {
            files.push(burn_mpk::config_path(&real));
        }
        let dir = parent_dir(&real);
        files.extend(TOKENIZER_FILES.iter().map(|name| dir.join(name)).filter(|p| p.exists()));
    }
    Ok(files)
}

/// The paths a commit replaces as a whole (resolved): the target, and for a Burn record its
/// config JSON and the other record variant sharing it.
fn output_paths(target: &Path, format: Format) -> Vec<PathBuf> {
    let mut paths = vec![resolved(target)];
    if format == Format::Burn {
        paths.push(resolved(&burn_mpk::config_path(target)));
        paths.push(resolved(&other_variant(target)));
    }
    paths
}

/// Refuses outputs that are an input, lie inside one, or contain one.
fn refuse_overlap(inputs: &[PathBuf], outputs: &[PathBuf], target: &Path) -> Result<()> {
    for output in outputs {
        for input in inputs {
            if output == input || output.starts_with(input) || input.starts_with(output) {
                let how = if output == input {
                    "is"
                } else if output.starts_with(input) {
                    "lies inside"
                } else {
                    "contains"
                };
                bail!(
                    "--to {} {how} the input {} ({}): write the conversion somewhere else",
                    target.display(),
                    input.display(),
                    output.display()
                );
            }
        }
    }
    Ok(())
}

/// Refuses (without `--force`) a target that exists: a file, a non-empty directory, or for a
/// Burn record its config JSON or the other variant sharing it.
fn refuse_existing(target: &Path, format: Format) -> Result<()> {
    let occupied = |p: &Path| match std::fs::read_dir(p) {
        Ok(mut entries) => entries.next().is_some(),
        Err(_) => p.exists() || p.is_symlink(),
    };
    let mut paths = vec![target.to_path_buf()];
    if format == Format::Burn {
        paths.push(burn_mpk::config_path(target));
        paths.push(other_variant(target));
    }
    if let Some(existing) = paths.iter().find(|p| occupied(p)) {
        bail!(
            "--to {}: {} already exists{}; pass --force to replace it (the old one is removed only once the new one is complete)",
            target.display(),
            existing.display(),
            if existing.is_dir() { " and is not empty" } else { "" }
        );
    }
    Ok(())
}

/// The Burn record that shares `target`'s config JSON: `X.mpk` for `X.mpk.gz` and vice versa.
fn other_variant(target: &Path) -> PathBuf {
    let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    match name.strip_suffix(".gz") {
        Some(plain) => target.with_file_name(plain),
        None => target.with_file_name(format!("{name}.gz")),
    }
}

/// A new, empty staging directory in `parent`, named after the target.
fn make_staging_dir(parent: &Path, name: &str) -> Result<PathBuf> {
    let stamp = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    for attempt in 0..100u32 {
        let dir = parent.join(format!(".zoo-convert-{}-{}-{stamp:x}{attempt}", name, std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("could not create a staging directory in {}", parent.display())
}

/// Whether two files exist and hold the same bytes.
fn same_contents(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) if x.is_file() && y.is_file() && x.len() == y.len() => {
            matches!((std::fs::read(a), std::fs::read(b)), (Ok(x), Ok(y)) if x == y)
        }
        _ => false,
    }
}
