//! Inbound and outbound request-response traffic: handing requests to the
//! node, sending its answers, matching responses to callers.

use std::time::Duration;

use futures::FutureExt;
use libp2p::request_response::{self, InboundFailure, OutboundFailure, ResponseChannel};
use tokio::sync::{mpsc, oneshot};

use super::swarm_task::Driver;
use super::*;

/// The node's answer (or its absence) to one inbound request.
pub(super) struct InboundReply {
    pub(super) peer: PeerId,
    pub(super) protocol: RequestProtocol,
    pub(super) channel: ResponseChannel<Vec<u8>>,
    pub(super) answer: Result<Vec<u8>, &'static str>,
}

pub(super) type OutboundReply = oneshot::Sender<Result<Vec<u8>, NetworkError>>;

impl Driver {
    pub(super) fn on_inbound_reply(&mut self, reply: InboundReply) {
        let InboundReply {
            peer,
            protocol,
            channel,
            answer,
        } = reply;
        let bytes = match answer {
            Ok(bytes) => bytes,
            Err(reason) => {
                tracing::warn!(%peer, %protocol, reason, "inbound request not answered");
                return;
            }
        };
        let max = self.limits.response_bytes_max;
        if bytes.len() > max {
            // Dropping the channel fails the request on the caller's side.
            tracing::error!(
                %peer,
                %protocol,
                bytes = bytes.len(),
                max,
                "response exceeds the cap and was not sent; the caller must page"
            );
            return;
        }
        let behaviour = self.swarm.behaviour_mut();
        let sent = match protocol {
            RequestProtocol::Sync => behaviour.sync.send_response(channel, bytes),
            RequestProtocol::Blob => behaviour.blob.send_response(channel, bytes),
        };
        if sent.is_err() {
            tracing::debug!(%peer, %protocol, "response not sent: the request was already closed");
        }
    }

    pub(super) fn on_request_response_event(
        &mut self,
        protocol: RequestProtocol,
        event: request_response::Event<Vec<u8>, Vec<u8>>,
    ) {
        match event {
            request_response::Event::Message { peer, message, .. } => match message {
                request_response::Message::Request {
                    request, channel, ..
                } => self.on_inbound_request(peer, protocol, request, channel),
                request_response::Message::Response {
                    request_id,
                    response,
                } => {
                    if let Some((_, reply)) = self.outbound.remove(&(protocol, request_id)) {
                        let _ = reply.send(Ok(response));
                    }
                }
            },
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                tracing::debug!(%peer, %protocol, %error, "outbound request failed");
                if let Some((_, reply)) = self.outbound.remove(&(protocol, request_id)) {
                    let error = match error {
                        OutboundFailure::Timeout => NetworkError::RequestTimeout { peer, protocol },
                        other => NetworkError::RequestFailed {
                            peer,
                            protocol,
                            reason: other.to_string(),
                        },
                    };
                    let _ = reply.send(Err(error));
                }
            }
            request_response::Event::InboundFailure { peer, error, .. } => match error {
                InboundFailure::Io(error) => {
                    tracing::warn!(%peer, %protocol, %error, "inbound request refused");
                }
                other => {
                    tracing::debug!(%peer, %protocol, error = %other, "inbound request failed");
                }
            },
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    pub(super) fn on_inbound_request(
        &mut self,
        peer: PeerId,
        protocol: RequestProtocol,
        bytes: Vec<u8>,
        channel: ResponseChannel<Vec<u8>>,
    ) {
        // Dropping `channel` in the refusals below fails the request on the
        // caller's side, which may retry elsewhere.
        if self.inbound_replies.len() >= INBOUND_REQUESTS_PENDING_MAX {
            tracing::warn!(%peer, %protocol, "too many unanswered inbound requests; request dropped");
            return;
        }
        let (reply, answer) = oneshot::channel();
        let length = bytes.len();
        let event = NetworkEvent::InboundRequest {
            peer,
            protocol,
            bytes,
            reply,
        };
        match self.events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.requests_dropped.record(|dropped| {
                    tracing::warn!(
                        %peer,
                        %protocol,
                        bytes = length,
                        dropped,
                        "event channel full; inbound request dropped"
                    );
                });
                return;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                tracing::debug!(%peer, %protocol, "no event receiver; inbound request dropped");
                return;
            }
        }
        let timeout = Duration::from_millis(self.limits.request_timeout_ms);
        self.inbound_replies.push(
            async move {
                let answer = match tokio::time::timeout(timeout, answer).await {
                    Ok(Ok(bytes)) => Ok(bytes),
                    Ok(Err(_)) => Err("the node dropped the reply"),
                    Err(_) => Err("the node did not answer in time"),
                };
                InboundReply {
                    peer,
                    protocol,
                    channel,
                    answer,
                }
            }
            .boxed(),
        );
    }
}
