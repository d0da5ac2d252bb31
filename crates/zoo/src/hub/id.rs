//! Hugging Face model ids as `--weights` takes them: `org/name` or `org/name@revision`, checked
//! character by character so that an id can only ever name a folder inside the cache.

use std::fmt;

use super::HubError;

/// The revision an id without `@revision` names.
pub const DEFAULT_REVISION: &str = "main";

/// Longest `org/name` the hub accepts (huggingface_hub's `validate_repo_id`).
const MAX_REPO_CHARS: usize = 96;

/// Longest revision accepted (a branch or tag name, or a commit hash).
const MAX_REVISION_CHARS: usize = 255;

/// A model repository on the Hugging Face hub at one revision: `org/name` (revision `main`) or
/// `org/name@revision`, where the revision is a branch, a tag (`v1.0`, `refs/pr/3`) or a
/// 40-character commit hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HubId {
    org: String,
    name: String,
    revision: String,
}

impl HubId {
    /// Parses `org/name[@revision]`. Each part of the name is 1 or more of `A-Z a-z 0-9 _ . -`,
    /// starting and ending with a letter, digit or `_`, without `--` or `..`; a revision is
    /// `/`-separated parts of the same characters, none empty or starting with `.`.
    pub fn parse(text: &str) -> Result<Self, HubError> {
        let invalid = |reason: String| HubError::InvalidId { text: text.to_string(), reason };
        let (repo, revision) = match text.split_once('@') {
            Some((repo, revision)) => (repo, revision),
            None => (text, DEFAULT_REVISION),
        };
        let (org, name) = repo.split_once('/').ok_or_else(|| invalid("no `/` between org and name".into()))?;
        if repo.chars().count() > MAX_REPO_CHARS {
            return Err(invalid(format!("longer than {MAX_REPO_CHARS} characters")));
        }
        check_name_part("org", org).map_err(invalid)?;
        check_name_part("name", name).map_err(invalid)?;
        check_revision(revision).map_err(invalid)?;
        Ok(Self { org: org.to_string(), name: name.to_string(), revision: revision.to_string() })
    }

    /// `org/name`.
    pub fn repo(&self) -> String {
        format!("{}/{}", self.org, self.name)
    }

    /// The revision: a branch, a tag or a commit hash (`main` when the id names none).
    pub fn revision(&self) -> &str {
        &self.revision
    }

    /// Whether the revision is a commit hash (40 lowercase hex digits): a snapshot of its own,
    /// with no `refs/` file.
    pub fn is_commit(&self) -> bool {
        is_commit_hash(&self.revision)
    }

    /// The repository's folder in the hub cache: `models--{org}--{name}`.
    pub fn folder(&self) -> String {
        format!("models--{}--{}", self.org, self.name)
    }
}

impl fmt::Display for HubId {
    /// `org/name`, with `@revision` unless the revision is `main`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.org, self.name)?;
        if self.revision != DEFAULT_REVISION {
            write!(f, "@{}", self.revision)?;
        }
        Ok(())
    }
}

/// Whether `text` is shaped like a hub id rather than a path: relative, not starting with `.` or
/// `~`, no `\` or `:`, and exactly one `/` before any `@`. Such a text is parsed strictly (and
/// refused with a reason) when no file or directory has that name.
pub fn looks_like_id(text: &str) -> bool {
    let repo = text.split('@').next().unwrap_or_default();
    !text.starts_with(['/', '.', '~']) && !text.contains(['\\', ':']) && repo.matches('/').count() == 1
}

/// Whether `text` is a full commit hash as the hub writes them (40 lowercase hex digits).
pub fn is_commit_hash(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `c` may appear in an org, a name or a revision part.
fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Checks the org or name part of an id.
fn check_name_part(what: &str, part: &str) -> Result<(), String> {
    let ends_ok = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if part.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    if let Some(c) = part.chars().find(|&c| !allowed(c)) {
        return Err(format!("the {what} has the character {}", zoo_core::quoted(&c.to_string())));
    }
    if !ends_ok(part.chars().next()) || !ends_ok(part.chars().last()) {
        return Err(format!("the {what} must start and end with a letter, digit or `_`"));
    }
    if part.contains("--") || part.contains("..") {
        return Err(format!("the {what} has `--` or `..`"));
    }
    Ok(())
}

/// Checks a revision (after `@`).
fn check_revision(revision: &str) -> Result<(), String> {
    if revision.is_empty() {
        return Err("the revision after `@` is empty".into());
    }
    if revision.chars().count() > MAX_REVISION_CHARS {
        return Err(format!("the revision is longer than {MAX_REVISION_CHARS} characters"));
    }
    if let Some(c) = revision.chars().find(|&c| !allowed(c) && c != '/') {
        return Err(format!("the revision has the character {}", zoo_core::quoted(&c.to_string())));
    }
    if revision.split('/').any(|part| part.is_empty() || part.starts_with('.')) {
        return Err("the revision has an empty part or one starting with `.`".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> String {
        match HubId::parse(text) {
            Err(HubError::InvalidId { reason, .. }) => reason,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn ids_parse_with_and_without_a_revision() {
        let id = HubId::parse("Qwen/Qwen2.5-0.5B-Instruct").unwrap();
        assert_eq!((id.repo().as_str(), id.revision()), ("Qwen/Qwen2.5-0.5B-Instruct", "main"));
        assert_eq!(id.folder(), "models--Qwen--Qwen2.5-0.5B-Instruct");
        assert_eq!(id.to_string(), "Qwen/Qwen2.5-0.5B-Instruct");
        let id = HubId::parse("org/name@refs/pr/3").unwrap();
        assert_eq!((id.revision(), id.is_commit()), ("refs/pr/3", false));
        assert_eq!(id.to_string(), "org/name@refs/pr/3");
        let hash = "0123456789abcdef0123456789abcdef01234567";
        assert!(HubId::parse(&format!("org/name@{hash}")).unwrap().is_commit());
    }

    #[test]
    fn hostile_ids_are_refused_with_a_reason() {
        assert!(reason("org/..").contains("name"));
        assert!(reason("../name").contains("org"));
        assert!(reason("org/").contains("empty"));
        assert!(reason("/name").contains("empty"));
        assert!(reason("org/na me").contains("character"));
        assert!(reason("org/a--b").contains("--"));
        assert!(reason("org/name@").contains("empty"));
        assert!(reason("org/name@../../x").contains("`.`"));
        assert!(reason("org/name@a//b").contains("empty"));
        assert!(reason("org/name@a\nb").contains("\\n"));
        assert!(reason("orgname").contains("`/`"));
        assert!(reason(&format!("org/{}", "x".repeat(100))).contains("96"));
    }

    #[test]
    fn paths_are_not_taken_for_ids() {
        for path in ["/abs/model", "./org/name", "../org/name", "~/m/x", "a/b/c", "model.gguf", "C:\\m\\x", "c:/m"] {
            assert!(!looks_like_id(path), "{path}");
        }
        for id in ["org/name", "org/name@v1", "org/name@refs/pr/1", "org/..", "org/na me"] {
            assert!(looks_like_id(id), "{id}");
        }
    }
}
