//! Deserializer errors put in the user's words: serde, serde_json, serde_urlencoded and
//! integer-parsing messages name Rust types (`u64`, `struct JobInput with 22 elements`) and
//! positions (`at line 1 column 7`); a client should read what JSON was expected instead.
//!
//! [`in_users_words`] rewrites the known shapes and leaves any other message as it is, so a
//! validation message written for people passes through unchanged.

/// The message with serde internals replaced by plain words.
pub fn in_users_words(msg: &str) -> String {
    let (msg, position) = split_position(msg);
    let out = rewrite(msg);
    match position {
        Some((line, col)) if out.starts_with("the body is not valid JSON") => {
            format!("{out} (line {line}, column {col})")
        }
        _ => out,
    }
}

/// Splits a trailing ` at line L column C` off.
fn split_position(msg: &str) -> (&str, Option<(&str, &str)>) {
    if let Some(i) = msg.rfind(" at line ") {
        let tail = &msg[i + " at line ".len()..];
        if let Some((line, col)) = tail.split_once(" column ") {
            return (&msg[..i], Some((line, col)));
        }
    }
    (msg, None)
}

fn rewrite(msg: &str) -> String {
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some((got, expected)) = msg
            .strip_prefix(prefix)
            .and_then(|rest| rest.split_once(", expected "))
        {
            return format!(
                "must be {}, got {}",
                expected_words(expected),
                got_words(got)
            );
        }
    }
    if let Some(rest) = msg.strip_prefix("invalid length ") {
        let expected = rest.split_once(", expected ").map_or("", |(_, e)| e);
        return format!("must be {}", expected_words(expected));
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        return format!("{} is required", rest.trim_matches('`'));
    }
    if let Some(rest) = msg.strip_prefix("unknown field ") {
        return match rest.split_once(", expected ") {
            Some((f, known)) => format!(
                "unknown field {}; known fields: {}",
                f.trim_matches('`'),
                names(known)
            ),
            None => format!("unknown field {}", rest.trim_matches('`')),
        };
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        return match rest.split_once(", expected ") {
            Some((v, known)) => {
                format!("{} is not one of: {}", v.trim_matches('`'), names(known))
            }
            None => format!("{} is not a known value", rest.trim_matches('`')),
        };
    }
    if msg.starts_with("duplicate field ") {
        return msg.replace('`', "\"");
    }
    if msg == "invalid digit found in string" || msg == "cannot parse integer from empty string" {
        return "must be a whole number".to_owned();
    }
    if msg == "number too large to fit in target type" {
        return "is too large".to_owned();
    }
    if msg == "number too small to fit in target type" {
        return "is too small".to_owned();
    }
    if msg.contains("not `true` or `false`") {
        return "must be true or false".to_owned();
    }
    // serde_json's syntax errors (its `ErrorCode` texts).
    const SYNTAX: &[&str] = &[
        "expected value",
        "expected ident",
        "expected `",
        "EOF while parsing",
        "trailing characters",
        "trailing comma",
        "key must be a string",
        "invalid escape",
        "invalid number",
        "invalid unicode",
        "control character",
        "lone leading surrogate",
        "unexpected end of hex escape",
        "recursion limit exceeded",
        "number out of range",
    ];
    if SYNTAX.iter().any(|p| msg.starts_with(p)) {
        return "the body is not valid JSON".to_owned();
    }
    msg.to_owned()
}

/// `` `a`, `b` `` or `` one of `a`, `b` `` as `a, b`.
fn names(list: &str) -> String {
    list.trim_start_matches("one of ")
        .replace('`', "")
        .replace(" or ", ", ")
}

/// What serde says was expected, in JSON words.
fn expected_words(expected: &str) -> String {
    let e = expected.trim();
    let word = |t: &str| -> Option<&'static str> {
        match t {
            "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => Some("a whole number ≥ 0"),
            "i8" | "i16" | "i32" | "i64" | "i128" | "isize" | "an integer" => {
                Some("a whole number")
            }
            "f32" | "f64" | "a number" => Some("a number"),
            "a boolean" | "bool" => Some("true or false"),
            "a string" | "a borrowed string" | "a character" | "a char" => Some("a string"),
            "a sequence" | "a tuple" => Some("a list"),
            "a map" => Some("an object"),
            _ => None,
        }
    };
    if let Some(w) = word(e) {
        return w.to_owned();
    }
    if e.starts_with("struct ") || e.starts_with("a map") || e.contains("elements") {
        return "an object".to_owned();
    }
    if e.starts_with("enum ") || e.starts_with("variant ") {
        return "one of the documented values".to_owned();
    }
    if e.starts_with("tuple ") || e.starts_with("a sequence") {
        return "a list".to_owned();
    }
    if e.starts_with("a nonzero ") || e.starts_with("a non-zero ") {
        return "a whole number above 0".to_owned();
    }
    if let Some(inner) = e.strip_prefix("option ") {
        return expected_words(inner);
    }
    if e.chars().any(|c| c == ':' || c == '<') {
        return "a value of the documented type".to_owned();
    }
    e.to_owned()
}

/// What serde says it got (`string "x"`, ``integer `-5` ``, `map`), in JSON words.
fn got_words(got: &str) -> String {
    let g = got.trim();
    let value = |prefix: &str| g.strip_prefix(prefix).map(|v| v.trim().trim_matches('`'));
    if let Some(v) = value("string ") {
        return format!("the string {v}");
    }
    for p in ["integer ", "floating point "] {
        if let Some(v) = value(p) {
            return v.to_owned();
        }
    }
    if let Some(v) = value("boolean ") {
        return v.to_owned();
    }
    match g {
        "map" => "an object".to_owned(),
        "sequence" => "a list".to_owned(),
        "unit value" | "null" | "unit" => "null".to_owned(),
        "string" => "a string".to_owned(),
        other => other.replace('`', ""),
    }
}

#[cfg(test)]
mod tests {
    use super::in_users_words as w;

    /// Fragments no client should read.
    const INTERNALS: &[&str] = &[
        "expected struct",
        "invalid type:",
        "at line 1 column",
        "invalid digit found in string",
        "u64",
        "usize",
        "JobInput",
        "elements",
        "`",
    ];

    fn clean(msg: &str) -> String {
        let out = w(msg);
        for f in INTERNALS {
            assert!(!out.contains(f), "{msg:?} → {out:?} contains {f:?}");
        }
        out
    }

    #[test]
    fn serde_messages_are_put_in_json_words() {
        assert_eq!(
            clean(r#"invalid type: string "fast", expected u64 at line 1 column 20"#),
            r#"must be a whole number ≥ 0, got the string "fast""#
        );
        assert_eq!(
            clean("invalid type: sequence, expected struct JobInput with 22 elements"),
            "must be an object, got a list"
        );
        assert_eq!(
            clean("invalid length 0, expected struct JobInput with 22 elements"),
            "must be an object"
        );
        assert_eq!(
            clean("invalid value: integer `-5`, expected u64 at line 1 column 3"),
            "must be a whole number ≥ 0, got -5"
        );
        assert_eq!(clean("missing field `name`"), "name is required");
        assert_eq!(
            clean("unknown variant `sometimes`, expected one of `skip`, `run_once`"),
            "sometimes is not one of: skip, run_once"
        );
        assert_eq!(
            clean("unknown field `x`, expected `a` or `b`"),
            "unknown field x; known fields: a, b"
        );
        assert_eq!(
            clean("invalid digit found in string"),
            "must be a whole number"
        );
        assert_eq!(
            clean("EOF while parsing an object at line 1 column 10"),
            "the body is not valid JSON (line 1, column 10)"
        );
        // A body such as `tx` (JSON's `true` misspelt).
        assert_eq!(
            clean("expected ident at line 1 column 2"),
            "the body is not valid JSON (line 1, column 2)"
        );
        assert_eq!(
            clean("provided string was not `true` or `false`"),
            "must be true or false"
        );
    }

    #[test]
    fn plain_messages_pass_through() {
        assert_eq!(
            w("longer than 200 characters"),
            "longer than 200 characters"
        );
    }
}
