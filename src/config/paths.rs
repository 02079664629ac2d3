//! Where backchat keeps its files: the config file, session files and the log.
//!
//! On Linux and the BSDs the XDG Base Directory rules decide (`$XDG_CONFIG_HOME`,
//! `$XDG_DATA_HOME`, `$XDG_STATE_HOME`, each falling back under `$HOME`). They are applied to
//! the variables the caller passes in, not read from the process, so that resolution is a pure
//! function of its inputs and tests never touch the real home directory. Elsewhere the
//! platform's conventions come from the `directories` crate.

use std::path::{Path, PathBuf};

/// The application's directory name under each base directory.
pub const APP_DIR: &str = "backchat";

/// The directories backchat uses. `None` when they cannot be determined (no `$HOME`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Paths {
    /// The default config file: `$XDG_CONFIG_HOME/backchat/config.toml`.
    pub config_file: Option<PathBuf>,
    /// Data: `$XDG_DATA_HOME/backchat` (sessions live in `sessions/` below it).
    pub data_dir: Option<PathBuf>,
    /// State: `$XDG_STATE_HOME/backchat` (the log file).
    pub state_dir: Option<PathBuf>,
}

impl Paths {
    /// The directories for the environment `env` describes.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> Paths {
        if cfg!(all(unix, not(target_os = "macos"))) {
            Paths::xdg(env)
        } else {
            Paths::platform()
        }
    }

    /// All three directories under one root (`ROOT/config/backchat/config.toml`, …); for tests
    /// and for running from a scratch directory.
    pub fn under(root: &Path) -> Paths {
        Paths {
            config_file: Some(root.join("config").join(APP_DIR).join("config.toml")),
            data_dir: Some(root.join("data").join(APP_DIR)),
            state_dir: Some(root.join("state").join(APP_DIR)),
        }
    }

    /// Where session files go.
    pub fn sessions_dir(&self) -> Option<PathBuf> {
        self.data_dir.as_ref().map(|d| d.join("sessions"))
    }

    /// The log file.
    pub fn log_file(&self) -> Option<PathBuf> {
        self.state_dir.as_ref().map(|d| d.join("backchat.log"))
    }

    fn xdg(env: &dyn Fn(&str) -> Option<String>) -> Paths {
        let home = env("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .filter(|h| h.is_absolute());
        // The XDG spec: a relative path in one of these variables is invalid and is ignored.
        let base = |var: &str, fallback: &[&str]| -> Option<PathBuf> {
            env(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
                .or_else(|| {
                    home.as_ref()
                        .map(|h| fallback.iter().fold(h.clone(), |p, part| p.join(part)))
                })
                .map(|p| p.join(APP_DIR))
        };
        Paths {
            config_file: base("XDG_CONFIG_HOME", &[".config"]).map(|d| d.join("config.toml")),
            data_dir: base("XDG_DATA_HOME", &[".local", "share"]),
            state_dir: base("XDG_STATE_HOME", &[".local", "state"]),
        }
    }

    fn platform() -> Paths {
        match directories::ProjectDirs::from("", "", APP_DIR) {
            Some(dirs) => Paths {
                config_file: Some(dirs.config_dir().join("config.toml")),
                data_dir: Some(dirs.data_dir().to_path_buf()),
                // macOS and Windows have no state directory; the data directory serves.
                state_dir: Some(
                    dirs.state_dir()
                        .unwrap_or_else(|| dirs.data_local_dir())
                        .to_path_buf(),
                ),
            },
            None => Paths::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(all(unix, not(target_os = "macos")))]
    #[test]
    fn xdg_variables_win_and_home_is_the_fallback() {
        let env = |k: &str| match k {
            "HOME" => Some("/home/u".to_string()),
            "XDG_DATA_HOME" => Some("/data".to_string()),
            "XDG_STATE_HOME" => Some("relative/ignored".to_string()),
            _ => None,
        };
        let p = Paths::from_env(&env);
        assert_eq!(
            p.config_file,
            Some(PathBuf::from("/home/u/.config/backchat/config.toml"))
        );
        assert_eq!(
            p.sessions_dir(),
            Some(PathBuf::from("/data/backchat/sessions"))
        );
        assert_eq!(
            p.log_file(),
            Some(PathBuf::from("/home/u/.local/state/backchat/backchat.log"))
        );
        assert_eq!(Paths::from_env(&|_| None), Paths::default());
    }
}
