//! Kernel command-line templates: `console=ttyS0 root.mode={image}` with `{variable}`
//! placeholders, rendered per machine by the inventory.
//!
//! Written by hand rather than with a template engine because the rules are specific to
//! a kernel command line: a value must be one argument (no whitespace, quotes or control
//! characters, which would split or inject arguments), and only a fixed set of
//! variables exists, checked when an image is published rather than at boot.

use super::ImageError;

/// Variables a template may use.
pub const VARIABLES: &[&str] = &[
    "mac",
    "hostname",
    "image",
    "version",
    "manifest",
    "base_url",
    "rootfs_url",
    "rootfs_sha256",
    "callback_url",
];

enum Piece<'a> {
    Text(&'a str),
    Var(&'a str),
}

fn pieces(t: &str) -> Result<Vec<Piece<'_>>, ImageError> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(i) = rest.find(['{', '}']) {
        if rest[i..].starts_with("{{") || rest[i..].starts_with("}}") {
            out.push(Piece::Text(&rest[..=i]));
            rest = &rest[i + 2..];
            continue;
        }
        if rest[i..].starts_with('}') {
            return Err(ImageError::BadCmdline(format!(
                "unmatched '}}' in {t:?} (write '}}}}' for a literal brace)"
            )));
        }
        out.push(Piece::Text(&rest[..i]));
        let end = rest[i..]
            .find('}')
            .ok_or_else(|| ImageError::BadCmdline(format!("unclosed '{{' in {t:?}")))?;
        let name = &rest[i + 1..i + end];
        if !VARIABLES.contains(&name) {
            return Err(ImageError::BadCmdline(format!(
                "unknown variable {{{name}}}; known: {}",
                VARIABLES.join(", ")
            )));
        }
        out.push(Piece::Var(name));
        rest = &rest[i + end + 1..];
    }
    out.push(Piece::Text(rest));
    Ok(out)
}

/// Checks a template at publish time.
pub fn check_template(t: &str) -> Result<(), ImageError> {
    if t.chars().any(|c| c.is_control()) {
        return Err(ImageError::BadCmdline(format!(
            "{t:?} contains a control character (newline, tab…)"
        )));
    }
    if t.len() > 2048 {
        return Err(ImageError::BadCmdline("longer than 2048 bytes".into()));
    }
    pieces(t).map(|_| ())
}

/// Whether a value may be placed into a command line as (part of) one argument.
pub fn check_value(name: &str, v: &str) -> Result<(), ImageError> {
    if v.chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'' || c == '\\')
    {
        return Err(ImageError::BadCmdline(format!(
            "value of {{{name}}} ({v:?}) contains whitespace, a quote or a control character"
        )));
    }
    Ok(())
}

/// Renders a template; `lookup` gives each variable's value (`None` renders empty).
pub fn render(t: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String, ImageError> {
    let mut out = String::new();
    for p in pieces(t)? {
        match p {
            Piece::Text(s) => out.push_str(s),
            Piece::Var(name) => {
                let v = lookup(name).unwrap_or_default();
                check_value(name, &v)?;
                out.push_str(&v);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_known_variables_and_braces() {
        let r = render("a={image} b={{x}} c={hostname}", |n| match n {
            "image" => Some("demo".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(r, "a=demo b={x} c=");
    }

    #[test]
    fn rejects_unknown_unclosed_and_injection() {
        assert!(check_template("x={nope}").is_err());
        assert!(check_template("x={image").is_err());
        assert!(check_template("x=}").is_err());
        assert!(check_template("a\nb").is_err());
        let e = render("h={hostname}", |_| Some("x init=/bin/sh".into())).unwrap_err();
        assert!(e.to_string().contains("hostname"), "{e}");
    }
}
