//! Byte-line splitting shared by both codecs: bounded, split-anywhere safe.

use super::CodecError;

/// Accumulates bytes and yields complete `\n`-terminated lines (without `\r\n`/`\n`).
///
/// Lines are kept as bytes until complete, so a UTF-8 character split across chunks is
/// reassembled before anyone decodes it. Memory is bounded by `max_line_bytes`.
#[derive(Debug)]
pub struct LineSplitter {
    buf: Vec<u8>,
    max_line_bytes: usize,
    lines_seen: u64,
}

impl LineSplitter {
    pub fn new(max_line_bytes: usize) -> Self {
        LineSplitter {
            buf: Vec::new(),
            max_line_bytes,
            lines_seen: 0,
        }
    }

    /// The longest line accepted, bytes.
    pub fn max_line_bytes(&self) -> usize {
        self.max_line_bytes
    }

    /// 1-based number of the last line returned.
    pub fn line_number(&self) -> u64 {
        self.lines_seen
    }

    /// Feed `chunk`, calling `on_line` for every complete line in order.
    pub fn feed(
        &mut self,
        mut chunk: &[u8],
        mut on_line: impl FnMut(&[u8], u64) -> Result<(), CodecError>,
    ) -> Result<(), CodecError> {
        while let Some(pos) = chunk.iter().position(|&b| b == b'\n') {
            let (head, rest) = chunk.split_at(pos);
            chunk = &rest[1..];
            self.lines_seen += 1;
            if self.buf.is_empty() {
                self.check_len(head.len())?;
                on_line(trim_cr(head), self.lines_seen)?;
            } else {
                self.check_len(self.buf.len() + head.len())?;
                self.buf.extend_from_slice(head);
                let line = std::mem::take(&mut self.buf);
                on_line(trim_cr(&line), self.lines_seen)?;
            }
        }
        self.check_len(self.buf.len() + chunk.len())?;
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Bytes of an incomplete last line, taken out of the splitter.
    pub fn take_rest(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }

    fn check_len(&self, len: usize) -> Result<(), CodecError> {
        if len > self.max_line_bytes {
            Err(CodecError::LineTooLong {
                limit: self.max_line_bytes,
            })
        } else {
            Ok(())
        }
    }
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}
