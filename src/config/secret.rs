//! Secrets: a type that never prints its value, plus generation, weak-value
//! checks and the files that hold generated secrets in the data folder.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;

/// A secret value. `Debug` and `Display` print `***`, so a secret that ends
/// up in a log line or an error message by accident leaks nothing.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the few places that sign or verify with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A fresh 64-byte random value, base64url-encoded (86 characters).
pub fn generate() -> String {
    let mut bytes = [0u8; 64];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Values that are long enough but obviously not random: mostly made of
/// placeholder words from example files, or a short pattern repeated to
/// reach the length. A random value that happens to contain a placeholder
/// word somewhere is not weak.
pub fn is_weak(value: &str) -> bool {
    let mut rest = value.to_ascii_lowercase();
    const PLACEHOLDERS: [&str; 6] = [
        "secret", "changeme", "password", "example", "default", "xxxx",
    ];
    for p in PLACEHOLDERS {
        rest = rest.replace(p, "");
    }
    if rest.len() * 2 < value.len() {
        return true;
    }
    let mut distinct = [false; 256];
    for b in value.bytes() {
        distinct[b as usize] = true;
    }
    distinct.iter().filter(|seen| **seen).count() < 12
}

/// Reads the secret stored in `path`, or generates one and writes it there
/// with mode 0600 so that restarts keep every session and token valid.
pub fn load_or_generate(path: &Path) -> std::io::Result<Secret> {
    match fs::read_to_string(path) {
        Ok(value) => return Ok(Secret::new(value.trim().to_owned())),
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err),
        Err(_) => {}
    }
    let value = generate();
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            file.write_all(value.as_bytes())?;
            file.sync_all()?;
            Ok(Secret::new(value))
        }
        // Another process created it between our read and our create: use theirs.
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(Secret::new(fs::read_to_string(path)?.trim().to_owned()))
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_are_long_and_not_weak() {
        let value = generate();
        assert_eq!(value.len(), 86);
        assert!(!is_weak(&value));
        assert_ne!(value, generate());
    }

    #[test]
    fn placeholders_and_repetitions_are_weak() {
        assert!(is_weak(&"changeme".repeat(10)));
        assert!(is_weak(&"ab".repeat(40)));
        assert!(is_weak(&"secret-".repeat(12)));
        assert!(is_weak(
            "changeme-changeme-changeme-changeme-changeme-changeme-abcdefghijklmnopqrstuvwxyz"
        ));
    }

    #[test]
    fn random_values_with_a_placeholder_inside_are_not_weak() {
        let value = format!("{}xxxx{}", &generate()[..40], &generate()[..42]);
        assert!(!is_weak(&value), "{value}");
        for _ in 0..2000 {
            assert!(!is_weak(&generate()));
        }
    }

    #[test]
    fn secrets_never_print_their_value() {
        let s = Secret::new("hunter2hunter2");
        assert_eq!(format!("{s:?} {s}"), "*** ***");
    }

    #[test]
    fn generated_file_is_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let first = load_or_generate(&path).unwrap();
        let second = load_or_generate(&path).unwrap();
        assert_eq!(first.expose(), second.expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
