//! Key files and `custody keys`: one test per rule.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use clap::Parser;
use custody_cli::envelope::{unwrap, wrap, DataKey};
use custody_cli::keyfile::{
    read_department_key, read_member_key, run_keys_to, KeyFile, KeyFileError, KeyFileSummary,
    KeyKind, KeysArgs, KeysCommandError, Passphrase, SealParams, SecretKey,
};
use ed25519_dalek::{Signer, Verifier};
use proptest::prelude::*;

/// Cheap Argon2id parameters so that tests stay fast; the format records
/// them, so reading works the same with the defaults.
const TEST_PARAMS: SealParams = SealParams {
    memory_kib: 64,
    iterations: 1,
    parallelism: 1,
};

fn passphrase(text: &str) -> Passphrase {
    Passphrase::new(text.as_bytes().to_vec()).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn write_key(path: &Path, kind: KeyKind, sealed_with: Option<&str>) -> SecretKey {
    let secret = SecretKey::generate(kind).unwrap();
    let passphrase = sealed_with.map(passphrase);
    KeyFile::seal(&secret, passphrase.as_ref().map(|p| (p, TEST_PARAMS)))
        .unwrap()
        .write(path, false)
        .unwrap();
    secret
}

#[test]
fn member_key_file_is_written_0600_and_signs_as_recorded() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("clerk.key");
    let secret = write_key(&path, KeyKind::Member, None);
    assert_eq!(mode(&path), 0o600);
    let signing_key = read_member_key(&path, None).unwrap();
    assert_eq!(signing_key.verifying_key().to_bytes(), secret.public_key());
    let signature = signing_key.sign(b"custody");
    assert!(signing_key
        .verifying_key()
        .verify(b"custody", &signature)
        .is_ok());
    let files: Vec<_> = std::fs::read_dir(directory.path()).unwrap().collect();
    assert_eq!(files.len(), 1, "a temporary file was left behind");
}

#[test]
fn department_key_file_sealed_with_a_passphrase_opens_with_it() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("department.key");
    let secret = write_key(&path, KeyKind::Department, Some("correct horse"));
    let key_file = KeyFile::read(&path).unwrap();
    assert!(key_file.is_passphrase_protected());
    assert_eq!(key_file.seal_params(), Some(TEST_PARAMS));
    let department = read_department_key(&path, Some(&passphrase("correct horse"))).unwrap();
    assert_eq!(department.public_key().0, secret.public_key());
    let data_key = DataKey::generate().unwrap();
    let wrapped = wrap(&data_key, &department.public_key()).unwrap();
    assert_eq!(unwrap(&wrapped, &department).unwrap(), data_key);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(!text.contains(&hex::encode(department.to_bytes().as_ref())));
}

#[test]
fn wrong_passphrase_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("department.key");
    write_key(&path, KeyKind::Department, Some("correct horse"));
    let error = read_department_key(&path, Some(&passphrase("battery staple"))).unwrap_err();
    assert!(
        matches!(error, KeyFileError::WrongPassphrase { .. }),
        "{error}"
    );
    let message = error.to_string();
    assert!(message.contains("passphrase is wrong"), "{message}");
    assert!(message.contains("department.key"), "{message}");
}

#[test]
fn missing_passphrase_is_refused_with_how_to_give_one() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("member.key");
    write_key(&path, KeyKind::Member, Some("secret"));
    let error = read_member_key(&path, None).unwrap_err();
    assert!(
        matches!(error, KeyFileError::PassphraseRequired { .. }),
        "{error}"
    );
    assert!(error.to_string().contains("--passphrase-env"), "{error}");
}

#[test]
fn permissive_file_mode_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("member.key");
    write_key(&path, KeyKind::Member, None);
    for permissive in [0o640, 0o604, 0o644, 0o660, 0o602] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(permissive)).unwrap();
        let error = KeyFile::read(&path).unwrap_err();
        assert!(
            matches!(error, KeyFileError::PermissiveMode { mode, .. } if mode == permissive),
            "{permissive:o}: {error}"
        );
        assert!(error.to_string().contains("chmod 600"), "{error}");
    }
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o400)).unwrap();
    assert!(KeyFile::read(&path).is_ok());
}

#[test]
fn existing_key_file_is_not_replaced_without_force() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("member.key");
    let first = write_key(&path, KeyKind::Member, None);
    let second = SecretKey::generate(KeyKind::Member).unwrap();
    let key_file = KeyFile::seal(&second, None).unwrap();
    let error = key_file.write(&path, false).unwrap_err();
    assert!(
        matches!(error, KeyFileError::AlreadyExists { .. }),
        "{error}"
    );
    assert_eq!(
        KeyFile::read(&path).unwrap().public_key(),
        first.public_key()
    );
    key_file.write(&path, true).unwrap();
    assert_eq!(
        KeyFile::read(&path).unwrap().public_key(),
        second.public_key()
    );
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn altered_public_key_is_refused() {
    let secret = SecretKey::generate(KeyKind::Member).unwrap();
    let other = SecretKey::generate(KeyKind::Member).unwrap();
    let text = KeyFile::seal(&secret, None).unwrap().to_json().unwrap();
    let altered = text.replace(
        &hex::encode(secret.public_key()),
        &hex::encode(other.public_key()),
    );
    let error = KeyFile::parse(&altered, "altered").unwrap_err();
    assert!(
        matches!(error, KeyFileError::PublicKeyMismatch { .. }),
        "{error}"
    );

    // Sealed: the public key is bound into the associated data.
    let sealed = KeyFile::seal(&secret, Some((&passphrase("p"), TEST_PARAMS)))
        .unwrap()
        .to_json()
        .unwrap();
    let altered = sealed.replace(
        &hex::encode(secret.public_key()),
        &hex::encode(other.public_key()),
    );
    let key_file = KeyFile::parse(&altered, "altered").unwrap();
    assert!(matches!(
        key_file.open(Some(&passphrase("p"))),
        Err(KeyFileError::WrongPassphrase { .. })
    ));
}

#[test]
fn key_of_the_wrong_kind_is_refused() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("member.key");
    write_key(&path, KeyKind::Member, None);
    let error = read_department_key(&path, None).unwrap_err();
    assert!(
        matches!(
            error,
            KeyFileError::WrongKind {
                expected: KeyKind::Department,
                found: KeyKind::Member,
                ..
            }
        ),
        "{error}"
    );
}

#[test]
fn excessive_argon2_parameters_are_refused_before_any_work() {
    let secret = SecretKey::generate(KeyKind::Member).unwrap();
    let text = KeyFile::seal(&secret, Some((&passphrase("p"), TEST_PARAMS)))
        .unwrap()
        .to_json()
        .unwrap();
    let hostile = text.replace("\"memory_kib\": 64,", "\"memory_kib\": 4000000000,");
    assert_ne!(hostile, text);
    let key_file = KeyFile::parse(&hostile, "hostile").unwrap();
    let error = key_file.open(Some(&passphrase("p"))).unwrap_err();
    assert!(
        matches!(error, KeyFileError::KdfParameters { .. }),
        "{error}"
    );
}

#[test]
fn unknown_fields_and_formats_are_refused() {
    let secret = SecretKey::generate(KeyKind::Member).unwrap();
    let text = KeyFile::seal(&secret, None).unwrap().to_json().unwrap();
    for (from, to) in [
        ("\"version\": 1", "\"version\": 2"),
        ("custody-key-file", "other-key-file"),
        ("\"kind\": \"member\"", "\"kind\": \"validator\""),
        ("\"protection\": \"none\"", "\"protection\": \"hsm\""),
        ("\"version\": 1", "\"version\": 1, \"extra\": true"),
        (
            "\"protection\": \"none\"",
            "\"protection\": \"none\", \"extra\": 1",
        ),
    ] {
        let altered = text.replacen(from, to, 1);
        assert_ne!(altered, text, "{from}");
        assert!(
            matches!(
                KeyFile::parse(&altered, "x"),
                Err(KeyFileError::Malformed { .. })
            ),
            "{to}"
        );
    }
}

#[test]
fn empty_passphrase_is_refused() {
    assert!(matches!(
        Passphrase::new(Vec::new()),
        Err(KeyFileError::PassphraseEmpty)
    ));
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("pass");
    std::fs::write(&path, "\n").unwrap();
    assert!(matches!(
        Passphrase::from_file(&path),
        Err(KeyFileError::PassphraseEmpty)
    ));
}

/// `custody keys …` as the CLI's main will mount it.
#[derive(Parser)]
struct TestCli {
    #[command(subcommand)]
    command: TestCommand,
}

#[derive(clap::Subcommand)]
enum TestCommand {
    Keys(KeysArgs),
}

fn run(arguments: &[&str]) -> Result<String, KeysCommandError> {
    let mut all = vec!["custody", "keys"];
    all.extend_from_slice(arguments);
    let TestCommand::Keys(args) = TestCli::try_parse_from(all).unwrap().command;
    let mut output = Vec::new();
    run_keys_to(args, &mut output)?;
    Ok(String::from_utf8(output).unwrap())
}

#[test]
fn keys_new_and_show_print_the_same_public_key() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("dept.key");
    let path_text = path.to_str().unwrap();
    let created = run(&["new", "--kind", "department", "--out", path_text, "--json"]).unwrap();
    let created: KeyFileSummary = serde_json::from_str(&created).unwrap();
    assert_eq!(created.kind, KeyKind::Department);
    assert!(!created.passphrase_protected);
    assert_eq!(mode(&path), 0o600);

    let shown = run(&["show", path_text, "--json"]).unwrap();
    let shown: KeyFileSummary = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown, created);
    let text = run(&["show", path_text]).unwrap();
    assert!(
        text.contains(&format!("public key: {}", created.public_key)),
        "{text}"
    );

    let error = run(&["new", "--kind", "member", "--out", path_text]).unwrap_err();
    assert!(error.to_string().contains("already exists"), "{error}");
}

#[test]
fn keys_new_seals_with_the_passphrase_from_a_file() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("clerk.key");
    let passphrase_path = directory.path().join("passphrase");
    std::fs::write(&passphrase_path, "open sesame\n").unwrap();
    let output = run(&[
        "new",
        "--kind",
        "member",
        "--out",
        path.to_str().unwrap(),
        "--passphrase-file",
        passphrase_path.to_str().unwrap(),
    ])
    .unwrap();
    assert!(output.contains("passphrase: yes"), "{output}");
    let key_file = KeyFile::read(&path).unwrap();
    assert_eq!(key_file.seal_params(), Some(SealParams::DEFAULT));
    let signing_key = key_file
        .open_member(Some(&passphrase("open sesame")))
        .unwrap();
    assert_eq!(
        signing_key.verifying_key().to_bytes(),
        key_file.public_key()
    );
}

#[test]
fn keys_new_refuses_both_passphrase_sources() {
    let parsed = TestCli::try_parse_from([
        "custody",
        "keys",
        "new",
        "--kind",
        "member",
        "--out",
        "x",
        "--passphrase-env",
        "A",
        "--passphrase-file",
        "B",
    ]);
    assert!(parsed.is_err());
}

#[test]
fn keys_new_reports_a_missing_passphrase_variable() {
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("clerk.key");
    let error = run(&[
        "new",
        "--kind",
        "member",
        "--out",
        path.to_str().unwrap(),
        "--passphrase-env",
        "CUSTODY_TEST_PASSPHRASE_THAT_IS_NOT_SET",
    ])
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("CUSTODY_TEST_PASSPHRASE_THAT_IS_NOT_SET"),
        "{error}"
    );
    assert!(!path.exists());
}

proptest! {
    #[test]
    fn random_text_to_the_key_file_parser_never_panics(text in ".{0,400}") {
        let _ = KeyFile::parse(&text, "random");
    }

    #[test]
    fn any_secret_round_trips_through_a_plain_key_file(member in any::<bool>()) {
        let kind = if member { KeyKind::Member } else { KeyKind::Department };
        let secret = SecretKey::generate(kind).unwrap();
        let text = KeyFile::seal(&secret, None).unwrap().to_json().unwrap();
        let opened = KeyFile::parse(&text, "round trip").unwrap().open(None).unwrap();
        prop_assert_eq!(opened.public_key(), secret.public_key());
        prop_assert_eq!(opened.kind(), kind);
    }
}
