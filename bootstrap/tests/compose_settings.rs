//! `compose.yaml` cannot drift from the settings: every `FILEGATE_` variable it sets must be
//! one that filegate knows.
//!
//! The judge is the real binary, not a list kept here: each variable is set, with the value
//! compose gives it (`${VAR:-default}` read as its default, as compose does with `VAR` unset),
//! for `filegate openapi`, which loads the whole configuration (the settings refuse unknown keys
//! in every section) and then prints the spec without touching a database, a blob store or a
//! broker. A misspelt key, or a value of the wrong type, exits with `configuration error`.
//!
//! A variable without `__` is no setting at all (the loader ignores it, so a misspelt
//! `FILEGATE_DATABASE_URL` would be dropped without a word): it passes only when the binary's
//! own `--help` names it as a command-line variable (`FILEGATE_CONFIG`, `FILEGATE_API_KEY`, ...).
//!
//! compose.yaml is read line by line, not with a YAML parser: the file keeps its environment as
//! `KEY: value` (or `- KEY=value`) lines, anchors and aliases of plain scalars are resolved, and
//! every line that names `FILEGATE_` outside a comment must be one the reader understood, so a
//! form it does not know fails the test instead of being skipped.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

const COMPOSE: &str = include_str!("../../compose.yaml");

/// What the issue asks compose to set, at least: if the reader finds fewer, it has gone blind.
const EXPECTED: &[&str] = &[
    "FILEGATE_DATABASE__URL",
    "FILEGATE_BLOB__KIND",
    "FILEGATE_BLOB__AZURE__CONNECTION_STRING",
    "FILEGATE_RABBITMQ__URL",
    "FILEGATE_META__BASE_URL",
    "FILEGATE_META__ACCESS_TOKEN",
    "FILEGATE_TELEMETRY__METRICS_ADDR",
];

#[test]
fn every_filegate_variable_in_compose_is_a_known_setting() {
    let vars = filegate_variables(COMPOSE).unwrap_or_else(|e| panic!("compose.yaml: {e}"));
    let keys: BTreeSet<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
    for expected in EXPECTED {
        assert!(
            keys.contains(expected),
            "compose.yaml no longer sets {expected} (found {keys:?})"
        );
    }
    let cli = command_line_variables();
    let mut failures = Vec::new();
    // The same variable may be set in several places; each distinct value is checked.
    let distinct: BTreeSet<&(String, String)> = vars.iter().collect();
    for (key, value) in distinct {
        if let Err(why) = check_variable(key, value, &cli) {
            failures.push(format!("{key}={value}: {why}"));
        }
    }
    assert!(
        failures.is_empty(),
        "compose.yaml sets variables filegate does not take (see docs/configuration.md):\n{}",
        failures.join("\n")
    );
}

/// The check can fail: an unknown key, a value of the wrong type and a variable that is no
/// setting are each refused.
#[test]
fn the_check_refuses_what_filegate_does_not_know() {
    let cli = command_line_variables();
    let err = check_variable("FILEGATE_HTTP__NO_SUCH_THING", "1", &cli).unwrap_err();
    assert!(err.contains("configuration error"), "{err}");
    assert!(err.to_lowercase().contains("no_such_thing"), "{err}");

    let err =
        check_variable("FILEGATE_TELEMETRY__METRICS_ADDR", "not-an-address", &cli).unwrap_err();
    assert!(err.contains("configuration error"), "{err}");

    let err = check_variable("FILEGATE_DATABASE_URL", "postgres://db/x", &cli).unwrap_err();
    assert!(err.contains("not a setting"), "{err}");

    // And what it must accept, it accepts.
    check_variable("FILEGATE_HTTP__MAX_CHUNK_BYTES", "1024", &cli).unwrap();
    check_variable("FILEGATE_API_KEY", "fg_x", &cli).unwrap();
}

/// A compose file that names a setting the binary does not know fails the whole check.
#[test]
fn a_bogus_variable_in_a_compose_file_fails_the_check() {
    let bogus = format!(
        "{COMPOSE}\n  extra:\n    image: filegate\n    environment:\n      FILEGATE_HTTP__NO_SUCH_THING: \"1\"\n"
    );
    let vars = filegate_variables(&bogus).unwrap();
    let cli = command_line_variables();
    let refused: Vec<_> = vars
        .iter()
        .filter(|(k, v)| check_variable(k, v, &cli).is_err())
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(refused, ["FILEGATE_HTTP__NO_SUCH_THING"]);
}

#[test]
fn the_reader_understands_the_forms_compose_files_use() {
    let yaml = r#"
# FILEGATE_IN_A_COMMENT: ignored
x-env: &env
  FILEGATE_A__B: plain   # a comment
  FILEGATE_A__C: &conn "x=1;y=2 # not a comment"
  FILEGATE_A__D: 'single'
services:
  one:
    environment:
      <<: *env
      FILEGATE_A__E: *conn
      FILEGATE_A__F: ${TOKEN:-fake-token}
      FILEGATE_A__G: "${URL-http://h:1}/p"
      FILEGATE_A__H: ${UNSET}
      FILEGATE_A__I: "$$literal"
      "FILEGATE_A__M": "quoted key"
  two:
    environment:
      - FILEGATE_A__J=list
      - "FILEGATE_A__K=quoted list"
      - FILEGATE_A__L
    command: ["sh", "-c", "echo $$FILEGATE_NOT_A_KEY"]
"#;
    let err = filegate_variables(yaml).unwrap_err();
    assert!(err.contains("FILEGATE_NOT_A_KEY"), "{err}");
    let yaml = yaml.replace("$$FILEGATE_NOT_A_KEY", "hi");
    let vars: BTreeMap<_, _> = filegate_variables(&yaml).unwrap().into_iter().collect();
    let get = |k: &str| vars.get(k).map(String::as_str);
    assert_eq!(get("FILEGATE_A__B"), Some("plain"));
    assert_eq!(get("FILEGATE_A__C"), Some("x=1;y=2 # not a comment"));
    assert_eq!(get("FILEGATE_A__D"), Some("single"));
    assert_eq!(get("FILEGATE_A__E"), Some("x=1;y=2 # not a comment"));
    assert_eq!(get("FILEGATE_A__F"), Some("fake-token"));
    assert_eq!(get("FILEGATE_A__G"), Some("http://h:1/p"));
    assert_eq!(get("FILEGATE_A__H"), Some(""));
    assert_eq!(get("FILEGATE_A__I"), Some("$literal"));
    assert_eq!(get("FILEGATE_A__J"), Some("list"));
    assert_eq!(get("FILEGATE_A__K"), Some("quoted list"));
    assert_eq!(get("FILEGATE_A__L"), Some(""));
    assert_eq!(get("FILEGATE_A__M"), Some("quoted key"));
    assert!(!vars.contains_key("FILEGATE_IN_A_COMMENT"));
    assert_eq!(vars.len(), 12, "{vars:?}");
    // An alias whose anchor this reader cannot see is refused, not read as empty.
    let err = filegate_variables("e:\n  FILEGATE_A__N: *nowhere\n").unwrap_err();
    assert!(err.contains("FILEGATE_A__N"), "{err}");
}

/// Ok when filegate takes `key=value`, else why not.
fn check_variable(key: &str, value: &str, cli: &BTreeSet<String>) -> Result<(), String> {
    if !key.contains("__") {
        return if cli.contains(key) {
            Ok(())
        } else {
            Err(format!(
                "not a setting (settings are FILEGATE_<SECTION>__<KEY>, and the command line \
                 reads only {cli:?})"
            ))
        };
    }
    let out = filegate()
        .arg("openapi")
        .env(key, value)
        .output()
        .expect("run filegate openapi");
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// The binary, with none of the `FILEGATE_` or `OTEL_` variables of whoever runs the tests.
fn filegate() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_filegate"));
    for (name, _) in std::env::vars_os() {
        let text = name.to_string_lossy();
        if text.starts_with("FILEGATE_") || text.starts_with("OTEL_") {
            command.env_remove(&name);
        }
    }
    command
}

/// The variables the command line reads, as the binary's help names them (`[env: NAME=...]`).
fn command_line_variables() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for args in [&["--help"][..], &["upload", "--help"]] {
        let out = filegate().args(args).output().expect("run filegate --help");
        assert!(out.status.success(), "filegate {args:?} failed");
        let help = String::from_utf8_lossy(&out.stdout);
        for (_, rest) in help
            .match_indices("[env: ")
            .map(|(i, _)| help.split_at(i + 6))
        {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            names.insert(name);
        }
    }
    assert!(names.contains("FILEGATE_CONFIG"), "{names:?}");
    names
}

/// Every `FILEGATE_` variable the file sets, with its value as compose would hand it over.
fn filegate_variables(yaml: &str) -> Result<Vec<(String, String)>, String> {
    let anchors = anchors(yaml);
    let mut vars = Vec::new();
    for (number, line) in yaml.lines().enumerate() {
        let code = strip_comment(line);
        if !code.contains("FILEGATE_") {
            continue;
        }
        let unreadable = || {
            format!(
                "line {}: `{}` names FILEGATE_ in a form this test cannot read; keep the \
                 environment as `FILEGATE_X: value` or `- FILEGATE_X=value` lines",
                number + 1,
                line.trim()
            )
        };
        if code.matches("FILEGATE_").count() != 1 {
            return Err(unreadable());
        }
        let item = code.trim();
        // `- KEY=value` (a list, the item possibly quoted whole) or `KEY: value` (a mapping,
        // the key possibly quoted).
        let (list, item) = match item.strip_prefix("- ") {
            Some(rest) => {
                let rest = rest.trim();
                (true, unquote(rest).unwrap_or(rest))
            }
            None => (false, item),
        };
        let (key_quote, item) = match item.chars().next() {
            Some(q @ ('"' | '\'')) if !list => (Some(q), &item[1..]),
            _ => (None, item),
        };
        let key_len = item
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(item.len());
        let (key, rest) = item.split_at(key_len);
        let rest = match key_quote {
            Some(q) => rest.strip_prefix(q).ok_or_else(unreadable)?,
            None => rest,
        };
        if !key.starts_with("FILEGATE_") {
            return Err(unreadable());
        }
        let raw = match (list, rest.strip_prefix('='), rest.strip_prefix(':')) {
            // `- KEY` passes the variable through from the host: unset, it is empty.
            (true, _, _) if rest.is_empty() => String::new(),
            (true, Some(value), _) => value.to_owned(),
            (false, _, Some(value)) => scalar(value, &anchors).ok_or_else(unreadable)?,
            _ => return Err(unreadable()),
        };
        vars.push((key.to_owned(), interpolate(&raw)));
    }
    Ok(vars)
}

/// A mapping value: an alias resolved (none when its anchor is not a scalar on one line), an
/// anchor dropped, quotes removed.
fn scalar(value: &str, anchors: &BTreeMap<String, String>) -> Option<String> {
    let value = value.trim();
    if let Some(name) = value.strip_prefix('*') {
        return anchors.get(name.trim()).cloned();
    }
    let value = match value.strip_prefix('&') {
        Some(rest) => rest.split_once(' ').map_or("", |(_, v)| v.trim()),
        None => value,
    };
    Some(unquote(value).unwrap_or(value).to_owned())
}

/// `&name value` on a line: the scalars that aliases may stand for.
fn anchors(yaml: &str) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    for line in yaml.lines() {
        let code = strip_comment(line);
        let Some((_, value)) = code.split_once(": &") else {
            continue;
        };
        if let Some((name, rest)) = value.split_once(' ') {
            let rest = rest.trim();
            found.insert(name.to_owned(), unquote(rest).unwrap_or(rest).to_owned());
        }
    }
    found
}

/// The text between matching quotes, when the whole value is quoted.
fn unquote(value: &str) -> Option<&str> {
    ['"', '\''].into_iter().find_map(|q| {
        value
            .strip_prefix(q)
            .and_then(|v| v.strip_suffix(q))
            .filter(|_| value.len() >= 2)
    })
}

/// The line without its comment: a `#` at the start or after a blank, outside quotes.
fn strip_comment(line: &str) -> &str {
    let mut quote = None;
    let mut previous = ' ';
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && previous.is_whitespace() => return &line[..i],
            None => {}
        }
        previous = c;
    }
    line
}

/// Compose's interpolation with nothing set: `$$` is `$`, `${V:-d}` and `${V-d}` are `d`,
/// `${V}` and `$V` are empty.
fn interpolate(value: &str) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').unwrap_or(body.len());
            let inner = &body[..end];
            if let Some((_, default)) = inner.split_once(":-").or_else(|| inner.split_once('-')) {
                out.push_str(default);
            }
            rest = body.get(end + 1..).unwrap_or("");
        } else {
            let name_len = after
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(after.len());
            if name_len == 0 {
                out.push('$');
            }
            rest = &after[name_len..];
        }
    }
    out.push_str(rest);
    out
}
