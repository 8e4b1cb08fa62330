//! Just enough HTML reading for black-box tests: find an `<input>` by name
//! and read its attributes.

/// The value of the hidden input named `csrf_token`; panics with the page
/// when there is none.
pub fn csrf_from(html: &str) -> String {
    input_value(html, "csrf_token")
        .unwrap_or_else(|| panic!("no csrf_token input in page:\n{html}"))
}

/// The `value` attribute of the first `<input>` whose `name` is `name`.
pub fn input_value(html: &str, name: &str) -> Option<String> {
    tags(html, "input")
        .into_iter()
        .find(|tag| attribute(tag, "name").as_deref() == Some(name))
        .and_then(|tag| attribute(tag, "value"))
}

/// Every opening tag `<name …>` in the document, as written.
pub fn tags<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let open = format!("<{name}");
    html.match_indices(&open)
        .map(|(start, _)| &html[start..])
        .filter(|rest| {
            rest[open.len()..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_whitespace() || c == '>' || c == '/')
        })
        .filter_map(|rest| rest.find('>').map(|end| &rest[..=end]))
        .collect()
}

/// An attribute's unescaped value in one tag; `Some("")` for a bare flag.
pub fn attribute(tag: &str, name: &str) -> Option<String> {
    let mut rest = tag.trim_start_matches('<');
    // Skip the tag name.
    rest = rest.trim_start_matches(|c: char| !c.is_ascii_whitespace() && c != '>');
    loop {
        rest = rest.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '/');
        if rest.is_empty() || rest.starts_with('>') {
            return None;
        }
        let key_end = rest
            .find(|c: char| c.is_ascii_whitespace() || c == '=' || c == '>' || c == '/')
            .unwrap_or(rest.len());
        let key = &rest[..key_end];
        rest = rest[key_end..].trim_start();
        let mut value = String::new();
        if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            let (raw, remaining) = match after.chars().next() {
                Some(q @ ('"' | '\'')) => {
                    let body = &after[1..];
                    let end = body.find(q).unwrap_or(body.len());
                    (&body[..end], body.get(end + 1..).unwrap_or(""))
                }
                _ => {
                    let end = after
                        .find(|c: char| c.is_ascii_whitespace() || c == '>')
                        .unwrap_or(after.len());
                    (&after[..end], &after[end..])
                }
            };
            value = unescape(raw);
            rest = remaining;
        }
        if key.eq_ignore_ascii_case(name) {
            return Some(value);
        }
    }
}

/// Undoes the escaping a template engine applies to text and attributes.
pub fn unescape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let Some(semi) = rest.find(';') else { break };
        let entity = &rest[1..semi];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[semi + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}
