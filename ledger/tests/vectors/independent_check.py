#!/usr/bin/env python3
"""An independent check of v1.json (and of v4.json, the sealed kinds)
written from docs/format.md alone.

Parses the canonical bytes of the transactions, the block (header,
transactions, certificate), the certificate and the registration event by
the layouts in docs/format.md, requires every byte to be consumed and every
varint to be in shortest form, and recomputes transaction ids, the Merkle
root and proof, the block hash, the certificate hash, the commit-vote bytes
and the event hash. Ed25519 signatures are not checked here (the standard
library has no Ed25519). Exit status 0 when everything matches.

For v4.json: the sealed transactions and block 2, the events' hashes, the
metadata keys (HKDF-SHA256, written here with hmac) and the associated data
of every sealed text; and, when the `cryptography` package is installed,
opens every sealed text with XChaCha20-Poly1305 (HChaCha20 written here,
then the package's ChaCha20-Poly1305).
"""
import hashlib
import hmac
import json
import struct
import sys


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise ValueError("truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def varint(self, max_bytes=10):
        start, value, shift = self.pos, 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
            if self.pos - start >= max_bytes:
                raise ValueError("varint too long")
        if len(encode_varint(value)) != self.pos - start:
            raise ValueError("varint not in shortest form")
        return value

    def string(self):
        return self.take(self.varint()).decode("utf-8")

    def byte_string(self):
        return self.take(self.varint())

    def option(self, inner):
        flag = self.take(1)[0]
        if flag not in (0, 1):
            raise ValueError("bad option flag")
        return inner() if flag else None

    def seq(self, inner):
        return [inner() for _ in range(self.varint())]

    def done(self):
        if self.pos != len(self.data):
            raise ValueError("%d trailing bytes" % (len(self.data) - self.pos))


def encode_varint(value):
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tagged(tag, body):
    return bytes([len(tag)]) + tag.encode("ascii") + body


def sha256(data):
    return hashlib.sha256(data).digest()


def fixity(r):
    return (r.take(32), r.varint())


def fmt(r):
    return (r.string(), r.option(r.string))


def tx_body(r):
    """Reads a TxBody (docs/format.md section 3) and returns its variant."""
    variant = r.varint(5)
    doc_prev = lambda: (r.string(), r.take(32))
    if variant == 0:  # enroll-member
        r.take(32); r.string(); r.string(); r.seq(r.varint); r.varint()
    elif variant == 1:  # update-member
        r.take(32); r.seq(r.varint); r.varint()
    elif variant == 2:  # revoke-member
        r.take(32); r.string()
    elif variant == 4:  # approve-change
        r.take(32)
    elif variant == 5:  # register
        r.string(); r.string(); r.string(); r.string(); r.varint(); r.varint()
        if r.varint(5) == 0:  # retention years(u16)
            r.varint(3)
        fmt(r); fixity(r); fixity(r); r.option(lambda: r.take(32)); r.take(r.varint())
    elif variant == 6:  # offer-transfer
        doc_prev(); r.string(); r.take(r.varint()); r.option(r.varint)
    elif variant == 7:  # accept-transfer
        doc_prev(); r.take(32)
    elif variant in (8, 15):  # reject-transfer, dispose
        doc_prev(); r.string()
    elif variant == 9:  # cancel-transfer
        doc_prev()
    elif variant == 10:  # grant-access
        doc_prev(); r.string(); r.take(r.varint()); r.varint()
    elif variant == 11:  # revoke-access
        doc_prev(); r.string()
    elif variant == 12:  # record-access
        doc_prev(); r.string(); r.take(32)
    elif variant == 13:  # amend
        doc_prev(); r.varint(); r.string(); fmt(r); fixity(r); fixity(r); r.take(r.varint())
    elif variant == 14:  # record-fixity-check
        doc_prev(); r.take(32); r.varint(); r.string()
    # Format version 4: every free text is a byte string (a sealed text).
    elif variant == 18:  # register-sealed
        r.string(); r.byte_string(); r.string(); r.string(); r.varint(); r.varint()
        if r.varint(5) == 0:
            r.varint(3)
        fmt(r); fixity(r); fixity(r); r.option(lambda: r.take(32)); r.byte_string()
    elif variant in (19, 23):  # reject-transfer-sealed, dispose-sealed
        doc_prev(); r.byte_string()
    elif variant == 20:  # record-access-sealed
        doc_prev(); r.byte_string(); r.take(32)
    elif variant == 21:  # amend-sealed
        doc_prev(); r.varint(); r.byte_string(); r.byte_string(); fmt(r); fixity(r); fixity(r)
        r.byte_string()
    elif variant == 22:  # record-fixity-check-sealed
        doc_prev(); r.take(32); r.varint(); r.byte_string()
    else:
        raise ValueError("variant %d not covered by this check" % variant)
    return variant


def signed_tx(r):
    """Returns (payload bytes, signature, whole bytes)."""
    start = r.pos
    r.varint(3); r.string(); r.take(32); r.varint(); tx_body(r)
    payload = r.data[start:r.pos]
    signature = r.take(64)
    return payload, signature, r.data[start:r.pos]


def certificate(r):
    start = r.pos
    height, rnd, block_hash = r.varint(), r.varint(), r.take(32)
    sigs = r.seq(lambda: (r.take(32), r.take(64)))
    keys = [k for k, _ in sigs]
    assert keys == sorted(set(keys)), "signatures sorted, no duplicates"
    return height, rnd, block_hash, sigs, r.data[start:r.pos]


def header(r):
    start = r.pos
    fields = dict(format_version=r.varint(3), chain_id=r.string(), height=r.varint(),
                  time=r.varint(), previous=r.take(32), tx_root=r.take(32),
                  proposer=r.take(32), validator_set_hash=r.take(32),
                  last_commit_hash=r.take(32))
    fields["bytes"] = r.data[start:r.pos]
    return fields


def leaf_hash(d):
    return sha256(b"\x00" + d)


def node_hash(left, right):
    return sha256(b"\x01" + left + right)


def merkle_root(leaves):
    if not leaves:
        return sha256(b"")
    if len(leaves) == 1:
        return leaf_hash(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return node_hash(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def verify_inclusion(root, data, index, size, path):
    if index >= size:
        return False
    fn, sn, r = index, size - 1, leaf_hash(data)
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn & 1 == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def hkdf_sha256(ikm, info, length=32):
    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()
    okm, block, counter = b"", b"", 1
    while len(okm) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        okm += block
        counter += 1
    return okm[:length]


def hchacha20(key, nonce16):
    mask = 0xFFFFFFFF
    x = [0x61707865, 0x3320646E, 0x79622D32, 0x6B206574]
    x += list(struct.unpack("<8I", key)) + list(struct.unpack("<4I", nonce16))

    def quarter(a, b, c, d):
        for (p, q, r, rot) in ((a, b, d, 16), (c, d, b, 12), (a, b, d, 8), (c, d, b, 7)):
            x[p] = (x[p] + x[q]) & mask
            x[r] ^= x[p]
            x[r] = ((x[r] << rot) & mask) | (x[r] >> (32 - rot))

    for _ in range(10):
        quarter(0, 4, 8, 12); quarter(1, 5, 9, 13); quarter(2, 6, 10, 14); quarter(3, 7, 11, 15)
        quarter(0, 5, 10, 15); quarter(1, 6, 11, 12); quarter(2, 7, 8, 13); quarter(3, 4, 9, 14)
    return struct.pack("<8I", *(x[0:4] + x[12:16]))


def open_sealed(metadata_key, sealed, associated_data):
    """XChaCha20-Poly1305: HChaCha20 subkey, then ChaCha20-Poly1305 with
    nonce 0x00000000 || the last 8 bytes of the 24-byte nonce."""
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    nonce, body = sealed[:24], sealed[24:]
    subkey = hchacha20(metadata_key, nonce[:16])
    return ChaCha20Poly1305(subkey).decrypt(bytes(4) + nonce[16:], body, associated_data)


def main_v4(v):
    hexb = bytes.fromhex
    ids = {}
    for t in v["transactions"]:
        r = Reader(hexb(t["canonical_hex"]))
        payload, signature, whole = signed_tx(r)
        r.done()
        assert Reader(payload).varint(3) == 4, "format version 4"
        assert tagged("custody/tx/v1", payload).hex() == t["signing_bytes_hex"]
        assert signature.hex() == t["signature"]
        tx_id = sha256(tagged("custody/tx-id/v1", whole))
        assert tx_id.hex() == t["id"], t["name"]
        ids[t["name"]] = (tx_id, t["applied"], whole)

    r = Reader(hexb(v["block"]["canonical_hex"]))
    h = header(r)
    txs = r.seq(lambda: signed_tx(r))
    last_commit = r.option(lambda: certificate(r))
    r.done()
    assert last_commit is not None and h["height"] == 2
    assert sha256(tagged("custody/certificate/v1", last_commit[4])) == h["last_commit_hash"]
    block_hash = sha256(tagged("custody/header/v1", h["bytes"]))
    assert block_hash.hex() == v["block"]["hash"]
    block_ids = [sha256(tagged("custody/tx-id/v1", whole)) for _, _, whole in txs]
    assert block_ids == [tx_id for tx_id, applied, _ in ids.values() if applied]
    assert merkle_root(block_ids) == h["tx_root"]

    for e in v["events"]:
        event = hexb(e["canonical_hex"])
        assert sha256(tagged("custody/event/v1", event)).hex() == e["hash"]
    first = Reader(hexb(v["events"][0]["canonical_hex"]))
    assert first.varint(3) == 4  # an event of a sealed kind is version 4
    first.string(); assert first.varint() == 0; assert first.take(32) == bytes(32)
    first.varint(); first.varint(); assert first.take(32) == block_ids[0]
    first.take(32); first.string()
    assert first.varint(5) == 11  # registered-sealed
    first.varint(); fixity(first); fixity(first); title = first.byte_string()
    first.done()

    document = v["document"].encode()
    keys = {}
    for k in v["metadata_keys"]:
        info = tagged("custody/metadata-key/v1", document)
        assert info.hex() == k["info_hex"]
        key = hkdf_sha256(hexb(k["data_key_hex"]), info)
        assert key.hex() == k["metadata_key_hex"]
        keys[k["version"]] = key
    try:
        import cryptography  # noqa: F401
        can_open = True
    except ImportError:
        can_open = False
    sealed_texts = [hexb(s["sealed_hex"]) for s in v["sealed_texts"]]
    assert title == sealed_texts[0], "the event carries the registered sealed title"
    for s, sealed in zip(v["sealed_texts"], sealed_texts):
        ad = tagged("custody/sealed-text/v1", document + b"\x00" + s["field"].encode())
        assert ad.hex() == s["associated_data_hex"]
        assert len(sealed) == 24 + len(s["plaintext"].encode()) + 16
        assert sealed[:24].hex() == s["nonce_hex"]
        assert any(sealed in whole for _, _, whole in ids.values()), s["name"]
        if can_open:
            assert open_sealed(keys[s["version"]], sealed, ad) == s["plaintext"].encode()
    print("independent check (v4): %d transactions, block 2, %d events, %d metadata keys, "
          "%d sealed texts%s: all match"
          % (len(ids), len(v["events"]), len(keys), len(sealed_texts),
             " (opened)" if can_open else " (not opened: no cryptography package)"))


def main(path):
    v = json.load(open(path))
    if v.get("format_version") == 4:
        return main_v4(v)
    hexb = bytes.fromhex
    ids = []
    for t in v["transactions"]:
        r = Reader(hexb(t["canonical_hex"]))
        payload, signature, whole = signed_tx(r)
        r.done()
        assert tagged("custody/tx/v1", payload).hex() == t["signing_bytes_hex"]
        assert signature.hex() == t["signature"]
        tx_id = sha256(tagged("custody/tx-id/v1", whole))
        assert tx_id.hex() == t["id"], t["name"]
        ids.append(tx_id)

    r = Reader(hexb(v["block"]["canonical_hex"]))
    h = header(r)
    txs = r.seq(lambda: signed_tx(r))
    last_commit = r.option(lambda: certificate(r))
    r.done()
    assert last_commit is None and h["last_commit_hash"] == bytes(32)
    assert h["bytes"].hex() == v["header"]["canonical_hex"]
    block_hash = sha256(tagged("custody/header/v1", h["bytes"]))
    assert block_hash.hex() == v["header"]["hash"] == v["block"]["hash"]
    assert h["previous"].hex() == v["genesis"]["hash"]
    block_ids = [sha256(tagged("custody/tx-id/v1", whole)) for _, _, whole in txs]
    assert block_ids == ids
    assert merkle_root(block_ids) == h["tx_root"]
    assert h["tx_root"].hex() == v["merkle"]["root"]

    p = v["merkle"]["proof"]
    assert verify_inclusion(h["tx_root"], ids[p["index"]], p["index"], p["tree_size"],
                            [hexb(x) for x in p["path"]])
    assert not verify_inclusion(h["tx_root"], ids[0], p["index"], p["tree_size"],
                                [hexb(x) for x in p["path"]])

    r = Reader(hexb(v["certificate"]["canonical_hex"]))
    height, rnd, cert_block, sigs, cert_bytes = certificate(r)
    r.done()
    assert (height, cert_block) == (1, block_hash)
    assert sha256(tagged("custody/certificate/v1", cert_bytes)).hex() == v["certificate"]["hash"]
    chain_id = h["chain_id"].encode()
    vote = encode_varint(len(chain_id)) + chain_id + encode_varint(height) + encode_varint(rnd) + block_hash
    assert tagged("custody/commit-vote/v1", vote).hex() == v["commit_vote"]["signing_bytes_hex"]

    event = hexb(v["event"]["canonical_hex"])
    r = Reader(event)
    r.varint(3); r.string(); assert r.varint() == 0; assert r.take(32) == bytes(32)
    r.varint(); r.varint(); assert r.take(32) == ids[1]; r.take(32); r.string()
    assert r.varint(5) == 0  # registered
    r.varint(); fixity(r); fixity(r)
    r.done()
    assert sha256(tagged("custody/event/v1", event)).hex() == v["event"]["hash"]

    vs = hexb(v["validator_set"]["canonical_hex"])
    assert sha256(tagged("custody/validator-set/v1", vs)).hex() == v["validator_set"]["hash"]
    assert h["validator_set_hash"].hex() == v["validator_set"]["hash"]
    g = hexb(v["genesis"]["canonical_hex"])
    assert sha256(tagged("custody/genesis/v1", g)).hex() == v["genesis"]["hash"]
    print("independent check: %d transactions, header, Merkle proof, certificate, event: all match"
          % len(ids))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "v1.json")
