//! Who is calling a node's API: a member, a department's node, or an
//! auditor the node's configuration names, proved by a signed request.
//!
//! A read of document metadata, history, members, blocks or blobs is
//! answered only to a caller who signs the request: the signature covers
//! the chain, the method, the path with its query and the caller's clock,
//! so a captured header opens nothing else and goes stale within the
//! node's allowed skew. The rule is here, beside the read rule, so that
//! every node admits the same callers; the node only carries it out.
//!
//! The header (`x-custody-auth`) is hex of `postcard(SignedApiRequest)`;
//! `docs/format.md`, "Signed API request".

use serde::{Deserialize, Serialize};

use crate::encoding;
use crate::records::{Member, MemberStatus};
use crate::types::{DepartmentId, PublicKey, Role, Signature};

/// Domain tag of a signed API request.
pub const API_REQUEST_TAG: &str = custody_format::tags::API_REQUEST;
/// Format version of [`ApiRequest`].
pub const API_REQUEST_VERSION: u16 = 1;
/// The HTTP header that carries a signed API request.
pub const API_AUTH_HEADER: &str = "x-custody-auth";

/// What a caller signs to read from a node's API.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiRequest {
    pub format_version: u16,
    pub chain_id: String,
    /// The caller's ed25519 key: a member's, a department node's, or an
    /// auditor's named in the node's configuration.
    pub caller: PublicKey,
    /// The HTTP method, upper case (`GET`, `POST`).
    pub method: String,
    /// The path with its query string, exactly as sent
    /// (`/v1/documents?classification=secret`).
    pub path_and_query: String,
    /// The caller's clock, milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// An [`ApiRequest`] with the caller's ed25519 signature over
/// `tagged("custody/api-request/v1", postcard(request))`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedApiRequest {
    pub request: ApiRequest,
    pub signature: Signature,
}

impl SignedApiRequest {
    pub fn sign(request: ApiRequest, key: &ed25519_dalek::SigningKey) -> SignedApiRequest {
        let signature = encoding::sign(key, API_REQUEST_TAG, &request);
        SignedApiRequest { request, signature }
    }

    pub fn verify_signature(&self) -> bool {
        encoding::verify(
            &self.request.caller,
            API_REQUEST_TAG,
            &self.request,
            &self.signature,
        )
    }

    /// The header value: hex of the canonical encoding.
    pub fn to_header(&self) -> String {
        hex::encode(encoding::encode(self))
    }

    /// Parses a header value written by [`Self::to_header`].
    pub fn from_header(value: &str) -> Result<SignedApiRequest, String> {
        let bytes = hex::decode(value.trim()).map_err(|_| "not hex".to_string())?;
        encoding::decode(&bytes).map_err(|error| error.to_string())
    }
}

/// The `x-custody-auth` header value for one request, signed by `key`.
pub fn api_auth_header(
    key: &ed25519_dalek::SigningKey,
    chain_id: &str,
    method: &str,
    path_and_query: &str,
    time_ms: u64,
) -> String {
    let request = ApiRequest {
        format_version: API_REQUEST_VERSION,
        chain_id: chain_id.to_string(),
        caller: PublicKey(key.verifying_key().to_bytes()),
        method: method.to_ascii_uppercase(),
        path_and_query: path_and_query.to_string(),
        time_ms,
    };
    SignedApiRequest::sign(request, key).to_header()
}

/// A caller the API admitted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// An active member of a department.
    Member {
        key: PublicKey,
        department: DepartmentId,
        roles: Vec<Role>,
    },
    /// A department's node (its libp2p identity key).
    Node {
        key: PublicKey,
        department: DepartmentId,
    },
    /// An auditor named in the node's configuration.
    Auditor { key: PublicKey },
}

impl Caller {
    pub fn key(&self) -> &PublicKey {
        match self {
            Caller::Member { key, .. } | Caller::Node { key, .. } | Caller::Auditor { key } => key,
        }
    }

    /// The caller's department; none for an auditor, who sees every
    /// department.
    pub fn department(&self) -> Option<&DepartmentId> {
        match self {
            Caller::Member { department, .. } | Caller::Node { department, .. } => Some(department),
            Caller::Auditor { .. } => None,
        }
    }
}

/// What the signed request must match: this node's chain, the request
/// actually received, and this node's clock.
#[derive(Clone, Copy, Debug)]
pub struct Expected<'a> {
    pub chain_id: &'a str,
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub now_ms: u64,
    pub skew_ms: u64,
}

/// Where callers are looked up: the chain's members and departments.
pub trait CallerDirectory {
    fn member(&self, key: &PublicKey) -> Result<Option<Member>, String>;
    /// The department whose node key is `key`, if any.
    fn department_of_node(&self, key: &PublicKey) -> Result<Option<DepartmentId>, String>;
}

/// Why a signed request was not admitted. Each has a stable code.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallerRefusal {
    #[error(
        "the signed request is format version {0}; this node reads version {API_REQUEST_VERSION}"
    )]
    UnsupportedVersion(u16),
    #[error("the request is signed for chain `{signed}`, this node runs `{ours}`")]
    WrongChain { signed: String, ours: String },
    #[error("the signature covers `{signed}`, not this request (`{received}`)")]
    WrongRequest { signed: String, received: String },
    #[error("the request is stamped {time_ms} ms, {off_ms} ms away from this node's clock (at most {skew_ms} ms allowed); check the clock and sign again")]
    Stale {
        time_ms: u64,
        off_ms: u64,
        skew_ms: u64,
    },
    #[error("the signature does not match the caller's key and the request")]
    BadSignature,
    #[error("key {0} is not a member, a department's node or an auditor this node knows")]
    Unknown(PublicKey),
    #[error("member {0} is revoked")]
    Revoked(PublicKey),
    #[error("the caller could not be looked up: {0}")]
    Lookup(String),
}

impl CallerRefusal {
    /// Stable code, as the API answers it.
    pub fn code(&self) -> &'static str {
        match self {
            CallerRefusal::UnsupportedVersion(_) => "api_unsupported_version",
            CallerRefusal::WrongChain { .. } => "api_wrong_chain",
            CallerRefusal::WrongRequest { .. } => "api_wrong_request",
            CallerRefusal::Stale { .. } => "api_request_stale",
            CallerRefusal::BadSignature => "api_bad_signature",
            CallerRefusal::Unknown(_) => "api_caller_unknown",
            CallerRefusal::Revoked(_) => "api_caller_revoked",
            CallerRefusal::Lookup(_) => "api_lookup_failed",
        }
    }
}

/// Admits the caller of one request, or says why not. Checks, in order:
/// version, chain, that the signature covers this method and path, the
/// clock skew, the signature, then who the key is: an auditor named in
/// `auditor_keys`, an active member, or a department's node.
pub fn admit(
    signed: &SignedApiRequest,
    expected: &Expected<'_>,
    auditor_keys: &[PublicKey],
    directory: &impl CallerDirectory,
) -> Result<Caller, CallerRefusal> {
    let request = &signed.request;
    if request.format_version != API_REQUEST_VERSION {
        return Err(CallerRefusal::UnsupportedVersion(request.format_version));
    }
    if request.chain_id != expected.chain_id {
        return Err(CallerRefusal::WrongChain {
            signed: request.chain_id.clone(),
            ours: expected.chain_id.to_string(),
        });
    }
    if !request.method.eq_ignore_ascii_case(expected.method)
        || request.path_and_query != expected.path_and_query
    {
        return Err(CallerRefusal::WrongRequest {
            signed: format!("{} {}", request.method, request.path_and_query),
            received: format!("{} {}", expected.method, expected.path_and_query),
        });
    }
    let off_ms = request.time_ms.abs_diff(expected.now_ms);
    if off_ms > expected.skew_ms {
        return Err(CallerRefusal::Stale {
            time_ms: request.time_ms,
            off_ms,
            skew_ms: expected.skew_ms,
        });
    }
    if !signed.verify_signature() {
        return Err(CallerRefusal::BadSignature);
    }
    let key = request.caller;
    if auditor_keys.contains(&key) {
        return Ok(Caller::Auditor { key });
    }
    if let Some(member) = directory.member(&key).map_err(CallerRefusal::Lookup)? {
        return match member.status {
            MemberStatus::Active => Ok(Caller::Member {
                key,
                department: member.department,
                roles: member.roles,
            }),
            MemberStatus::Revoked { .. } => Err(CallerRefusal::Revoked(key)),
        };
    }
    if let Some(department) = directory
        .department_of_node(&key)
        .map_err(CallerRefusal::Lookup)?
    {
        return Ok(Caller::Node { key, department });
    }
    Err(CallerRefusal::Unknown(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Classification, Height};

    const CHAIN: &str = "custody-test";
    const NOW_MS: u64 = 1_800_000_000_000;
    const SKEW_MS: u64 = 60_000;

    fn key(seed: u8) -> ed25519_dalek::SigningKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32])
    }

    fn public(key: &ed25519_dalek::SigningKey) -> PublicKey {
        PublicKey(key.verifying_key().to_bytes())
    }

    fn department(slug: &str) -> DepartmentId {
        match DepartmentId::new(slug) {
            Ok(id) => id,
            Err(error) => panic!("test slug: {error}"),
        }
    }

    /// A member with key seed 1 (active) and seed 2 (revoked); the
    /// `archives` department's node has key seed 3.
    struct Directory;

    impl CallerDirectory for Directory {
        fn member(&self, caller: &PublicKey) -> Result<Option<Member>, String> {
            let status = if *caller == public(&key(1)) {
                MemberStatus::Active
            } else if *caller == public(&key(2)) {
                MemberStatus::Revoked { at: Height(4) }
            } else {
                return Ok(None);
            };
            Ok(Some(Member {
                key: *caller,
                department: department("archives"),
                name: "Clerk".to_string(),
                roles: vec![Role::Clerk],
                clearance: Classification::Secret,
                status,
                enrolled_at: Height(1),
            }))
        }

        fn department_of_node(&self, caller: &PublicKey) -> Result<Option<DepartmentId>, String> {
            Ok((*caller == public(&key(3))).then(|| department("archives")))
        }
    }

    fn expected(path: &str) -> Expected<'_> {
        Expected {
            chain_id: CHAIN,
            method: "GET",
            path_and_query: path,
            now_ms: NOW_MS,
            skew_ms: SKEW_MS,
        }
    }

    fn signed(seed: u8, path: &str, time_ms: u64) -> SignedApiRequest {
        let header = api_auth_header(&key(seed), CHAIN, "get", path, time_ms);
        match SignedApiRequest::from_header(&header) {
            Ok(signed) => signed,
            Err(error) => panic!("own header: {error}"),
        }
    }

    fn admit_one(signed: &SignedApiRequest, path: &str) -> Result<Caller, CallerRefusal> {
        admit(signed, &expected(path), &[public(&key(9))], &Directory)
    }

    #[test]
    fn an_active_member_is_admitted_with_their_department() {
        let caller = admit_one(&signed(1, "/v1/documents", NOW_MS), "/v1/documents");
        assert_eq!(
            caller.map(|caller| caller.department().cloned()),
            Ok(Some(department("archives")))
        );
    }

    #[test]
    fn an_auditor_named_in_the_configuration_is_admitted_for_every_department() {
        let caller = admit_one(&signed(9, "/v1/blocks/1", NOW_MS), "/v1/blocks/1");
        assert_eq!(
            caller,
            Ok(Caller::Auditor {
                key: public(&key(9))
            })
        );
    }

    #[test]
    fn a_departments_node_is_admitted() {
        let caller = admit_one(&signed(3, "/v1/blocks/1", NOW_MS), "/v1/blocks/1");
        assert!(matches!(caller, Ok(Caller::Node { .. })), "{caller:?}");
    }

    fn refusal_code(result: Result<Caller, CallerRefusal>) -> &'static str {
        match result {
            Ok(caller) => panic!("admitted {caller:?}"),
            Err(refusal) => refusal.code(),
        }
    }

    #[test]
    fn a_request_signed_for_another_chain_is_refused() {
        let header = api_auth_header(&key(1), "other-chain", "GET", "/v1/documents", NOW_MS);
        let signed = SignedApiRequest::from_header(&header).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            refusal_code(admit_one(&signed, "/v1/documents")),
            "api_wrong_chain"
        );
    }

    #[test]
    fn a_signature_over_another_path_or_query_is_refused() {
        let signed = signed(1, "/v1/documents?classification=public", NOW_MS);
        assert_eq!(
            refusal_code(admit_one(&signed, "/v1/documents?classification=secret")),
            "api_wrong_request"
        );
    }

    #[test]
    fn a_request_stamped_outside_the_skew_is_refused() {
        let signed = signed(1, "/v1/documents", NOW_MS - SKEW_MS - 1);
        assert_eq!(
            refusal_code(admit_one(&signed, "/v1/documents")),
            "api_request_stale"
        );
    }

    #[test]
    fn a_request_whose_signature_does_not_hold_is_refused() {
        let mut signed = signed(1, "/v1/documents", NOW_MS);
        signed.request.caller = public(&key(9));
        assert_eq!(
            refusal_code(admit_one(&signed, "/v1/documents")),
            "api_bad_signature"
        );
    }

    #[test]
    fn a_key_that_is_no_member_node_or_auditor_is_refused() {
        let signed = signed(7, "/v1/documents", NOW_MS);
        assert_eq!(
            refusal_code(admit_one(&signed, "/v1/documents")),
            "api_caller_unknown"
        );
    }

    #[test]
    fn a_revoked_member_is_refused() {
        let signed = signed(2, "/v1/documents", NOW_MS);
        assert_eq!(
            refusal_code(admit_one(&signed, "/v1/documents")),
            "api_caller_revoked"
        );
    }

    #[test]
    fn an_unknown_request_version_is_refused() {
        let mut request = signed(1, "/v1/documents", NOW_MS).request;
        request.format_version = API_REQUEST_VERSION + 1;
        let signed = SignedApiRequest::sign(request, &key(1));
        assert_eq!(
            refusal_code(admit_one(&signed, "/v1/documents")),
            "api_unsupported_version"
        );
    }

    #[test]
    fn a_header_round_trips_through_its_text() {
        let signed = signed(1, "/v1/members/ab", NOW_MS);
        assert_eq!(
            SignedApiRequest::from_header(&signed.to_header()),
            Ok(signed)
        );
        assert!(SignedApiRequest::from_header("zz").is_err());
    }
}
