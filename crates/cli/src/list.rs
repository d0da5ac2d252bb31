//! `zoo list`: the registered model families and compiled-in backends, and for each usable
//! backend what it does with each stored weight dtype.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;
use zoo_core::registry::{self, Availability, BackendEntry, BackendOptions};
use zoo_core::{Backend, DType, Support};

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
    /// The device it runs on (a GPU backend's adapter, driver and features), for usable backends
    /// that say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Whether `--backend` defaults to it here.
    pub default: bool,
    /// What it does with each stored weight dtype: asked of the backend, so only for usable
    /// ones (and absent if creating it failed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dtypes: Option<DTypeSupport>,
}

/// Stored weight dtypes by what a backend does with them ([`Backend::supports`]), each list in
/// [`DType::ALL`]'s order.
#[derive(Debug, Default, Serialize)]
pub struct DTypeSupport {
    /// Kept as stored and computed on in that type.
    pub native: Vec<&'static str>,
    /// Converted once at load: cast to the type the backend computes in, or dequantised.
    pub converted_at_load: Vec<&'static str>,
    /// Refused at load.
    pub unsupported: Vec<&'static str>,
}

impl DTypeSupport {
    /// Asks `backend` about every dtype.
    pub fn of(backend: &impl Backend) -> Self {
        let mut lists = Self::default();
        for dtype in DType::ALL {
            let list = match backend.supports(dtype) {
                Support::Native => &mut lists.native,
                Support::Converted => &mut lists.converted_at_load,
                Support::Unsupported => &mut lists.unsupported,
            };
            list.push(dtype.name());
        }
        lists
    }

    /// One line for the table: the non-empty lists, named.
    fn line(&self) -> String {
        let lists = [
            ("native", &self.native),
            ("converted at load", &self.converted_at_load),
            ("unsupported", &self.unsupported),
        ];
        let parts: Vec<String> = lists
            .iter()
            .filter(|(_, list)| !list.is_empty())
            .map(|(name, list)| format!("{name}: {}", list.join(", ")))
            .collect();
        parts.join("; ")
    }
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
    zoo::link_plugins();
    let models = registry::model_families()?
        .iter()
        .map(|f| FamilyRow { name: f.name, aliases: f.aliases, description: f.description })
        .collect();
    let default = registry::default_backend().ok().map(|b| b.name);
    let backends = registry::backends()?.iter().map(|b| backend_row(b, Some(b.name) == default)).collect();
    Ok(Listing { models, backends })
}

/// A backend's row; only a usable backend is created, to ask it about dtypes.
fn backend_row(entry: &BackendEntry, default: bool) -> BackendRow {
    let availability = (entry.availability)();
    let usable = availability == Availability::Usable;
    let created = if usable { (entry.create)(&BackendOptions::default()).ok() } else { None };
    BackendRow {
        name: entry.name,
        description: entry.description,
        usable,
        unusable_reason: match availability {
            Availability::Usable => None,
            Availability::Unusable(why) => Some(why),
        },
        default,
        device: created.as_ref().and_then(|backend| backend.device_description()),
        dtypes: created.map(|backend| DTypeSupport::of(&backend)),
    }
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
        if let Some(device) = &b.device {
            writeln!(out, "  {:<12} {device}", "")?;
        }
        if let Some(dtypes) = &b.dtypes {
            writeln!(out, "  {:<12} {}", "", dtypes.line())?;
        }
    }
    Ok(())
}
