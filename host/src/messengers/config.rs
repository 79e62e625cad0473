//! `[outputs.messenger]`: which messenger delivers an output's payloads, and
//! its settings (checked without I/O, and for file/ssm, their directory).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigProblem, Validate};

impl Validate for MessengerConfig {
    /// What is wrong with this messenger's settings, found without I/O (a
    /// problem of the messenger as a whole).
    fn problems(&self) -> Vec<ConfigProblem> {
        self.problem()
            .map(|message| ConfigProblem::new("", message))
            .into_iter()
            .collect()
    }
}

impl MessengerConfig {
    /// What is wrong with this messenger's settings, if anything.
    fn problem(&self) -> Option<String> {
        match self {
            Self::Http { url, .. } => match reqwest::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => None,
                Ok(u) => Some(format!(
                    "url {url:?} has scheme `{}`: the http messenger POSTs to http:// or https:// URLs",
                    u.scheme()
                )),
                Err(e) => Some(format!("url {url:?} is not a URL ({e})")),
            },
            Self::Logstash { host, .. } if host.trim().is_empty() => {
                Some("host is empty: give logstash's host name or address".to_owned())
            }
            Self::GreendigitCim(cim) => cim.problem(),
            Self::File {
                name: Some(name), ..
            } => file_name_problem(name),
            _ => None,
        }
    }

    /// The fixed name of a `file` messenger that replaces one file, if it
    /// has one.
    pub fn fixed_file_name(&self) -> Option<&str> {
        match self {
            Self::File {
                name: Some(name), ..
            } => Some(name),
            _ => None,
        }
    }

    /// Whether the messenger could deliver: an `http` token or a CIM password
    /// can be read, and a `file` or `ssm` messenger could write where it is
    /// told to: the directory, or the nearest existing folder above it (which
    /// it would be created in), must be a directory this process can write
    /// in. Only an anonymous temporary file is made there (and vanishes).
    pub fn check_destination(&self) -> Result<(), String> {
        // A secret delivery needs is read now: a run would fail on it later.
        let secret = match self {
            Self::Http {
                token_env,
                token_file,
                ..
            } => Some((token_env.as_deref(), token_file.as_deref())),
            Self::GreendigitCim(cim) => {
                Some((cim.password_env.as_deref(), cim.password_file.as_deref()))
            }
            _ => None,
        };
        if let Some((env, file)) = secret {
            crate::secrets::read(env, file).map_err(|e| {
                format!("{e}: delivery would fail; set it where the runs start (cron, systemd)")
            })?;
        }
        let (Self::File { directory: dir, .. } | Self::Ssm { queue: dir, .. }) = self else {
            return Ok(());
        };
        let mut existing = dir.as_path();
        while !existing.exists() {
            match existing.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => existing = parent,
                _ => return Ok(()),
            }
        }
        if !existing.is_dir() {
            return Err(format!(
                "{} cannot be created: {} is not a directory",
                dir.display(),
                existing.display()
            ));
        }
        tempfile::tempfile_in(existing).map(drop).map_err(|e| {
            format!(
                "{} cannot be {} ({e}): give this user write access, or choose another directory",
                dir.display(),
                if existing == dir {
                    "written"
                } else {
                    "created"
                }
            )
        })
    }
}

/// What is wrong with a `file` messenger's fixed `name`: it must name a
/// file inside the directory (one path component, not hidden: the
/// messenger's temporaries live in `.wattson-tmp/`).
fn file_name_problem(name: &str) -> Option<String> {
    let problem = if name.is_empty() {
        "is empty"
    } else if name.contains('/') || name.contains('\\') || name.contains('\0') {
        "holds a path separator or NUL: give a file name only, and the folder in `directory`"
    } else if name.starts_with('.') {
        "starts with `.`: a hidden file, which listings and many pickups skip (and \
         `.wattson-*` names are the messenger's own temporaries); give e.g. \"wattson.prom\""
    } else if name.ends_with(".tmp") {
        "ends in `.tmp`, the suffix of the messenger's temporaries: give e.g. \"wattson.prom\""
    } else {
        return None;
    };
    Some(format!("name {name:?} {problem}"))
}

/// `[outputs.messenger]`: a closed set, chosen by `type`.
#[derive(Debug, Default, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum MessengerConfig {
    /// Payloads written to standard output.
    #[default]
    Stdout,
    /// One file per payload in `directory`, named by its content hash; or,
    /// with `name`, one file of that name that each payload replaces.
    File {
        /// Where the files go.
        directory: PathBuf,
        /// The files' permission bits, octal (`"0640"`, or the integer
        /// `0o640`), set as given whatever the process' umask; a directory
        /// the messenger creates gets them too, with `x` where `r` is.
        #[serde(default)]
        mode: FileMode,
        /// One fixed file name (`"wattson.prom"`) instead of one file per
        /// payload: each payload replaces the file atomically, so it holds
        /// the newest window's payload (node_exporter's textfile collector
        /// reads `*.prom`, without timestamps). For formats that give one
        /// payload per window (`tenant-metrics`, `openmetrics`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The APEL SSM outgoing queue (dirq layout) that `ssmsend` reads.
    Ssm {
        /// The queue directory, e.g. `/var/spool/apel/outgoing`.
        queue: PathBuf,
        /// The messages' permission bits, octal (`"0640"`, or the integer
        /// `0o640`), set as given whatever the process' umask; a directory
        /// the messenger creates gets them too, with `x` where `r` is.
        #[serde(default)]
        mode: FileMode,
    },
    /// logstash's tcp input with the json_lines codec.
    Logstash {
        /// Host name or address.
        host: String,
        /// TCP port.
        port: u16,
        /// Connect and write timeout, seconds.
        #[serde(default = "default_messenger_timeout_secs")]
        timeout_secs: f64,
    },
    /// POST each payload to a URL.
    Http {
        /// The endpoint.
        url: String,
        /// Environment variable holding a bearer token.
        #[serde(default)]
        token_env: Option<String>,
        /// File holding a bearer token.
        #[serde(default)]
        token_file: Option<PathBuf>,
        /// Per-request timeout, seconds.
        #[serde(default = "default_messenger_timeout_secs")]
        timeout_secs: f64,
        /// Retries after a timeout, connection error or 5xx.
        #[serde(default = "default_retries")]
        retries: u32,
        /// First retry delay, milliseconds; doubles each retry.
        #[serde(default = "default_backoff_ms")]
        backoff_ms: u64,
    },
    /// EGI GreenDIGIT's CIM service: the `apel-energy` format's records, one
    /// JSON array per payload.
    #[serde(rename = "greendigit-cim")]
    GreendigitCim(CimConfig),
}

/// Permission bits of the files a messenger writes (`0o640` by default:
/// a pickup process of the file's group reads them). Written as an octal
/// string (`"0640"`, `"640"`) or an integer (`0o640`); bits above `0o777`
/// (setuid, setgid, sticky) are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileMode(u32);

impl FileMode {
    /// The bits of a file.
    pub fn file(self) -> u32 {
        self.0
    }

    /// The bits of a directory: the file's, with search (`x`) where read
    /// (`r`) is, so whoever may read the files may reach them.
    pub fn directory(self) -> u32 {
        self.0 | ((self.0 & 0o444) >> 2)
    }

    /// `mode` if it is permission bits only.
    fn new(mode: u64, written: &str) -> Result<Self, String> {
        match u32::try_from(mode) {
            Ok(mode) if mode <= 0o777 => Ok(Self(mode)),
            _ => Err(format!(
                "mode {written} is {mode:#o}, beyond the permission bits 0777: give 3 octal digits \
                 such as \"0640\" (a TOML integer is decimal unless written 0o640)"
            )),
        }
    }

    /// An octal string: `"0640"`, `"640"` or `"0o640"`.
    fn parse(text: &str) -> Result<Self, String> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        let octal = !digits.is_empty()
            && digits.len() <= 4
            && digits.bytes().all(|b| matches!(b, b'0'..=b'7'));
        match u64::from_str_radix(digits, 8) {
            Ok(mode) if octal => Self::new(mode, &format!("{text:?}")),
            _ => Err(format!(
                "mode {text:?} is not octal permission bits: give 3 or 4 octal digits (0-7), such as \"0640\""
            )),
        }
    }
}

impl Default for FileMode {
    fn default() -> Self {
        Self(0o640)
    }
}

impl std::fmt::Display for FileMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = FileMode;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("permission bits, as an octal string (\"0640\") or an integer (0o640)")
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<FileMode, E> {
                FileMode::parse(text).map_err(E::custom)
            }

            fn visit_u64<E: serde::de::Error>(self, mode: u64) -> Result<FileMode, E> {
                FileMode::new(mode, &mode.to_string()).map_err(E::custom)
            }

            fn visit_i64<E: serde::de::Error>(self, mode: i64) -> Result<FileMode, E> {
                let unsigned = u64::try_from(mode).map_err(|_| {
                    E::custom(format!(
                        "mode {mode} is negative: give octal permission bits such as \"0640\""
                    ))
                })?;
                self.visit_u64(unsigned)
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl schemars::JsonSchema for FileMode {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FileMode".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                { "type": "string", "pattern": "^(0o)?[0-7]{1,4}$" },
                { "type": "integer", "minimum": 0, "maximum": 0o777 }
            ]
        })
    }
}

/// `type = "greendigit-cim"`: EGI GreenDIGIT's CIM service.
#[derive(Debug, Deserialize, Serialize, Clone, PartialEq, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CimConfig {
    /// Base URL (cASO's `greendigit_cim.base_url`).
    pub url: String,
    /// The account's email.
    pub email: String,
    /// Environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Path of the token endpoint.
    #[serde(default = "default_cim_token_path")]
    pub token_path: String,
    /// Path of the submit endpoint.
    #[serde(default = "default_cim_submit_path")]
    pub submit_path: String,
    /// Allow a plain `http://` URL (the password travels in its query string).
    #[serde(default)]
    pub allow_insecure: bool,
    /// Per-request timeout, seconds.
    #[serde(default = "default_messenger_timeout_secs")]
    pub timeout_secs: f64,
    /// Retries after a timeout, connection error or 5xx.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// First retry delay, milliseconds; doubles each retry.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
}

impl CimConfig {
    fn problem(&self) -> Option<String> {
        let url = &self.url;
        let problem = match reqwest::Url::parse(url) {
            Err(e) => format!("url {url:?} is not a URL ({e})"),
            Ok(u) if u.scheme() == "http" && !self.allow_insecure => format!(
                "url {url:?} is plain http, and the service takes the password in the token request's query string: use https://, or set allow_insecure = true on a network you trust"
            ),
            Ok(u) if !matches!(u.scheme(), "http" | "https") => {
                format!("url {url:?} has scheme `{}`: give an https:// URL", u.scheme())
            }
            Ok(_) if self.email.trim().is_empty() => {
                "email is empty: give the CIM account's email".to_owned()
            }
            Ok(_) if self.password_env.is_some() == self.password_file.is_some() => {
                "give the account's password as one of password_env (an environment variable) or password_file".to_owned()
            }
            Ok(_) => match [&self.token_path, &self.submit_path]
                .into_iter()
                .find(|p| !p.starts_with('/'))
            {
                Some(path) => format!("path {path:?} must start with `/`"),
                None => return None,
            },
        };
        Some(problem)
    }
}

fn default_cim_token_path() -> String {
    "/gd-cim-api/v1/token".into()
}

fn default_cim_submit_path() -> String {
    "/gd-cim-api/v1/submit".into()
}

fn default_messenger_timeout_secs() -> f64 {
    30.0
}

fn default_retries() -> u32 {
    3
}

fn default_backoff_ms() -> u64 {
    500
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_file_name_is_one_plain_file_name() {
        let problem = |name: &str| {
            MessengerConfig::File {
                directory: "/var/lib/node_exporter/textfile".into(),
                mode: FileMode::default(),
                name: Some(name.to_owned()),
            }
            .problem()
        };
        for good in ["wattson.prom", "tenants-site_a.prom", "wattson.om"] {
            assert_eq!(problem(good), None, "{good}");
        }
        for (bad, says) in [
            ("", "is empty"),
            ("sub/wattson.prom", "path separator"),
            ("/abs.prom", "path separator"),
            ("a\\b.prom", "path separator"),
            ("..", "starts with `.`"),
            (".wattson.prom", "starts with `.`"),
            ("wattson.tmp", "ends in `.tmp`"),
        ] {
            let message = problem(bad).unwrap_or_else(|| panic!("{bad:?} accepted"));
            assert!(message.contains(says), "{bad:?}: {message}");
            assert!(message.starts_with(&format!("name {bad:?}")), "{message}");
        }
    }
}
