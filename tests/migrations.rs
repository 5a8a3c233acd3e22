//! The two migration folders describe the same schema: same files, and the same
//! statements once the few spellings that must differ are normalised. Both are applied
//! for real by every database test (see `support/db.rs`).

use std::path::Path;

fn normalise(sql: &str) -> String {
    sql.lines()
        .filter(|l| !l.trim_start().starts_with("--"))
        .collect::<Vec<_>>()
        .join("\n")
        // The one type that must differ: auto-increment primary keys.
        .replace("INTEGER PRIMARY KEY AUTOINCREMENT", "<identity>")
        .replace(
            "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
            "<identity>",
        )
        // PostgreSQL-only storage tuning (autovacuum) has no SQLite counterpart.
        .split("ALTER TABLE jobs SET (")
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn sqlite_and_postgres_migrations_match() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let (sqlite, postgres) = (root.join("sqlite"), root.join("postgres"));
    let names = files(&sqlite);
    assert!(!names.is_empty());
    assert_eq!(names, files(&postgres), "migration file names differ");
    for name in names {
        let a = normalise(&std::fs::read_to_string(sqlite.join(&name)).unwrap());
        let b = normalise(&std::fs::read_to_string(postgres.join(&name)).unwrap());
        assert_eq!(a, b, "{name} differs between backends");
        // Timestamps are application-supplied milliseconds; no backend-specific time types.
        for banned in ["TIMESTAMP", "now()", "CURRENT_TIMESTAMP", "SERIAL"] {
            assert!(!a.contains(banned), "{name} uses {banned}");
        }
    }
}
