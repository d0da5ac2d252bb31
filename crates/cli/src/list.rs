//! `zoo list`: the registered model families and compiled-in backends.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use zoo_core::registry::{self, Availability};

/// One model family, as listed.
#[derive(Debug, Serialize)]
pub struct FamilyRow {
    /// Registry name.
    pub name: &'static str,
    /// Other accepted names.
    pub aliases: &'static [&'static str],
    /// One-line description.
    pub description: &'static str,
}

/// One backend, as listed.
#[derive(Debug, Serialize)]
pub struct BackendRow {
    /// Registry name.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// Whether it can run on this machine.
    pub usable: bool,
    /// Why not, when it cannot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unusable_reason: Option<String>,
    /// Whether `--backend` defaults to it here.
    pub default: bool,
}

/// Everything `zoo list` shows.
#[derive(Debug, Serialize)]
pub struct Listing {
    /// Model families, sorted by name.
    pub models: Vec<FamilyRow>,
    /// Backends, sorted by name.
    pub backends: Vec<BackendRow>,
}

/// Reads the registries.
pub fn listing() -> Result<Listing> {
    zoo_models::link();
    let models = registry::model_families()?
        .iter()
        .map(|f| FamilyRow { name: f.name, aliases: f.aliases, description: f.description })
        .collect();
    let default = registry::default_backend().ok().map(|b| b.name);
    let backends = registry::backends()?
        .iter()
        .map(|b| {
            let availability = (b.availability)();
            BackendRow {
                name: b.name,
                description: b.description,
                usable: availability == Availability::Usable,
                unusable_reason: match availability {
                    Availability::Usable => None,
                    Availability::Unusable(why) => Some(why),
                },
                default: Some(b.name) == default,
            }
        })
        .collect();
    Ok(Listing { models, backends })
}

/// Runs `zoo list`.
pub fn run(json: bool, out: &mut dyn Write) -> Result<()> {
    let listing = listing()?;
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&listing)?)?;
        return Ok(());
    }
    writeln!(out, "Model families:")?;
    for f in &listing.models {
        let aliases = if f.aliases.is_empty() { String::new() } else { format!(" (also: {})", f.aliases.join(", ")) };
        writeln!(out, "  {:<12} {}{aliases}", f.name, f.description)?;
    }
    writeln!(out, "Backends:")?;
    for b in &listing.backends {
        let status = match (&b.unusable_reason, b.default) {
            (Some(why), _) => format!("unusable here: {why}"),
            (None, true) => "usable, default".to_string(),
            (None, false) => "usable".to_string(),
        };
        writeln!(out, "  {:<12} {} [{status}]", b.name, b.description)?;
    }
    Ok(())
}
