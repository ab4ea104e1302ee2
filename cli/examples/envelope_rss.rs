//! Encrypts and decrypts a generated document of a given size and prints
//! throughput and peak resident memory, next to the machine's raw SHA-256
//! and XChaCha20-Poly1305 throughput measured in the same run.
//!
//! ```sh
//! cargo run --release -p custody-cli --example envelope_rss -- --size-mib 1024
//! ```
//!
//! The document streams from a generator (never held in memory); the
//! envelope is written to a temporary file (and, a second time, to a sink)
//! and decrypted from the file to a sink, so the peak RSS is what the
//! envelope code itself needs.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read};
use std::time::{Duration, Instant};

use chacha20poly1305::aead::{AeadInOut, KeyInit};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use custody_cli::envelope::{decrypt, encrypt_with, DataKey, EncryptOptions, CHUNK_BYTES_DEFAULT};
use custody_cli::keyfile::{KeyFile, KeyKind, Passphrase, SealParams, SecretKey};
use sha2::{Digest, Sha256};

const MIB: u64 = 1024 * 1024;

/// Deterministic pseudo-random bytes (xorshift64*), `remaining` of them.
struct Generator {
    state: u64,
    remaining: u64,
}

impl Read for Generator {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let length = buffer.len().min(self.remaining as usize) & !7;
        let length = if length == 0 {
            buffer.len().min(self.remaining as usize)
        } else {
            length
        };
        for word in buffer[..length].chunks_mut(8) {
            self.state ^= self.state >> 12;
            self.state ^= self.state << 25;
            self.state ^= self.state >> 27;
            let value = self.state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
            word.copy_from_slice(&value[..word.len()]);
        }
        self.remaining -= length as u64;
        Ok(length)
    }
}

fn status_field_kib(name: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with(name))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib_per_second(bytes: u64, elapsed: Duration) -> f64 {
    bytes as f64 / MIB as f64 / elapsed.as_secs_f64()
}

fn raw_sha256(bytes: u64) -> Duration {
    let buffer = vec![0x5au8; MIB as usize];
    let start = Instant::now();
    let mut hasher = Sha256::new();
    for _ in 0..bytes / MIB {
        hasher.update(&buffer);
    }
    std::hint::black_box(hasher.finalize());
    start.elapsed()
}

fn raw_aead(bytes: u64, chunk_bytes: usize) -> Duration {
    let cipher = XChaCha20Poly1305::new(&Key::from([7u8; 32]));
    let mut buffer = vec![0x5au8; chunk_bytes];
    let start = Instant::now();
    let mut counter = 0u64;
    let mut done = 0u64;
    while done < bytes {
        let mut nonce = [0u8; 24];
        nonce[..8].copy_from_slice(&counter.to_be_bytes());
        let tag = cipher
            .encrypt_inout_detached(&XNonce::from(nonce), b"", buffer.as_mut_slice().into())
            .unwrap_or_default();
        std::hint::black_box(tag);
        counter += 1;
        done += chunk_bytes as u64;
    }
    start.elapsed()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut size_mib: u64 = 1024;
    let mut chunk_kib: u32 = CHUNK_BYTES_DEFAULT / 1024;
    let mut directory = std::env::temp_dir();
    let mut open_sealed_key = false;
    let mut arguments = std::env::args().skip(1);
    while let Some(argument) = arguments.next() {
        let mut value = || arguments.next().ok_or(format!("{argument} needs a value"));
        match argument.as_str() {
            "--size-mib" => size_mib = value()?.parse()?,
            "--chunk-kib" => chunk_kib = value()?.parse()?,
            "--dir" => directory = value()?.into(),
            "--open-sealed-key" => open_sealed_key = true,
            _ => {
                return Err(format!(
                    "unknown argument {argument}; usage: envelope_rss [--size-mib N] [--chunk-kib K] [--dir DIR] [--open-sealed-key]"
                )
                .into())
            }
        }
    }
    let size_bytes = size_mib * MIB;
    let chunk_bytes = chunk_kib * 1024;
    let baseline_rss_kib = status_field_kib("VmHWM:").unwrap_or(0);

    // The machine's limits, measured in this run, before and after the
    // envelope passes; the better of the two is used, since other work on a
    // shared machine can only slow a measurement down.
    let raw_sample_bytes = size_bytes.clamp(MIB, 512 * MIB);
    let measure_raw = || {
        (
            mib_per_second(raw_sample_bytes, raw_sha256(raw_sample_bytes)),
            mib_per_second(
                raw_sample_bytes,
                raw_aead(raw_sample_bytes, chunk_bytes as usize),
            ),
        )
    };
    let (sha256_before, aead_before) = measure_raw();
    // What `custody doc open` does first with a passphrase-protected
    // department key: Argon2id with the default parameters, whose memory
    // cost dominates the CLI's peak.
    let mut sealed_key_rss_kib = None;
    if open_sealed_key {
        let passphrase = Passphrase::new(b"measure".to_vec())?;
        let secret = SecretKey::generate(KeyKind::Department)?;
        let key_file = KeyFile::seal(&secret, Some((&passphrase, SealParams::DEFAULT)))?;
        let start = Instant::now();
        key_file.open(Some(&passphrase))?;
        println!(
            "opened a sealed key (argon2id {} KiB, {} passes): {:.2} s",
            SealParams::DEFAULT.memory_kib,
            SealParams::DEFAULT.iterations,
            start.elapsed().as_secs_f64()
        );
        sealed_key_rss_kib = status_field_kib("VmHWM:");
    }

    let data_key = DataKey::generate()?;
    let envelope_file = tempfile::NamedTempFile::new_in(&directory)?;

    let start = Instant::now();
    let generator = Generator {
        state: 0x9e37_79b9_7f4a_7c15,
        remaining: size_bytes,
    };
    let sealed = encrypt_with(
        generator,
        BufWriter::with_capacity(256 * 1024, envelope_file.as_file()),
        &data_key,
        EncryptOptions { chunk_bytes },
    )?;
    let encrypt_elapsed = start.elapsed();

    // The same pass into a sink separates the cipher and hash cost from the
    // cost of writing a gigabyte to the file system.
    let start = Instant::now();
    let generator = Generator {
        state: 0x9e37_79b9_7f4a_7c15,
        remaining: size_bytes,
    };
    let sealed_again = encrypt_with(
        generator,
        std::io::sink(),
        &data_key,
        EncryptOptions { chunk_bytes },
    )?;
    let encrypt_sink_elapsed = start.elapsed();
    if sealed_again.plaintext != sealed.plaintext {
        return Err("the generator is not deterministic".into());
    }

    let start = Instant::now();
    let opened = decrypt(
        BufReader::with_capacity(256 * 1024, File::open(envelope_file.path())?),
        std::io::sink(),
        &data_key,
    )?;
    let decrypt_elapsed = start.elapsed();
    if opened != sealed {
        return Err("decrypt did not reproduce the plaintext fixity".into());
    }

    let peak_rss_kib = status_field_kib("VmHWM:").unwrap_or(0);
    let (sha256_after, aead_after) = measure_raw();
    let sha256_mib_s = sha256_before.max(sha256_after);
    let aead_mib_s = aead_before.max(aead_after);
    // Encrypting hashes the plaintext and the ciphertext and runs the AEAD
    // once over every byte: that is the most the envelope can reach.
    let limit_mib_s = 1.0 / (2.0 / sha256_mib_s + 1.0 / aead_mib_s);
    let encrypt_mib_s = mib_per_second(size_bytes, encrypt_elapsed);
    let decrypt_mib_s = mib_per_second(size_bytes, decrypt_elapsed);
    let encrypt_sink_mib_s = mib_per_second(size_bytes, encrypt_sink_elapsed);
    println!(
        "document: {size_mib} MiB generated, chunk {chunk_kib} KiB, {} chunks",
        sealed.chunk_count
    );
    println!(
        "envelope: {} bytes, sha256 {}",
        sealed.ciphertext.size_bytes,
        hex::encode(sealed.ciphertext.sha256)
    );
    println!(
        "raw sha256 (this run):              {sha256_mib_s:8.1} MiB/s  (before {sha256_before:.1}, after {sha256_after:.1})"
    );
    println!(
        "raw xchacha20-poly1305 (this run):  {aead_mib_s:8.1} MiB/s  (before {aead_before:.1}, after {aead_after:.1})"
    );
    println!("limit 1/(2/sha256 + 1/aead):        {limit_mib_s:8.1} MiB/s");
    println!(
        "encrypt (generator -> file):        {encrypt_mib_s:8.1} MiB/s  {:.2} s  {:.2}x raw sha256  {:.2}x limit",
        encrypt_elapsed.as_secs_f64(),
        encrypt_mib_s / sha256_mib_s,
        encrypt_mib_s / limit_mib_s
    );
    println!(
        "encrypt (generator -> sink):        {encrypt_sink_mib_s:8.1} MiB/s  {:.2} s  {:.2}x raw sha256  {:.2}x limit",
        encrypt_sink_elapsed.as_secs_f64(),
        encrypt_sink_mib_s / sha256_mib_s,
        encrypt_sink_mib_s / limit_mib_s
    );
    println!(
        "decrypt (file -> sink):             {decrypt_mib_s:8.1} MiB/s  {:.2} s  {:.2}x raw sha256  {:.2}x limit",
        decrypt_elapsed.as_secs_f64(),
        decrypt_mib_s / sha256_mib_s,
        decrypt_mib_s / limit_mib_s
    );
    println!(
        "peak RSS (VmHWM): {:.1} MiB (at start {:.1} MiB)",
        peak_rss_kib as f64 / 1024.0,
        baseline_rss_kib as f64 / 1024.0
    );
    if let Some(kib) = sealed_key_rss_kib {
        println!(
            "peak RSS after opening the sealed key, before the envelope: {:.1} MiB",
            kib as f64 / 1024.0
        );
    }
    Ok(())
}
