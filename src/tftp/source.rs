//! The bytes of one transfer's blocks: slices of an in-memory file, or positioned reads
//! of a large file in chunks of about 1 MiB done on the blocking pool, so a lock-step
//! transfer costs one thread hop per chunk, not per block.
//!
//! Keeps the current and the previous chunk, enough for a window retransmitted across a
//! chunk boundary. Knows nothing of packets, sockets or paths.

use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;

use bytes::Bytes;

use super::root::Content;

/// Target size of one positioned read.
const CHUNK_BYTES: u64 = 1024 * 1024;

/// Block reader for one transfer.
#[derive(Debug)]
pub(super) struct BlockSource {
    content: Content,
    chunk_len: u64,
    current: Option<(u64, Bytes)>,
    previous: Option<(u64, Bytes)>,
}

impl BlockSource {
    /// `blksize` aligns the chunks so no block straddles two of them.
    pub(super) fn new(content: Content, blksize: u16) -> BlockSource {
        let blksize = u64::from(blksize.max(1));
        BlockSource {
            content,
            chunk_len: (CHUNK_BYTES / blksize).max(1) * blksize,
            current: None,
            previous: None,
        }
    }

    /// The bytes of `range`, which lies within one block.
    pub(super) async fn slice(&mut self, range: Range<u64>) -> io::Result<Bytes> {
        let (file, len) = match &self.content {
            Content::Memory(bytes) => return slice_of(bytes, 0, range),
            Content::File { file, len } => (file.clone(), *len),
        };
        let start = range.start - range.start % self.chunk_len;
        for (at, bytes) in [&self.current, &self.previous].into_iter().flatten() {
            if *at == start {
                return slice_of(bytes, start, range);
            }
        }
        let want = self.chunk_len.min(len.saturating_sub(start));
        let chunk = tokio::task::spawn_blocking(move || read_chunk(&file, start, want))
            .await
            .map_err(io::Error::other)??;
        let sliced = slice_of(&chunk, start, range);
        self.previous = self.current.replace((start, chunk));
        sliced
    }
}

fn slice_of(bytes: &Bytes, at: u64, range: Range<u64>) -> io::Result<Bytes> {
    let start = usize::try_from(range.start - at).map_err(io::Error::other)?;
    let end = usize::try_from(range.end - at).map_err(io::Error::other)?;
    if end > bytes.len() || start > end {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "file shrank during the transfer",
        ));
    }
    Ok(bytes.slice(start..end))
}

fn read_chunk(file: &std::fs::File, offset: u64, want: u64) -> io::Result<Bytes> {
    let mut buf = vec![0u8; usize::try_from(want).map_err(io::Error::other)?];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| u8::try_from(i % 251).unwrap()).collect()
    }

    #[tokio::test]
    async fn file_blocks_match_across_chunks_and_back() {
        let data = pattern(3 * 1024 * 1024 + 777);
        let mut tmp = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut tmp, &data).unwrap();
        let len = data.len() as u64;
        let content = Content::File {
            file: Arc::new(tmp),
            len,
        };
        let blksize = 1468u64;
        let mut src = BlockSource::new(content, 1468);
        let mut got = Vec::new();
        let mut start = 0;
        while start < len {
            let end = (start + blksize).min(len);
            got.extend_from_slice(&src.slice(start..end).await.unwrap());
            start = end;
        }
        assert_eq!(got, data);
        // A window retransmitted from just before the last chunk boundary still works.
        let boundary = src.chunk_len * 3;
        let back = boundary - blksize..boundary;
        let want = &data[usize::try_from(back.start).unwrap()..usize::try_from(back.end).unwrap()];
        assert_eq!(&src.slice(back).await.unwrap()[..], want);
    }

    #[tokio::test]
    async fn memory_blocks_are_slices_and_shrinking_is_an_error() {
        let bytes = Bytes::from(pattern(1000));
        let mut src = BlockSource::new(Content::Memory(bytes.clone()), 512);
        assert_eq!(src.slice(512..1000).await.unwrap(), bytes.slice(512..1000));
        assert!(src.slice(512..1024).await.is_err());
        let mut short = BlockSource::new(
            Content::File {
                file: Arc::new(tempfile::tempfile().unwrap()),
                len: 600,
            },
            512,
        );
        assert!(
            short.slice(0..512).await.is_err(),
            "file shorter than announced"
        );
    }
}
