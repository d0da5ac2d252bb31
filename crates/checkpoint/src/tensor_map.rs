//! What every reader's [`WeightSource`] shares: its tensors are a `BTreeMap` by name (so
//! `names` comes out sorted), looked up the same way, with the same error for a missing one.

use std::collections::BTreeMap;

use zoo_core::WeightSource;

/// The entry called `name`, or [`zoo_core::Error::MissingTensor`] naming `source`.
pub(crate) fn entry<'a, E>(
    tensors: &'a BTreeMap<String, E>,
    name: &str,
    source: &dyn WeightSource,
) -> zoo_core::Result<&'a E> {
    tensors
        .get(name)
        .ok_or_else(|| zoo_core::Error::MissingTensor { name: name.to_string(), source_name: source.source_name() })
}

/// `source_name`, `contains` and `names` of a [`WeightSource`] whose tensors are
/// `self.tensors` (a `BTreeMap` by name) and whose errors name `self.$field` (a path or string).
macro_rules! map_lookups {
    ($field:ident) => {
        fn source_name(&self) -> String {
            ::std::path::Path::new(&self.$field).display().to_string()
        }

        fn contains(&self, name: &str) -> bool {
            self.tensors.contains_key(name)
        }

        fn names(&self) -> Vec<String> {
            self.tensors.keys().cloned().collect()
        }
    };
}
pub(crate) use map_lookups;
