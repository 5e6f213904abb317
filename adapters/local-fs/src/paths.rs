//! Turning the names the store is given into paths under its root, refusing every name that
//! could lead anywhere else.
//!
//! Blob paths come from the domain (`{mode prefix}/{file id}/{sanitized name}`), and upload and
//! part ids from this store itself, but all of them come back through the metadata store: they
//! are checked again here, on every call, before they touch the file system.

use std::path::{Path, PathBuf};

/// Longest upload or part id accepted. Ours are 32 and 38 characters long.
const MAX_ID_LEN: usize = 64;

/// Resolves a blob path under `root`, segment by segment. Refused: an empty path; an empty
/// segment (a leading, trailing or doubled `/`); `.` and `..`; a segment starting with `.`
/// (hidden names belong to the store: its `.staging` area and its temporary files); and any
/// `\`, `:` or NUL, which are separators or prefixes on some systems.
pub(crate) fn resolve(root: &Path, path: &str) -> Result<PathBuf, String> {
    if path.is_empty() {
        return Err("the path is empty".to_owned());
    }
    let mut resolved = root.to_path_buf();
    for segment in path.split('/') {
        check_segment(segment)?;
        resolved.push(segment);
    }
    Ok(resolved)
}

fn check_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() {
        return Err("it has an empty segment (a leading, trailing or doubled `/`)".to_owned());
    }
    if segment == "." || segment == ".." {
        return Err(format!("it has a `{segment}` segment"));
    }
    if segment.starts_with('.') {
        return Err(format!(
            "the segment {segment:?} starts with `.` (hidden names are the store's own)"
        ));
    }
    if let Some(c) = segment.chars().find(|c| matches!(c, '\\' | ':' | '\0')) {
        return Err(format!(
            "the segment {segment:?} holds {c:?}, a separator or prefix on some systems"
        ));
    }
    Ok(())
}

/// Checks that an upload or part id is one plain file name: 1 to 64 ASCII letters, digits,
/// `-` or `_`. That excludes separators, `.`, `..` and hidden names at once.
pub(crate) fn check_id(id: &str, what: &str) -> Result<(), String> {
    let plain = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if plain {
        Ok(())
    } else {
        Err(format!(
            "the {what} {id:?} is not a plain name (1 to {MAX_ID_LEN} ASCII letters, digits, `-` or `_`)"
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::path::Component;

    use filegate_domain::{BlobPath, FileId, FileName, FirmId, Mode, UserId};
    use proptest::prelude::*;
    use uuid::Uuid;

    use super::*;

    fn root() -> PathBuf {
        PathBuf::from("/srv/blobs")
    }

    /// What every accepted path must be: the root, then exactly one plain, visible component
    /// per segment.
    fn assert_stays_inside(path: &str, resolved: &Path) {
        let rest = resolved
            .strip_prefix(root())
            .unwrap_or_else(|_| panic!("{path:?} resolved outside the root: {resolved:?}"));
        let components: Vec<_> = rest.components().collect();
        assert_eq!(
            components.len(),
            path.split('/').count(),
            "{path:?} resolved to {resolved:?}"
        );
        for c in components {
            match c {
                Component::Normal(name) => {
                    let name = name.to_str().unwrap();
                    assert!(!name.starts_with('.'), "{path:?} reaches a hidden name");
                }
                other => panic!("{path:?} resolved through {other:?}"),
            }
        }
    }

    #[test]
    fn domain_paths_resolve_under_the_root() {
        let path = BlobPath::for_file(
            Mode::Import,
            FirmId::from_uuid(Uuid::from_u128(7)),
            UserId::from_uuid(Uuid::from_u128(8)),
            FileId::from_uuid(Uuid::from_u128(9)),
            &FileName::sanitize("Résumé [final] (v2) +copy, @home.pdf"),
        );
        let resolved = resolve(&root(), path.as_str()).unwrap();
        assert_eq!(resolved, root().join(path.as_str()));
        assert_stays_inside(path.as_str(), &resolved);
    }

    #[test]
    fn nasty_paths_are_refused() {
        let nasty = [
            "",
            "/",
            "/etc/passwd",
            "a//b",
            "a/b/",
            ".",
            "..",
            "../x",
            "a/../../x",
            "a/./b",
            "a/..",
            ".staging/0123/00000-ab",
            "a/.staging",
            "a/.hidden",
            "a/.filegate-commit-1.tmp",
            "...",
            "a\\..\\..\\x",
            "a/b\\c",
            "C:/x",
            "a/C:x",
            "a/b:stream",
            "a/b\0c",
            "\0",
            "a/\0",
        ];
        for path in nasty {
            assert!(resolve(&root(), path).is_err(), "{path:?} must be refused");
        }
    }

    #[test]
    fn ordinary_names_with_dots_inside_are_fine() {
        for path in [
            "a/b.c",
            "a/b..c",
            "a/b.",
            "firms/x/y/archive.tar.gz",
            "a/ b ",
        ] {
            let resolved = resolve(&root(), path).unwrap();
            assert_stays_inside(path, &resolved);
        }
    }

    #[test]
    fn ids_must_be_plain_names() {
        for ok in [
            "0123456789abcdef0123456789abcdef",
            "00003-0123456789abcdef0123456789abcdef",
            "A_b-C",
        ] {
            assert!(check_id(ok, "part id").is_ok(), "{ok:?}");
        }
        let long = "a".repeat(MAX_ID_LEN + 1);
        for bad in [
            "", ".", "..", "../x", "a/b", "a\\b", ".hidden", "a.b", "a\0", "a b", "é", &long,
        ] {
            assert!(check_id(bad, "part id").is_err(), "{bad:?} must be refused");
        }
    }

    proptest! {
        #[test]
        fn no_accepted_path_leaves_the_root_or_reaches_a_hidden_name(
            path in prop_oneof![
                any::<String>(),
                "[a./\\\\:\u{0}]{0,16}",
                proptest::collection::vec(prop_oneof![
                    Just("..".to_owned()),
                    Just(".".to_owned()),
                    Just(String::new()),
                    Just(".staging".to_owned()),
                    "[a-z.]{1,4}",
                ], 1..6).prop_map(|segments| segments.join("/")),
            ]
        ) {
            if let Ok(resolved) = resolve(&root(), &path) {
                assert_stays_inside(&path, &resolved);
            }
        }

        #[test]
        fn every_domain_path_is_accepted(raw in any::<String>(), mode in 0usize..6) {
            let path = BlobPath::for_file(
                Mode::ALL[mode],
                FirmId::from_uuid(Uuid::new_v4()),
                UserId::from_uuid(Uuid::new_v4()),
                FileId::from_uuid(Uuid::new_v4()),
                &FileName::sanitize(&raw),
            );
            let resolved = resolve(&root(), path.as_str());
            prop_assert!(resolved.is_ok(), "{path} refused: {resolved:?}");
        }

        #[test]
        fn an_id_is_accepted_only_as_one_plain_name(id in any::<String>()) {
            if check_id(&id, "upload id").is_ok() {
                let root = root();
                let joined = root.join(&id);
                prop_assert_eq!(joined.parent(), Some(root.as_path()));
                prop_assert!(!id.starts_with('.'));
            }
        }
    }
}
