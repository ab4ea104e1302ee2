"""Schemathesis hooks of scripts/api_fuzz.sh: sign every request to a signed
route, so that the fuzz reaches the handlers behind the caller check, and
count the cases of each route class.

A route is signed when the node's own description (/v1/openapi.json) gives
it a security requirement:

- `caller_signature`: the `x-custody-auth` header, hex of
  postcard(SignedApiRequest) (docs/format.md, "Signed API request"), over
  the chain, the method, the path with its query exactly as sent, and the
  caller's clock (within the node's `api.request_skew_ms`);
- `upload_signature`: the `x-custody-upload` header, hex of
  postcard(SignedBlobUpload), over the chain, the blob's SHA-256 and size as
  the URL gives them, and the clock.

Both are signed with a clerk's member key of the testnet
(API_FUZZ_MEMBER_KEY: a file of 64 hex digits, as `custody testnet init`
writes it). A generated value of the header is replaced: the fuzz is of what
lies behind the door; the door itself has its own tests
(ledger/src/caller.rs, node/tests).

Environment: API_FUZZ_URL (the node's API), API_FUZZ_CHAIN_ID,
API_FUZZ_MEMBER_KEY, API_FUZZ_COUNTS (where the counts are written as JSON
when the run ends).
"""

import atexit
import json
import os
import threading
import time
import urllib.request

import requests
import schemathesis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

API_AUTH_HEADER = "x-custody-auth"
UPLOAD_HEADER = "x-custody-upload"
API_REQUEST_TAG = b"custody/api-request/v1"
BLOB_UPLOAD_TAG = b"custody/blob-upload/v1"
API_REQUEST_VERSION = 1
BLOB_UPLOAD_VERSION = 1
CALLER_SCHEME = "caller_signature"
UPLOAD_SCHEME = "upload_signature"
# Refusal codes of the two doors: a signed case answered with one of them
# did not get past the door.
DOOR_CODES = {
    "not_authenticated",
    "bad_api_signature",
    "api_unsupported_version",
    "api_wrong_chain",
    "api_wrong_request",
    "api_request_stale",
    "api_bad_signature",
    "api_caller_revoked",
    "api_caller_unknown",
    "upload_not_signed",
    "bad_upload_signature",
    "upload_refused",
}
OPENAPI_FETCH_TIMEOUT_S = 10


def _env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"api_fuzz_hooks: {name} is not set (scripts/api_fuzz.sh sets it)")
    return value


BASE_URL = _env("API_FUZZ_URL").rstrip("/")
CHAIN_ID = _env("API_FUZZ_CHAIN_ID")
with open(_env("API_FUZZ_MEMBER_KEY"), encoding="ascii") as key_file:
    _SECRET = bytes.fromhex(key_file.read().strip())
if len(_SECRET) != 32:
    raise SystemExit("api_fuzz_hooks: the member key file does not hold 32 bytes of hex")
KEY = Ed25519PrivateKey.from_private_bytes(_SECRET)
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


# --- postcard, the little of it these two structs need -------------------

def varint(value):
    """postcard's unsigned integers (u16, u64, lengths): LEB128."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def text(value):
    raw = value.encode("utf-8")
    return varint(len(raw)) + raw


def tagged(tag, body):
    """`tagged(tag, body) = u8(len(tag)) || tag || body` (format/src/lib.rs)."""
    return bytes([len(tag)]) + tag + body


def sign(tag, body):
    """The header value: postcard(struct) followed by the signature (a
    64-byte tuple), in hex."""
    return (body + KEY.sign(tagged(tag, body))).hex()


def api_auth_header(method, path_and_query, time_ms):
    body = (
        varint(API_REQUEST_VERSION)
        + text(CHAIN_ID)
        + PUBLIC
        + text(method.upper())
        + text(path_and_query)
        + varint(time_ms)
    )
    return sign(API_REQUEST_TAG, body)


def upload_header(sha256, size_bytes, time_ms):
    body = (
        varint(BLOB_UPLOAD_VERSION)
        + text(CHAIN_ID)
        + PUBLIC
        + sha256
        + varint(size_bytes)
        + varint(time_ms)
    )
    return sign(BLOB_UPLOAD_TAG, body)


# --- which routes are signed ----------------------------------------------

def _schemes_by_operation():
    with urllib.request.urlopen(f"{BASE_URL}/v1/openapi.json", timeout=OPENAPI_FETCH_TIMEOUT_S) as answer:
        document = json.load(answer)
    default = document.get("security", [])
    schemes = {}
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            names = set()
            for requirement in operation.get("security", default):
                names.update(requirement.keys())
            schemes[(method.upper(), path)] = names
    return schemes


SCHEMES = _schemes_by_operation()

_lock = threading.Lock()
COUNTS = {
    "signed": {"cases": 0, "past_the_door": 0, "at_the_door": 0},
    "open": {"cases": 0},
}


def _write_counts():
    target = os.environ.get("API_FUZZ_COUNTS")
    if target:
        with open(target, "w", encoding="utf-8") as out:
            json.dump(COUNTS, out)


atexit.register(_write_counts)


def _now_ms():
    return time.time_ns() // 1_000_000


def _path_and_query(case):
    """The path and query exactly as `requests` will send them."""
    data = case.as_transport_kwargs(base_url=BASE_URL)
    prepared = requests.Request(method=data["method"], url=data["url"], params=data.get("params")).prepare()
    return prepared.path_url


def _size_bytes(case):
    query = case.query or {}
    try:
        size = int(query.get("size_bytes", 0))
    except (TypeError, ValueError):
        return 0
    return size if 0 <= size < 2**64 else 0


def _sha256(case):
    raw = str((case.path_parameters or {}).get("sha256", ""))
    try:
        digest = bytes.fromhex(raw)
    except ValueError:
        return b"\0" * 32
    return digest if len(digest) == 32 else b"\0" * 32


def _class_of(case):
    return SCHEMES.get((case.operation.method.upper(), case.operation.path), set())


@schemathesis.hook
def before_call(context, case, kwargs):
    schemes = _class_of(case)
    if not schemes:
        return
    headers = dict(case.headers or {})
    if CALLER_SCHEME in schemes:
        headers[API_AUTH_HEADER] = api_auth_header(case.method, _path_and_query(case), _now_ms())
    if UPLOAD_SCHEME in schemes:
        headers[UPLOAD_HEADER] = upload_header(_sha256(case), _size_bytes(case), _now_ms())
    case.headers = headers


def _refusal_code(response):
    try:
        return response.json().get("error", {}).get("code")
    except Exception:  # Not JSON, or not an error body: not a door's refusal.
        return None


@schemathesis.hook
def after_call(context, case, response):
    with _lock:
        if not _class_of(case):
            COUNTS["open"]["cases"] += 1
            return
        signed = COUNTS["signed"]
        signed["cases"] += 1
        if response.status_code in (400, 401, 403) and _refusal_code(response) in DOOR_CODES:
            signed["at_the_door"] += 1
        else:
            signed["past_the_door"] += 1
