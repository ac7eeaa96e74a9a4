//! Secrets loading (SPEC §4): the one part of the config that touches files, the environment
//! and file permissions. Validation (`validate`) only records where a secret comes from; this
//! step reads it, so `plan` and `check-config` can say exactly which secret is missing and a
//! world-readable secret file is named in a warning. A secret's value never appears in an
//! error or a warning.

use std::path::{Path, PathBuf};

use super::{Config, ConfigError, SecretSource, Secrets, resolve_relative};
use crate::model::Secret;

/// SPEC §4: the database defaults to `$STATE_DIRECTORY/rooster.db` (systemd
/// `StateDirectory=`), else `/var/lib/rooster/rooster.db`.
pub(super) fn default_state_path() -> PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        Some(dir) => PathBuf::from(dir).join("rooster.db"),
        None => PathBuf::from("/var/lib/rooster/rooster.db"),
    }
}

impl Config {
    /// Loads both secrets (SPEC §4). Returns warnings too: a secret file that others can
    /// read is allowed but named.
    pub fn load_secrets(&self) -> Result<(Secrets, Vec<String>), ConfigError> {
        self.load_secrets_with(&|name| std::env::var_os(name))
    }

    /// [`Config::load_secrets`] with the environment passed in (tests cannot set variables:
    /// the crate forbids `unsafe`, and `set_var` is unsafe).
    pub fn load_secrets_with(
        &self,
        env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Result<(Secrets, Vec<String>), ConfigError> {
        let mut warnings = Vec::new();
        let tring_key = self.load_secret(
            "tring key ([tring] key_file/key_env)",
            &self.tring.key,
            env,
            &mut warnings,
        )?;
        let graph_client_secret = self.load_secret(
            "graph client secret ([graph] client_secret_file/client_secret_env)",
            &self.graph.client_secret,
            env,
            &mut warnings,
        )?;
        Ok((
            Secrets {
                tring_key,
                graph_client_secret,
            },
            warnings,
        ))
    }

    fn load_secret(
        &self,
        what: &str,
        source: &SecretSource,
        env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
        warnings: &mut Vec<String>,
    ) -> Result<Secret, ConfigError> {
        let value = match source {
            SecretSource::Env(var) => {
                env(var).and_then(|v| v.into_string().ok()).ok_or_else(|| {
                    self.secret_err(format!("{what}: environment variable {var} is not set"))
                })?
            }
            SecretSource::File(file) => {
                let path = self.resolve_secret_file(file, env);
                let value = std::fs::read_to_string(&path).map_err(|e| {
                    self.secret_err(format!(
                        "{what}: cannot read {}: {}",
                        path.display(),
                        e.kind()
                    ))
                })?;
                if let Some(w) = world_readable_warning(&path) {
                    warnings.push(w);
                }
                value
            }
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(self.secret_err(format!("{what} is empty")));
        }
        Ok(Secret::new(value))
    }

    fn secret_err(&self, message: String) -> ConfigError {
        ConfigError {
            path: self.path.clone(),
            line: None,
            message,
        }
    }

    /// A bare name is looked up in `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`), then
    /// next to the config; a relative path with a slash is relative to the config (SPEC §4).
    fn resolve_secret_file(
        &self,
        file: &Path,
        env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    ) -> PathBuf {
        let bare = file.components().count() == 1 && !file.is_absolute();
        if bare && let Some(dir) = env("CREDENTIALS_DIRECTORY") {
            let candidate = PathBuf::from(dir).join(file);
            if candidate.exists() {
                return candidate;
            }
        }
        resolve_relative(&self.path, &file.to_string_lossy())
    }
}

#[cfg(unix)]
fn world_readable_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o004 != 0).then(|| {
        format!(
            "secret file {} is readable by every user (mode {:o}); run chmod 600 on it or use LoadCredential=",
            path.display(),
            mode & 0o777
        )
    })
}

#[cfg(not(unix))]
fn world_readable_warning(_: &Path) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{EXAMPLE, example_with};
    use super::*;

    #[test]
    fn secrets_load_from_credentials_directory_env_and_relative_files() {
        let dir = tempfile::tempdir().unwrap();
        let cfg_path = dir.path().join("rooster.toml");
        std::fs::write(dir.path().join("tring-key"), "  K-123\n").unwrap();
        let text = example_with(
            "client_secret_file = \"graph-secret\"",
            "client_secret_env = \"ROOSTER_TEST_GRAPH_SECRET_1\"",
        );
        let cfg = Config::parse(&text, &cfg_path).unwrap();
        let no_env = |_: &str| None;
        let err = cfg.load_secrets_with(&no_env).unwrap_err().to_string();
        assert!(
            err.contains("graph client secret") && err.contains("ROOSTER_TEST_GRAPH_SECRET_1"),
            "{err}"
        );

        let creds = tempfile::tempdir().unwrap();
        std::fs::write(creds.path().join("tring-key"), "K-from-credentials\n").unwrap();
        let creds_dir = creds.path().as_os_str().to_owned();
        let env = move |name: &str| match name {
            "ROOSTER_TEST_GRAPH_SECRET_1" => Some("S-456".into()),
            "CREDENTIALS_DIRECTORY" => Some(creds_dir.clone()),
            _ => None,
        };
        let (secrets, _) = cfg.load_secrets_with(&env).unwrap();
        assert_eq!(secrets.tring_key.expose(), "K-from-credentials");
        assert_eq!(secrets.graph_client_secret.expose(), "S-456");
        // Without $CREDENTIALS_DIRECTORY the bare name is found next to the config, trimmed.
        let env = |name: &str| (name == "ROOSTER_TEST_GRAPH_SECRET_1").then(|| "S".into());
        assert_eq!(
            cfg.load_secrets_with(&env).unwrap().0.tring_key.expose(),
            "K-123"
        );
    }

    #[test]
    fn missing_secret_file_names_which_secret() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = Config::parse(EXAMPLE, &dir.path().join("rooster.toml")).unwrap();
        let err = cfg.load_secrets_with(&|_| None).unwrap_err().to_string();
        assert!(
            err.contains("tring key") && err.contains("tring-key"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn world_readable_secret_file_is_named_in_a_warning() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for (name, mode) in [("tring-key", 0o644), ("graph-secret", 0o600)] {
            let p = dir.path().join(name);
            std::fs::write(&p, "x").unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        let cfg = Config::parse(EXAMPLE, &dir.path().join("rooster.toml")).unwrap();
        let (_, warnings) = cfg.load_secrets_with(&|_| None).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("tring-key") && warnings[0].contains("644"));
    }
}
