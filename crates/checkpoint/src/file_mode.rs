//! Giving a file written through a temporary (as the `safetensors` crate writes, mode 0600) the
//! permissions a file created in place would have: `0666` less the process's umask.

use std::path::Path;

use crate::error::{CheckpointError, Result};

/// Sets `path`'s permissions to those of a newly created file in the same directory.
#[cfg(unix)]
pub fn as_new_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let probe = dir.join(format!(".zoo-mode-probe-{}", std::process::id()));
    let created = std::fs::File::create(&probe).and_then(|f| f.metadata());
    let _ = std::fs::remove_file(&probe);
    let mode = created.map_err(|e| CheckpointError::io(&probe, e))?.permissions().mode() & 0o777;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|e| CheckpointError::io(path, e))
}

/// Permissions are left as they are where there is no umask.
#[cfg(not(unix))]
pub fn as_new_file(_path: &Path) -> Result<()> {
    Ok(())
}
