//! Sealed-box interop with libsodium through PyNaCl, the reference GitHub documents for
//! encrypting Actions secrets: a secret sealed by our code opens in PyNaCl, and a fixed
//! vector sealed by PyNaCl (tests/data/sealed_box/pynacl_vector.json, kept so this side
//! runs without Python) opens in ours. The PyNaCl half is skipped with a notice when
//! Python lacks `nacl`, unless `PIPEWRIGHT_REQUIRE_PYNACL=1` (CI installs it).

use std::io::Write as _;
use std::process::{Command, Stdio};

use pipewright::crypto::{
    generate_box_keypair, open_sealed_box, seal_for_public_key, SealedBoxError,
};

fn vector() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sealed_box/pynacl_vector.json"
    ))
    .unwrap();
    serde_json::from_str(&text).unwrap()
}

#[test]
fn pynacl_vector_opens_here() {
    let v = vector();
    let plain = open_sealed_box(
        v["secret_key"].as_str().unwrap(),
        v["sealed"].as_str().unwrap(),
    )
    .unwrap();
    assert_eq!(std::str::from_utf8(&plain).unwrap(), v["plaintext"]);
    // One flipped bit, or another key: refused.
    let mut raw = base64_decode(v["sealed"].as_str().unwrap());
    raw[40] ^= 1;
    assert_eq!(
        open_sealed_box(v["secret_key"].as_str().unwrap(), &base64_encode(&raw)).unwrap_err(),
        SealedBoxError::Open
    );
    let (other, _) = generate_box_keypair();
    assert!(open_sealed_box(&other, v["sealed"].as_str().unwrap()).is_err());
}

#[test]
fn our_sealed_box_round_trips_and_rejects_bad_keys() {
    let (sk, pk) = generate_box_keypair();
    let a = seal_for_public_key(&pk, b"fo1_token").unwrap();
    let b = seal_for_public_key(&pk, b"fo1_token").unwrap();
    assert_ne!(a, b, "an ephemeral key per seal");
    // 32-byte ephemeral key + 16-byte tag + message.
    assert_eq!(base64_decode(&a).len(), 32 + 16 + 9);
    assert_eq!(&open_sealed_box(&sk, &a).unwrap()[..], b"fo1_token");
    assert_eq!(
        seal_for_public_key("not base64!", b"x").unwrap_err(),
        SealedBoxError::BadPublicKey
    );
    assert_eq!(
        seal_for_public_key(&base64_encode(&[1u8; 31]), b"x").unwrap_err(),
        SealedBoxError::BadPublicKey
    );
}

#[test]
fn our_sealed_box_opens_in_pynacl() {
    let has_nacl = Command::new("python3")
        .args(["-c", "import nacl.public"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_nacl {
        if std::env::var("PIPEWRIGHT_REQUIRE_PYNACL").as_deref() == Ok("1") {
            panic!("PIPEWRIGHT_REQUIRE_PYNACL=1 but python3 cannot import nacl");
        }
        eprintln!("skipped: PyNaCl half of the sealed-box interop test (pip install pynacl)");
        return;
    }
    let (sk, pk) = generate_box_keypair();
    for message in ["fo1_short", "ünïcødé ✓ secret", &"x".repeat(5000)] {
        let sealed = seal_for_public_key(&pk, message.as_bytes()).unwrap();
        let mut child = Command::new("python3")
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/sealed_box/open_with_pynacl.py"
            ))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let req = serde_json::json!({ "secret_key": sk, "sealed": sealed });
        child
            .stdin
            .take()
            .unwrap()
            .write_all(req.to_string().as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8(out.stdout).unwrap(), message);
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}
