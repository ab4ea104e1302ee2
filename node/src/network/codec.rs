//! The request-response codec: one length-prefixed frame per request and
//! per response, with the cap checked before the body is read.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::request_response;
use libp2p::StreamProtocol;

use super::FRAME_LENGTH_PREFIX_BYTES;

/// One frame per request and per response: a u32 big-endian length, then
/// that many opaque bytes. The cap is checked before reading the body, so a
/// peer cannot make us buffer more than the cap.
#[derive(Debug, Clone, Copy)]
pub(super) struct FrameCodec {
    pub(super) request_bytes_max: usize,
    pub(super) response_bytes_max: usize,
}

pub(super) async fn read_frame<T>(io: &mut T, max: usize) -> io::Result<Vec<u8>>
where
    T: AsyncRead + Unpin + Send,
{
    let mut prefix = [0u8; FRAME_LENGTH_PREFIX_BYTES];
    io.read_exact(&mut prefix).await?;
    let length = usize::try_from(u32::from_be_bytes(prefix)).unwrap_or(usize::MAX);
    if length > max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {length} bytes exceeds the cap of {max} bytes"),
        ));
    }
    let mut body = Vec::new();
    // `take` bounds the read; the buffer grows with what actually arrives.
    io.take(length as u64).read_to_end(&mut body).await?;
    if body.len() != length {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "frame announced {length} bytes but the stream ended after {}",
                body.len()
            ),
        ));
    }
    Ok(body)
}

pub(super) async fn write_frame<T>(io: &mut T, bytes: &[u8], max: usize) -> io::Result<()>
where
    T: AsyncWrite + Unpin + Send,
{
    let length = u32::try_from(bytes.len())
        .ok()
        .filter(|_| bytes.len() <= max)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "frame of {} bytes exceeds the cap of {max} bytes",
                    bytes.len()
                ),
            )
        })?;
    io.write_all(&length.to_be_bytes()).await?;
    io.write_all(bytes).await?;
    io.flush().await
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.request_bytes_max).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        read_frame(io, self.response_bytes_max).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &request, self.request_bytes_max).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        write_frame(io, &response, self.response_bytes_max).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::io::Cursor;

    fn block_on<F: std::future::Future>(future: F) -> F::Output {
        futures::executor::block_on(future)
    }

    #[test]
    fn frame_round_trips() {
        let mut buffer = Cursor::new(Vec::new());
        block_on(write_frame(&mut buffer, b"hello", 16)).unwrap();
        assert_eq!(buffer.get_ref().len(), FRAME_LENGTH_PREFIX_BYTES + 5);
        buffer.set_position(0);
        assert_eq!(block_on(read_frame(&mut buffer, 16)).unwrap(), b"hello");
    }

    #[test]
    fn frame_over_the_cap_is_refused_before_reading_the_body() {
        let mut bytes = (1_000_000u32).to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0u8; 8]);
        let error = block_on(read_frame(&mut Cursor::new(bytes), 1024)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn frame_over_the_cap_is_not_written() {
        let mut buffer = Cursor::new(Vec::new());
        let error = block_on(write_frame(&mut buffer, &[0u8; 17], 16)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert!(buffer.get_ref().is_empty());
    }

    #[test]
    fn truncated_frame_is_refused() {
        let mut bytes = 10u32.to_be_bytes().to_vec();
        bytes.extend_from_slice(b"short");
        let error = block_on(read_frame(&mut Cursor::new(bytes), 1024)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        let error = block_on(read_frame(&mut Cursor::new(vec![0u8, 1]), 1024)).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_frame_reader() {
        // A small deterministic generator: enough to cover short, long,
        // truncated and oversized prefixes without a dev-dependency.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..2_000usize {
            let mut bytes = Vec::new();
            for _ in 0..(round % 64) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                bytes.push(state as u8);
            }
            let result = block_on(read_frame(&mut Cursor::new(bytes.clone()), 32));
            if let Ok(body) = result {
                assert!(body.len() <= 32);
                assert_eq!(&bytes[FRAME_LENGTH_PREFIX_BYTES..][..body.len()], &body[..]);
            }
        }
    }
}
