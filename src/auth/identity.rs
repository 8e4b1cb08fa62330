//! Rules for usernames, emails and passwords, and the normalized keys that
//! make look-alike identities collide in the database's unique indexes.

use unicode_normalization::UnicodeNormalization;
use unicode_security::confusable_detection::skeleton;
use unicode_security::GeneralSecurityProfile;

pub const USERNAME_RULE: &str = "3 to 32 characters: letters and digits of any script, and _ - .";

/// A username ready to store: as typed (NFC), its case-folded NFKC key and
/// its confusable skeleton.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username {
    pub display: String,
    pub key: String,
    pub skeleton: String,
}

/// NFKC then lower case: the comparison form of names and emails.
pub fn fold(s: &str) -> String {
    s.nfkc().collect::<String>().to_lowercase()
}

pub fn username(input: &str) -> Result<Username, String> {
    let display: String = input.trim().nfc().collect();
    let count = display.chars().count();
    if !(3..=32).contains(&count) {
        return Err(format!("Username must be {USERNAME_RULE}"));
    }
    let allowed = |c: char| c.is_alphanumeric() || matches!(c, '_' | '-' | '.');
    if !display.chars().all(allowed) {
        return Err(format!("Username may only contain {USERNAME_RULE}"));
    }
    // Letters the Unicode security profile restricts (obsolete scripts,
    // invisible or look-alike technical characters) are refused outright.
    // Checked on the folded form, so full-width letters pass as the letters
    // they stand for.
    let key = fold(&display);
    if !key
        .chars()
        .all(|c| c.identifier_allowed() || matches!(c, '-' | '.'))
    {
        return Err("Username contains characters that are not allowed".into());
    }
    let skeleton = fold(&skeleton(&key).collect::<String>());
    Ok(Username {
        display,
        key,
        skeleton,
    })
}

/// Returns the email as typed and its comparison key.
pub fn email(input: &str) -> Result<(String, String), String> {
    let email = input.trim();
    let bad = || "Enter an email address like name@example.org".to_string();
    if email.is_empty() || email.len() > 254 {
        return Err(bad());
    }
    // Invisible characters would make a second account for an address
    // that reads exactly like an existing one (its key would differ).
    if email
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || is_disguise(c))
    {
        return Err(bad());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    if local.is_empty() || local.contains('@') || domain.len() < 3 || !domain.contains('.') {
        return Err(bad());
    }
    if domain.starts_with('.') || domain.ends_with('.') || domain.contains("..") {
        return Err(bad());
    }
    Ok((email.to_owned(), fold(email)))
}

/// bcrypt reads at most 72 bytes, so longer passwords would be silently cut.
pub fn password(input: &str) -> Result<(), String> {
    if input.len() < 8 {
        return Err("Password must be at least 8 bytes long".into());
    }
    if input.len() > 72 {
        return Err("Password must be at most 72 bytes long".into());
    }
    if input.contains('\0') {
        return Err("Password must not contain a NUL character".into());
    }
    Ok(())
}

/// Invisible characters that only serve to disguise text: zero-width
/// spaces and joiners used alone, direction overrides and isolates, the
/// soft hyphen, the byte-order mark.
fn is_disguise(c: char) -> bool {
    matches!(c, '\u{00AD}' | '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
}

/// A room name: 1 to 64 characters, with at least one letter, digit or
/// symbol, and no control or invisible formatting characters.
pub fn room_name(input: &str) -> Result<(String, String), String> {
    let name: String = input.trim().nfc().collect();
    let count = name.chars().count();
    if !(1..=64).contains(&count) {
        return Err("Room name must be 1 to 64 characters".into());
    }
    if name.chars().any(|c| c.is_control() || is_disguise(c)) {
        return Err("Room name must not contain control or invisible characters".into());
    }
    if !name
        .chars()
        .any(|c| c.is_alphanumeric() || c.is_ascii_punctuation())
    {
        return Err("Room name needs at least one letter or digit".into());
    }
    let key = fold(&name);
    Ok((name, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_fold_case_and_compatibility_forms() {
        assert_eq!(
            username("Alice").unwrap().key,
            username("ａｌｉｃｅ").unwrap().key
        );
    }

    #[test]
    fn mixed_script_look_alikes_share_a_skeleton() {
        let latin = username("paypal").unwrap();
        let mixed = username("pаypal").unwrap(); // Cyrillic а
        assert_ne!(latin.key, mixed.key);
        assert_eq!(latin.skeleton, mixed.skeleton);
    }

    #[test]
    fn names_in_one_other_script_are_welcome() {
        assert!(username("Дмитрий").is_ok());
        assert!(username("山田太郎").is_ok());
    }

    #[test]
    fn usernames_refuse_bad_lengths_and_characters() {
        assert!(username("ab").is_err());
        assert!(username(&"a".repeat(33)).is_err());
        assert!(username("a b c").is_err());
        assert!(username("ali\u{200b}ce").is_err());
        assert!(username("ali\u{202e}ce").is_err());
        assert!(username("<script>").is_err());
    }

    #[test]
    fn emails_need_a_local_part_and_a_dotted_domain() {
        assert_eq!(email(" Bob@Example.org ").unwrap().1, "bob@example.org");
        for bad in [
            "",
            "bob",
            "bob@",
            "@x.org",
            "bob@x",
            "bo b@x.org",
            "bob@x..org",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_refuse_invisible_and_direction_characters() {
        assert!(email("alice@example.com").is_ok());
        for bad in [
            "ali\u{200b}ce@example.com",
            "alice@example.com\u{202e}",
            "\u{feff}alice@example.com",
        ] {
            assert!(email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn room_names_refuse_invisible_and_control_characters() {
        assert!(room_name("General").is_ok());
        assert!(room_name("Général 2").is_ok());
        for bad in [
            "",
            "\u{200B}",
            "evil\u{202E}txt",
            "a\u{7}b",
            "\u{301}\u{301}",
        ] {
            assert!(room_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn passwords_are_8_to_72_bytes_without_nul() {
        assert!(password("1234567").is_err());
        assert!(password("12345678").is_ok());
        assert!(password(&"é".repeat(36)).is_ok());
        assert!(password(&"é".repeat(37)).is_err());
        assert!(password("1234\u{0}5678").is_err());
    }
}
